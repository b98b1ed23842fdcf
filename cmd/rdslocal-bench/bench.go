package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/rdslocal/rdslocal/cmd/internal/rdsproc"
)

const (
	dbUser     = "bench"
	dbPassword = "bench-password-1"
	dbName     = "bench"
)

// endpointT is one place pgbench and the connection tests talk to.
type endpointT struct {
	name string // direct, rdslocal, pgbouncer
	host string
	port int
}

type bench struct {
	opt   options
	start time.Time
	tmp   string

	mu       sync.Mutex
	cleanups []func()

	rdslocal  *exec.Cmd
	pgbouncer *exec.Cmd
	apiURL    string

	direct, proxy, bouncer endpointT
	maxConns, poolSize     int
	pgVersion, pgbVersion  string
	scramSecret            string
	baseBusy, endBusy      float64 // % of all CPUs busy before and after the run
	loadAvg                string
	sample0                cpuSample
	otherAll               float64 // % of all CPUs used by other processes during the run
	bouncerPrepared        bool    // PgBouncer ≥ 1.21 tracks protocol-level prepared statements

	res results
	my  myBench
	// pgDone: the PostgreSQL section ran to the end (its figures are written).
	pgDone bool
}

// onCleanup registers f to run at the end, in reverse order.
func (b *bench) onCleanup(f func()) {
	b.mu.Lock()
	b.cleanups = append(b.cleanups, f)
	b.mu.Unlock()
}

func (b *bench) cleanup() {
	b.mu.Lock()
	fs := b.cleanups
	b.cleanups = nil
	b.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (b *bench) run(ctx context.Context) error {
	rdsproc.RaiseNoFile(max(b.opt.idle*2, b.opt.myIdle*3)+1000, logf)
	// Other work on the machine skews every figure: measure it first.
	b.baseBusy = busyFor(2 * time.Second)
	if b.baseBusy > 10 && b.opt.waitQuiet > 0 {
		logf("machine busy %.0f%%; waiting up to %s for it to be quiet", b.baseBusy, b.opt.waitQuiet)
		for end := time.Now().Add(b.opt.waitQuiet); b.baseBusy > 10 && time.Now().Before(end) && ctx.Err() == nil; {
			time.Sleep(3 * time.Second)
			b.baseBusy = busyFor(2 * time.Second)
		}
	}
	b.loadAvg = strings.Join(strings.Fields(readFileString("/proc/loadavg"))[:3], " ")
	logf("machine busy %.0f%% before the run (load average %s)", b.baseBusy, b.loadAvg)
	if b.baseBusy > 10 {
		logf("WARNING: something else is using the CPU; the figures will be skewed")
	}
	if b.opt.families["postgres"] {
		if err := ensurePgBouncer(ctx); err != nil {
			return err
		}
		if _, err := exec.LookPath("pgbench"); err != nil {
			return fmt.Errorf("pgbench not found (apt-get install postgresql-client): %v", err)
		}
	}
	if b.opt.families["mysql"] {
		if err := ensureSysbench(ctx); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "rdslocal-bench-")
	if err != nil {
		return err
	}
	// The database servers and PgBouncer run as the postgres user when we
	// are root: they must be able to reach their directories.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return err
	}
	b.tmp = tmp
	b.onCleanup(func() {
		rdsproc.KillStragglers(tmp, logf)
		if b.opt.keep {
			logf("kept %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	})
	logf("work directory %s", tmp)

	b.sample0 = machineCPU()
	if err := b.startRdslocal(ctx); err != nil {
		return err
	}
	if b.opt.families["postgres"] {
		if err := b.runPostgres(ctx); err != nil {
			return err
		}
	}
	if b.opt.families["mysql"] {
		if err := b.runMySQL(ctx); err != nil {
			return err
		}
	}
	b.otherAll = foreign(b.sample0, machineCPU())
	b.endBusy = busyFor(2 * time.Second)
	b.printSummary()
	return b.writeReport()
}

// runPostgres is the PostgreSQL section: pgbench against the database,
// rdslocal and PgBouncer, idle clients, connection rate.
func (b *bench) runPostgres(ctx context.Context) error {
	if err := b.createResources(ctx); err != nil {
		return err
	}
	if err := b.startPgBouncer(ctx); err != nil {
		return err
	}
	if err := b.initPgbench(ctx); err != nil {
		return err
	}
	if err := b.runMatrix(ctx); err != nil {
		return err
	}
	if b.opt.idle > 0 {
		if err := b.idleClients(ctx); err != nil {
			return err
		}
	}
	if b.opt.connTime > 0 {
		if err := b.connectRate(ctx); err != nil {
			return err
		}
	}
	if b.opt.perf {
		if err := b.perfRuns(ctx); err != nil {
			return err
		}
	}
	b.pgDone = true
	return nil
}

func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// busyFor is the share of all CPUs busy during d, in percent.
func busyFor(d time.Duration) float64 {
	m0 := machineCPU()
	time.Sleep(d)
	m1 := machineCPU()
	if m1.total <= m0.total {
		return 0
	}
	return 100 * float64(m1.busy-m0.busy) / float64(m1.total-m0.total)
}
