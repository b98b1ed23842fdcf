// Package server wires the rdslocal process together: configuration, the
// HTTP gateway on port 4566, the internal endpoints, persistence and
// shutdown. It knows no single AWS action.
//
// A request moves through the gateway in five steps:
//
//  1. The body is read (at most MaxBodyBytes; more is answered 413).
//  2. The protocol is chosen: POST with X-Amz-Target is JSON 1.1, anything
//     else the query protocol (form body, or the URL query for GET).
//  3. The service is found from the SigV4 credential scope (Authorization
//     header or presigned X-Amz-Credential), else from the X-Amz-Target
//     prefix or the query Version, else from the action name. The region
//     comes from the scope (default us-east-1); the account is
//     000000000000, or the access key itself when it is 12 digits
//     (LocalStack's convention).
//  4. The action's input is validated against the service model (package
//     api) and its handler runs; a panic becomes InternalFailure.
//  5. After a successful action that changes state, the service's snapshot
//     is saved atomically to the data directory (when one is set) before
//     the response is sent, so an acknowledged write survives a crash.
//
// One slog line is logged per request with service, action, status and
// duration.
//
// # The data plane
//
// dataplane.go builds the proxy Manager: the wire protocols it serves (one
// value per engine family; a new protocol is one entry there), and the
// adapters of Secrets Manager, IAM token validation and the endpoint
// certificates to the small interfaces package proxy defines. The RDS
// front-end drives it (Apply, Status, TargetHealth); /metrics writes its
// metrics.
//
// # Start-up: fixtures, hooks, readiness
//
// With Config.InitFile, New parses the fixture file (package fixture) and
// refuses to start when it cannot be right. Serve then, in the background
// (init.go):
//
//  1. applies the file through InProcessConfig: AWS SDK clients whose
//     transport hands each request to this server's router, so a fixture
//     takes the path of any API request (steps 1–5 above, logged at debug
//     level), and waits until its resources are ready;
//  2. runs the executables below <InitDir>/ready.d in order, with
//     AWS_ENDPOINT_URL (the listener) and test credentials set, their
//     output in the log;
//  3. is ready. Health (GET /_rdslocal/health) reports the phase and every
//     fixture's and hook's progress all along; a failure stops at step 1
//     or after step 2 and is reported there too.
package server
