// Command rdslocal-conformance runs a real driver's own test suite against
// an rdslocal DB instance directly and through an RDS Proxy endpoint in
// front of it, and reports every test that passes directly but not through
// the proxy. It is what `make conformance` runs.
//
// One run:
//
//  1. finds the pgx version this module requires and downloads it into the
//     module cache (go mod download); its tests run there, with pgx's own
//     go.mod, and nothing of pgx is copied into this repository;
//  2. starts bin/rdslocal with a temporary data directory and a free API
//     port, and through the AWS API creates a postgres DB instance (database
//     pgx_test), a secret with its master credentials, and a POSTGRESQL
//     proxy using the secret with the instance as its target;
//  3. prepares pgx_test as pgx's testsetup/postgresql_setup.sql does (read
//     from the downloaded module), except that the roles it creates are not
//     superusers, since an RDS master user cannot grant that;
//  4. runs `go test -json` on pgx's packages (., pgxpool, stdlib, pgconn,
//     pgtype), one package at a time with a timeout each, first with
//     PGX_TEST_DATABASE pointing at the instance, then at the proxy;
//  5. prints the tests that passed directly but not through the proxy, the
//     excluded ones with their reasons, and a closing line "N passed, N
//     failed" counting, among the tests that passed directly, those that
//     passed and failed through the proxy; it exits 1 when a test that is
//     not excluded failed through the proxy (or nothing passed directly);
//  6. stops everything it started, also on failure or Ctrl-C.
//
// Nothing here sends traffic anywhere but 127.0.0.0/8, apart from the
// module download.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// excluded lists the pgx tests that test what RDS Proxy does not offer,
// with the reason; README's "Deliberate differences" repeats them. They run
// directly but are skipped through the proxy (two of them would only wait
// out their own timeouts there).
var excluded = map[string]string{
	// No transaction pooler can offer these: between transactions a client
	// holds no server process, so the PID in its BackendKeyData (the
	// proxy's own, as with RDS Proxy and PgBouncer) names none.
	"pgx.TestFatalTxError":                        terminatesByPID,
	"pgx.TestFatalRxError":                        terminatesByPID,
	"pgxpool.TestPoolAcquireChecksIdleConns":      terminatesByPID,
	"stdlib.TestCheckIdleConn":                    terminatesByPID,
	"pgconn.TestConnCopyFromConnectionTerminated": terminatesByPID,
	// RDS Proxy refuses startup parameters beyond the ones AWS lists.
	"pgconn.TestConnOnNotice":             "sends client_min_messages in the startup packet, which RDS Proxy refuses (FATAL 0A000 \"doesn't support the option\")",
	"pgconn.TestConnectWithRuntimeParams": "sends search_path in the startup packet, which RDS Proxy refuses (FATAL 0A000 \"doesn't support the option\")",
}

const terminatesByPID = "calls pg_terminate_backend with the PID from BackendKeyData, which through a transaction pooler names no server process"

// packages are pgx's packages the run covers, with the timeout of each
// `go test` (a hung test fails its package at that point, not the run).
var packages = []struct {
	name    string // import path below github.com/jackc/pgx/v5
	timeout time.Duration
}{
	{".", 5 * time.Minute},
	{"pgxpool", 4 * time.Minute},
	{"stdlib", 3 * time.Minute},
	{"pgconn", 4 * time.Minute},
	{"pgtype", 3 * time.Minute},
}

type options struct {
	bin   string
	run   string // -run for go test
	pkgs  []string
	modes []string // direct, proxy
	keep  bool
	hold  bool
	race  bool
}

func main() {
	var o options
	var pkgs, modes string
	flag.StringVar(&o.bin, "bin", "bin/rdslocal", "rdslocal binary")
	flag.StringVar(&o.run, "run", "", "run only the tests matching this regular expression (go test -run)")
	flag.StringVar(&pkgs, "pkgs", "", "comma-separated pgx packages to run (default: all of pgx,pgxpool,stdlib,pgconn,pgtype)")
	flag.StringVar(&modes, "modes", "direct,proxy", "where to run the tests: direct, proxy or both")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, go test output) after the run")
	flag.BoolVar(&o.hold, "hold", false, "after setting up, print the connection strings and wait for Ctrl-C instead of running the tests (for debugging)")
	flag.BoolVar(&o.race, "race", false, "run the tests with the race detector (slower)")
	flag.Parse()
	for _, p := range splitList(pkgs) {
		if !knownPackage(p) {
			fmt.Fprintf(os.Stderr, "unknown package %q\n", p)
			os.Exit(2)
		}
		o.pkgs = append(o.pkgs, p)
	}
	for _, m := range splitList(modes) {
		if m != "direct" && m != "proxy" {
			fmt.Fprintf(os.Stderr, "bad -modes %q\n", modes)
			os.Exit(2)
		}
		o.modes = append(o.modes, m)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	r := &runner{opt: o, start: time.Now()}
	failed, err := func() (failed bool, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return r.run(ctx)
	}()
	stop()
	r.cleanup()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "conformance: interrupted")
		} else {
			fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		}
		os.Exit(1)
	}
	logf("done in %s", time.Since(r.start).Round(time.Second))
	if failed {
		os.Exit(1)
	}
}

func knownPackage(p string) bool {
	for _, k := range packages {
		if pkgLabel(k.name) == p {
			return true
		}
	}
	return false
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[conformance %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
