// Package rdsproc is what the measuring drivers (cmd/rdslocal-bench,
// cmd/rdslocal-soak, cmd/rdslocal-conformance) share to run bin/rdslocal
// as a child process: start it on a free port with a data directory of
// its own and wait until its health endpoint answers; stop it (SIGTERM,
// then SIGKILL to its process group); end database servers a crashed run
// left behind; raise the open-file limit the child inherits; and the tail
// of a log for failure reports.
//
// The drivers run rdslocal as users do (the built binary, the AWS API over
// HTTP) rather than in-process, so their figures include nothing of the
// driver's own runtime.
package rdsproc
