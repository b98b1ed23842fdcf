// Command rdslocal-soak measures what clients of an RDS Proxy see while
// the Aurora PostgreSQL cluster behind it fails over again and again, and
// what synchronous replication costs a commit. It is what `make soak`
// runs; it is not part of `make test`.
//
// One run:
//
//  1. starts bin/rdslocal with a temporary data directory and a free API
//     port;
//  2. commit latency (-latency): through the AWS API, a lone instance, a
//     Multi-AZ instance and a cluster with two readers of each engine
//     (postgres / aurora-postgresql, mariadb / aurora-mysql); single-row
//     INSERTs straight to the server, one client (p50, p99) and 8 clients
//     (commits/s); the resources are deleted afterwards;
//  3. the soak: an aurora-postgresql cluster (a writer and -readers
//     readers), a secret, a POSTGRESQL proxy in front of it (-engine
//     aurora-mysql: an aurora-mysql cluster, a MYSQL proxy, clients with
//     go-sql-driver/mysql, the pinned class setting a user variable
//     @soak_owner; its figures are printed only); -clients
//     clients through the proxy, in four classes — idle (a session that
//     writes now and then), in transaction (BEGIN, two INSERTs a moment
//     apart, COMMIT), pinned (a session-level SET, then writes that read
//     the setting back) and newly arriving (connect, write, disconnect) —
//     and a probe that writes continuously; every -interval the writer is
//     failed over (FailoverDBCluster) or its server killed with SIGKILL,
//     in turn, for -duration;
//  4. reports, per event, the time from the call or the death to the
//     probe's first successful write through the proxy on a server that
//     is not the former writer, the same per class, and the errors each
//     class saw; then acknowledged writes missing from the final writer,
//     cross-session state leaks (a session that reads another's setting)
//     and pinned sessions whose state vanished without an error, and
//     rdslocal's goroutines, threads, open files and proxy connection
//     gauges before and after;
//  5. writes the figures between the soak markers of BENCHMARKS.md;
//  6. stops rdslocal (and so its database servers) and removes the work
//     directory, also on failure or Ctrl-C.
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
	"syscall"
	"time"
)

type options struct {
	bin      string
	out      string
	engine   string
	clients  int
	readers  int
	duration time.Duration
	interval time.Duration
	think    time.Duration
	latency  bool
	soak     bool
	keep     bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/rdslocal", "rdslocal binary")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "report to update (figures go between its soak markers); empty: print only")
	flag.StringVar(&o.engine, "engine", "aurora-postgresql", "the soak cluster's engine: aurora-postgresql (a POSTGRESQL proxy, pgx) or aurora-mysql (a MYSQL proxy, go-sql-driver/mysql; the figures are printed, BENCHMARKS.md is not updated)")
	flag.IntVar(&o.clients, "clients", 500, "clients through the proxy (split 40% idle, 20% in transaction, 20% pinned, 20% newly arriving)")
	flag.IntVar(&o.readers, "readers", 2, "readers of the soak cluster")
	flag.DurationVar(&o.duration, "duration", 5*time.Minute, "how long the clients run")
	flag.DurationVar(&o.interval, "interval", 30*time.Second, "time between two failovers (counted once the cluster has settled)")
	flag.DurationVar(&o.think, "think", 2*time.Second, "mean pause of a client between two operations")
	flag.BoolVar(&o.latency, "latency", true, "measure the commit latency of lone, Multi-AZ and cluster writers first")
	flag.BoolVar(&o.soak, "soak", true, "run the failover soak")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (rdslocal's log and data) after the run")
	flag.Parse()
	if o.engine != "aurora-postgresql" && o.engine != "aurora-mysql" {
		fmt.Fprintln(os.Stderr, "soak: -engine aurora-postgresql or aurora-mysql, please")
		os.Exit(2)
	}
	if o.engine != "aurora-postgresql" {
		o.out = "" // BENCHMARKS.md's soak section is PostgreSQL's
	}
	if o.clients < 4 || o.readers < 1 || o.duration <= 0 || o.interval <= 0 || o.think <= 0 {
		fmt.Fprintln(os.Stderr, "soak: -clients ≥ 4, -readers ≥ 1 and positive durations, please")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	s := &soak{opt: o, start: time.Now()}
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return s.run(ctx)
	}()
	stop()
	s.cleanup()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "soak: interrupted")
		} else {
			fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		}
		os.Exit(1)
	}
	logf("done in %s", time.Since(s.start).Round(time.Second))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[soak %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
