// Command rdslocal-conformance runs real drivers' own test suites against
// rdslocal DB instances directly and through RDS Proxy endpoints in front
// of them, and reports every test that passes directly but not through the
// proxy. It is what `make conformance` runs. The drivers are pgx (a
// postgres instance and a POSTGRESQL proxy) and go-sql-driver/mysql (a
// mariadb instance and a MYSQL proxy); -drivers picks some.
//
// One run:
//
//  1. finds the version of each driver this module requires and downloads
//     it into the module cache (go mod download); its tests run there, with
//     the driver's own go.mod, and nothing of it is copied into this
//     repository;
//  2. starts bin/rdslocal with a temporary data directory and a free API
//     port, and through the AWS API creates per driver a DB instance (pgx:
//     postgres with database pgx_test; go-sql-driver/mysql: mariadb with
//     database gotest), a secret with its master credentials, and a proxy
//     using the secret with the instance as its target;
//  3. prepares pgx_test as pgx's testsetup/postgresql_setup.sql does (read
//     from the downloaded module), except that the roles it creates are not
//     superusers, since an RDS master user cannot grant that
//     (go-sql-driver/mysql's tests need only the database and its master
//     user);
//  4. runs `go test -json` on the driver's packages (pgx: ., pgxpool,
//     stdlib, pgconn, pgtype; go-sql-driver/mysql: .), one package at a
//     time with a timeout each, first pointed at the instance, then at the
//     proxy (PGX_TEST_DATABASE; MYSQL_TEST_ADDR, MYSQL_TEST_USER, …, with
//     MYSQL_TEST_CONCURRENT=1);
//  5. prints per driver the tests that passed directly but not through the
//     proxy, the excluded ones with their reasons, and a line "N passed, N
//     failed" counting, among the tests that passed directly, those that
//     passed and failed through the proxy, then the same line for all
//     drivers together; it exits 1 when a test that is not excluded failed
//     through the proxy (or nothing passed directly for a driver). A test
//     that fails directly (for instance one that needs SUPER or FILE,
//     which an RDS master user lacks) is not counted;
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
	"slices"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin     string
	run     string // -run for go test
	drivers []*driver
	pkgs    []string
	modes   []string // direct, proxy
	keep    bool
	hold    bool
	race    bool
}

func main() {
	var o options
	var drivers, pkgs, modes string
	flag.StringVar(&o.bin, "bin", "bin/rdslocal", "rdslocal binary")
	flag.StringVar(&drivers, "drivers", "pgx,mysql", "comma-separated drivers whose suites run: pgx, mysql (go-sql-driver/mysql)")
	flag.StringVar(&o.run, "run", "", "run only the tests matching this regular expression (go test -run)")
	flag.StringVar(&pkgs, "pkgs", "", "comma-separated packages to run (default: all of pgx,pgxpool,stdlib,pgconn,pgtype and mysql)")
	flag.StringVar(&modes, "modes", "direct,proxy", "where to run the tests: direct, proxy or both")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, go test output) after the run")
	flag.BoolVar(&o.hold, "hold", false, "after setting up, print the connection settings and wait for Ctrl-C instead of running the tests (for debugging)")
	flag.BoolVar(&o.race, "race", false, "run the tests with the race detector (slower)")
	flag.Parse()
	for _, name := range splitList(drivers) {
		d := driverNamed(name)
		if d == nil {
			fmt.Fprintf(os.Stderr, "unknown driver %q (pgx, mysql)\n", name)
			os.Exit(2)
		}
		if !slices.Contains(o.drivers, d) {
			o.drivers = append(o.drivers, d)
		}
	}
	if len(o.drivers) == 0 {
		fmt.Fprintln(os.Stderr, "no driver selected")
		os.Exit(2)
	}
	for _, p := range splitList(pkgs) {
		d := packageDriver(p)
		if d == nil {
			fmt.Fprintf(os.Stderr, "unknown package %q\n", p)
			os.Exit(2)
		}
		if !slices.Contains(o.drivers, d) {
			fmt.Fprintf(os.Stderr, "package %q is %s's, which -drivers does not select\n", p, d.name)
			os.Exit(2)
		}
		o.pkgs = append(o.pkgs, p)
	}
	if len(o.pkgs) > 0 { // only the drivers of the packages asked for
		o.drivers = slices.DeleteFunc(o.drivers, func(d *driver) bool {
			return !slices.ContainsFunc(o.pkgs, func(p string) bool { return packageDriver(p) == d })
		})
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
