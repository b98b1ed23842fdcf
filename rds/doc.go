// Package rds is the RDS front-end: the query-protocol actions (API version
// 2014-10-31) for DB proxies, proxy endpoints, target groups and targets, and
// for the DB instances and clusters a proxy registers, with their tags.
//
// State is kept per (account, region) in regionState, guarded by one mutex
// and saved by the server after every change (Snapshot/Restore). Handlers
// follow one pattern: decode the typed input (validated against the AWS
// model by package api), check it as RDS does (name patterns, ranges,
// engine families, states) answering RDS's own error codes and texts, change
// the records, and render them as the XML shapes of the model (xml.go).
//
// What RDS needs from the outside world enters through narrow seams in
// Options: the address plan for proxy endpoints (addressing.go), the engine
// layer that runs the real servers behind DB instances (Engines, driven in
// the background by lifecycle.go), and the data plane that runs the proxy
// listeners (DataPlane, handed the desired state of every proxy by
// dataplane.go after each change).
package rds
