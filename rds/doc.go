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
// the background by lifecycle.go; CreateDBInstance, RebootDBInstance and
// DeleteDBInstance answer once the operation ended, up to settleWait, so a
// waiter's first describe sees the outcome), and the data plane that runs
// the proxy listeners (DataPlane, handed the desired state of every proxy
// by dataplane.go after each change).
//
// With no Engines (--db-backend none) instances are records: they report
// available, but no server runs behind them, so they are no proxy targets
// (UNAVAILABLE in DescribeDBProxyTargets).
//
// High availability (failover.go): FailoverDBCluster, RebootDBInstance with
// ForceFailover, and what the engine layer reports through Engines.Watch (a
// server died; a replica stopped or resumed replicating) drive failovers:
// RDS's choice of the new writer (PromotionTier, then instance size, then
// the replica that received most), the engine's switchover or promotion,
// (a writer that dies is replaced only when it died with synchronous
// replicas among the candidates — Multi-AZ standbys and Aurora readers are
// synchronous, so the promoted one, having first taken what a sibling
// received, has every acknowledged commit; otherwise it restarts on its
// own data),
// re-pointing or rebuilding the other readers, rebuilding the former writer
// or Multi-AZ primary as a replica, and the records and events at each
// step. An instance is handed to the data plane only while it serves its
// role (targets.go, outOfService): a writer that is down or handing over,
// or a reader that does not replicate from the writer, is no target of any
// endpoint, and DescribeDBProxyTargets says why. After a restart the
// records follow the roles the engine layer saved (followEngineRoles), as
// rdslocal may have stopped between a failover's steps. events.go keeps each
// region's event log (RDS's event ids and messages) and serves
// DescribeEvents.
package rds
