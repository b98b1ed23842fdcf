// Command rdslocal-bench measures rdslocal's data plane on this machine and
// writes the figures into BENCHMARKS.md: the PostgreSQL proxy against the
// database directly and against PgBouncer, then the MySQL proxy against
// MariaDB directly. It is what `make bench` runs; it is not part of
// `make test`. -families postgres,mysql chooses the sections (each has its
// own markers in the report; a section that did not run keeps its figures).
//
// The PostgreSQL section:
//
//  1. installs pgbouncer from Debian when it is missing (as root);
//  2. starts bin/rdslocal with a temporary data directory and a free API
//     port, and through the AWS API creates a postgres DB instance, a
//     secret with its master credentials, a POSTGRESQL proxy using it
//     (SCRAM), registers the instance and sets the target group's pool
//     (MaxConnectionsPercent = MaxIdleConnectionsPercent, so the pool size
//     is max_connections × percent);
//  3. starts PgBouncer (transaction mode, the same pool size, SCRAM with the
//     database's own SCRAM secret, TLS offered to clients with an ECDSA
//     P-256 certificate like the proxy's) as the postgres user;
//  4. pgbench -i -s 1 on the database, then pgbench -S with -M simple,
//     extended and prepared at 1, 16 and 64 clients against the database,
//     rdslocal and PgBouncer; TPS from pgbench, p50/p99 from its
//     per-transaction log (-l);
//  5. opens idle client connections to the proxy (plain, then TLS on top)
//     and reads rdslocal's VmRSS before and after; the same for PgBouncer;
//  6. TLS + SCRAM connections per second through the proxy and PgBouncer;
//  7. writes the figures between the markers of BENCHMARKS.md (the text
//     around them is kept);
//  8. stops everything it started, also on failure or Ctrl-C.
//
// The MySQL section, in the same rdslocal:
//
//  1. installs sysbench from Debian when it is missing (as root);
//  2. through the AWS API creates a mariadb DB instance, a secret, a MYSQL
//     proxy using it (MYSQL_NATIVE_PASSWORD by default), registers the
//     instance and sets the pool as above;
//  3. sysbench prepare (one table), then oltp_point_select and
//     oltp_read_only at 1, 16 and 64 threads against the database and the
//     proxy, text protocol (prepared statements pin), no TLS; TPS and p99
//     from sysbench, p50 from its latency histogram;
//  4. opens idle go-mysql clients to the proxy (plain, then TLS on top) and
//     reads rdslocal's VmRSS before and after;
//  5. writes its figures between its own markers.
//
// No MySQL transaction pooler is compared: Debian packages none.
//
// Nothing here sends traffic anywhere but 127.0.0.0/8.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	bin         string
	out         string
	duration    time.Duration
	clients     []int
	modes       []string
	idle        int
	connTime    time.Duration
	connWorkers int
	class       string
	poolPct     int
	keep        bool
	perf        bool
	perfGraph   bool
	env         []string
	waitQuiet   time.Duration

	families    map[string]bool // postgres, mysql
	myTests     []string        // sysbench tests
	myThreads   []int
	myClass     string
	myAuth      string // the MYSQL proxy's ClientPasswordAuthType
	myTableSize int
	myIdle      int
}

func main() {
	var o options
	var clients, modes, families, myTests, myThreads string
	flag.StringVar(&families, "families", "postgres,mysql", "engine families to measure: postgres (pgbench, PgBouncer), mysql (sysbench); comma-separated")
	flag.StringVar(&myTests, "mysql-tests", "oltp_point_select,oltp_read_only", "sysbench tests of the MySQL section")
	flag.StringVar(&myThreads, "mysql-threads", "1,16,64", "sysbench thread counts")
	flag.StringVar(&o.myClass, "mysql-class", "db.m5.large", "class of the MariaDB instance (max_connections: large = 200)")
	flag.StringVar(&o.myAuth, "mysql-auth", "MYSQL_NATIVE_PASSWORD", "ClientPasswordAuthType of the MYSQL proxy (MYSQL_NATIVE_PASSWORD or MYSQL_CACHING_SHA2_PASSWORD)")
	flag.IntVar(&o.myTableSize, "mysql-table-size", 100000, "rows of sysbench's table (sysbench prepare --tables=1)")
	flag.IntVar(&o.myIdle, "mysql-idle", -1, "idle MySQL client connections for the RSS measurement (0 skips; default: -idle)")
	flag.StringVar(&o.bin, "bin", "bin/rdslocal", "rdslocal binary")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "report to update (figures go between its markers)")
	flag.DurationVar(&o.duration, "T", 10*time.Second, "duration of each pgbench run")
	flag.StringVar(&clients, "clients", "1,16,64", "pgbench client counts")
	flag.StringVar(&modes, "modes", "simple,extended,prepared", "pgbench query modes")
	flag.IntVar(&o.idle, "idle", 5000, "idle client connections for the RSS measurement (0 skips)")
	flag.DurationVar(&o.connTime, "conn-time", 10*time.Second, "duration of the TLS+SCRAM connection-rate test (0 skips)")
	flag.IntVar(&o.connWorkers, "conn-workers", 8, "concurrent connectors in the connection-rate test")
	flag.StringVar(&o.class, "class", "db.m5.large", "DB instance class (sets max_connections: large = 200)")
	flag.IntVar(&o.poolPct, "pool-percent", 10, "MaxConnectionsPercent (and MaxIdleConnectionsPercent) of the proxy's target group")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, configs) after the run")
	flag.BoolVar(&o.perf, "perf", false, "after the measured runs, profile rdslocal with perf(1) during one extra pgbench run per mode at the largest client count and during TLS connects (reports in the work directory; use with -keep)")
	flag.BoolVar(&o.perfGraph, "perf-g", false, "with -perf: record call graphs and report inclusive time per function (callees included)")
	flag.DurationVar(&o.waitQuiet, "wait-quiet", 2*time.Minute, "when other processes keep the CPUs over 10% busy, wait up to this long before starting")
	var env string
	flag.StringVar(&env, "rdslocal-env", "", "extra environment for rdslocal, for experiments: comma-separated KEY=VALUE (e.g. GOGC=50,GOMAXPROCS=1)")
	flag.Parse()
	for _, kv := range strings.Split(env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			if !strings.Contains(kv, "=") {
				fmt.Fprintf(os.Stderr, "bad -rdslocal-env %q\n", env)
				os.Exit(2)
			}
			o.env = append(o.env, kv)
		}
	}
	for _, f := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad -clients %q\n", clients)
			os.Exit(2)
		}
		o.clients = append(o.clients, n)
	}
	for _, m := range strings.Split(modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case "simple", "extended", "prepared":
			o.modes = append(o.modes, m)
		default:
			fmt.Fprintf(os.Stderr, "bad -modes %q\n", modes)
			os.Exit(2)
		}
	}

	o.families = map[string]bool{}
	for _, f := range strings.Split(families, ",") {
		switch f = strings.TrimSpace(f); f {
		case "postgres", "mysql":
			o.families[f] = true
		case "":
		default:
			fmt.Fprintf(os.Stderr, "bad -families %q (postgres, mysql)\n", families)
			os.Exit(2)
		}
	}
	if len(o.families) == 0 {
		fmt.Fprintf(os.Stderr, "bad -families %q (postgres, mysql)\n", families)
		os.Exit(2)
	}
	for _, t := range strings.Split(myTests, ",") {
		switch t = strings.TrimSpace(t); t {
		case "oltp_point_select", "oltp_read_only":
			o.myTests = append(o.myTests, t)
		default:
			fmt.Fprintf(os.Stderr, "bad -mysql-tests %q (oltp_point_select, oltp_read_only)\n", myTests)
			os.Exit(2)
		}
	}
	for _, f := range strings.Split(myThreads, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad -mysql-threads %q\n", myThreads)
			os.Exit(2)
		}
		o.myThreads = append(o.myThreads, n)
	}
	if o.myIdle < 0 {
		o.myIdle = o.idle
	}
	switch o.myAuth {
	case "MYSQL_NATIVE_PASSWORD", "MYSQL_CACHING_SHA2_PASSWORD":
	default:
		fmt.Fprintf(os.Stderr, "bad -mysql-auth %q\n", o.myAuth)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	b := &bench{opt: o, start: time.Now()}
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return b.run(ctx)
	}()
	stop()
	b.cleanup()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
		} else {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		}
		os.Exit(1)
	}
	logf("done in %s", time.Since(b.start).Round(time.Second))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
