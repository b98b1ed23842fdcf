// Package api owns the AWS wire protocols rdslocal speaks on its HTTP port:
// the query protocol (RDS, IAM, STS: form-encoded requests, XML responses and
// XML errors) and JSON 1.1 (Secrets Manager, ACM).
//
// Data moves like this. The server gateway (package server) identifies the
// service and the action of a request and hands the raw parameters to this
// package, which validates them against the operation's input shape taken
// from the AWS service model (model/*.json, extracted from botocore by
// tools/genmodel.py): unknown parameters, wrong types and missing required
// members become the protocol's own error, and for JSON 1.1 also lengths,
// ranges and enums as Coral validates them (query services check ranges
// themselves, with their own messages, as RDS does). A valid
// input is normalised to JSON, so every handler decodes its typed input with
// Call.Decode, whichever protocol carried it. The handler returns a typed
// result (or an *Error), which the Write* functions render as the protocol's
// success or error envelope.
//
// Services plug in as a Service value: their model, one Handler per action,
// and optionally a Persister so the server can save and restore their state.
// The services themselves (rds, secrets, iamauth, acmcert) live beside it and
// import it; api imports none of them.
package api
