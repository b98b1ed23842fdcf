// Package enginetest starts real PostgreSQL and MariaDB servers for tests,
// with the binaries engine.Locate finds (the ones the process backend
// runs). Each server runs on 127.0.0.1 on a free port, as the family's
// service user when the test runs as root, in a directory under the Env's
// temporary root, and has its own superuser admin account (independent of
// engine's accounts). Servers are made from one initialised template per
// family and Env, so the second server of a family starts in about a
// second.
//
//	env, err := enginetest.New()           // in TestMain
//	defer env.Close()                      // stops every server, removes the files
//	my, err := env.MariaDB(enginetest.Options{MaxConnections: 30})
//	my.CreateUser(ctx, "app", "app-pw")     // a login with every privilege but SUPER-like ones
//	my.Exec(ctx, "CREATE TABLE test.t (a int)")
//	my.Restart(); my.Kill(); my.Start()    // fault tests
//
// An Env is safe for concurrent use; a Server's Start, Stop, Kill and
// Restart must not race each other.
package enginetest
