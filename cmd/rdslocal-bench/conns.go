package main

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// idleResult is one batch of idle client connections held open.
type idleResult struct {
	target          string
	tls             bool
	kind            string // how to name the batch when not just plain / TLS
	n, opened, errs int
	firstErr        string
	seconds         float64 // to open them all
	rssBefore       int64   // kB
	rssAfter        int64   // kB
	rssAfterClose   int64   // kB, after every batch on this target closed
	poolerCPUms     float64 // pooler CPU per login, ms
}

func (r idleResult) kbPerClient() float64 {
	if r.opened == 0 {
		return 0
	}
	return float64(r.rssAfter-r.rssBefore) / float64(r.opened)
}

// openIdle opens n connections to e with 8 concurrent connectors, runs
// SELECT 1 on each and keeps them open.
func openIdle(ctx context.Context, e endpointT, sslmode string, n int) (conns []*pgconn.PgConn, errs int, firstErr string, secs float64) {
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	conns = make([]*pgconn.PgConn, 0, n)
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				c, err := pgconn.Connect(cctx, e.dsn(sslmode))
				if err == nil {
					// An idle client of a pool has run queries before.
					if _, err = c.Exec(cctx, "SELECT 1").ReadAll(); err != nil {
						c.Close(cctx)
					}
				}
				cancel()
				mu.Lock()
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, errs, firstErr, time.Since(t0).Seconds()
}

func closeAll(conns []*pgconn.PgConn) {
	var wg sync.WaitGroup
	ch := make(chan *pgconn.PgConn)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c.Close(ctx)
				cancel()
			}
		}()
	}
	for _, c := range conns {
		ch <- c
	}
	close(ch)
	wg.Wait()
}

// idleClients measures the resident memory of each pooler per idle client:
// n plain connections, then n TLS connections on top of them.
func (b *bench) idleClients(ctx context.Context) error {
	for _, t := range []struct {
		e   endpointT
		pid int
	}{{b.proxy, b.rdslocal.Process.Pid}, {b.bouncer, b.pgbouncer.Process.Pid}} {
		var held []*pgconn.PgConn
		var batch []int
		settle()
		for _, sslmode := range []string{"disable", "require"} {
			r := idleResult{target: t.e.name, tls: sslmode == "require", n: b.opt.idle}
			r.rssBefore = rssKB(t.pid)
			cpu0 := procCPU(t.pid)
			logf("opening %d idle %s clients to %s (sslmode=%s)", r.n, map[bool]string{false: "plain", true: "TLS"}[r.tls], t.e.name, sslmode)
			conns, errs, first, secs := openIdle(ctx, t.e, sslmode, r.n)
			cpu1 := procCPU(t.pid)
			held = append(held, conns...)
			r.opened, r.errs, r.firstErr, r.seconds = len(conns), errs, first, secs
			if r.opened > 0 {
				r.poolerCPUms = float64(cpu1-cpu0) / clkTck * 1000 / float64(r.opened)
			}
			settle()
			r.rssAfter = rssKB(t.pid)
			logf("  %d open (%d errors) in %.1fs = %.0f logins/s; %s RSS %d → %d kB: %.1f kB per client; %.2f ms pooler CPU per login",
				r.opened, r.errs, r.seconds, float64(r.opened)/r.seconds, t.e.name, r.rssBefore, r.rssAfter, r.kbPerClient(), r.poolerCPUms)
			if first != "" {
				logf("  first error: %s", first)
			}
			b.res.idle = append(b.res.idle, r)
			batch = append(batch, len(b.res.idle)-1)
			if ctx.Err() != nil {
				break
			}
		}
		// Check that they are still alive, then close them.
		alive := 0
		for _, c := range held {
			if !c.IsClosed() {
				alive++
			}
		}
		if alive != len(held) {
			logf("  %d of %d idle connections were closed by the server", len(held)-alive, len(held))
		}
		closeAll(held)
		time.Sleep(3 * time.Second)
		rss := rssKB(t.pid)
		for _, i := range batch {
			b.res.idle[i].rssAfterClose = rss
		}
		logf("  all closed: %s RSS %d kB", t.e.name, rss)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// settle lets the processes finish what they were doing before RSS is read.
func settle() {
	runtime.GC()
	time.Sleep(2 * time.Second)
}

// connRate is the TLS+SCRAM connection-rate test against one target.
type connRate struct {
	target      string
	workers     int
	seconds     float64
	ok, errs    int
	firstErr    string
	poolerCPU   float64 // % of one core
	poolerCPUms float64 // ms per connection
	clientCPU   float64 // % of one core used by this (client) process
	machineCPU  float64
	otherCPU    float64 // % of all cores used by processes not ours
}

func (r connRate) perSec() float64 { return float64(r.ok) / r.seconds }

// connectRate opens and closes pgx connections with sslmode=require for
// opt.connTime with opt.connWorkers workers, through the proxy and
// through PgBouncer.
func (b *bench) connectRate(ctx context.Context) error {
	for _, t := range []struct {
		e   endpointT
		pid int
	}{{b.proxy, b.rdslocal.Process.Pid}, {b.bouncer, b.pgbouncer.Process.Pid}} {
		// Repeated (twice at most) when other processes used the CPUs;
		// the quietest run counts.
		n := len(b.res.connRates)
		for try := 0; try < 3; try++ {
			if err := b.connectRateOne(ctx, t.e, t.pid); err != nil {
				return err
			}
			if b.res.connRates[len(b.res.connRates)-1].otherCPU <= otherLimit {
				break
			}
			waitQuiet(ctx, 30*time.Second)
		}
		best := b.res.connRates[n]
		for _, r := range b.res.connRates[n+1:] {
			if r.otherCPU < best.otherCPU {
				best = r
			}
		}
		b.res.connRates = append(b.res.connRates[:n], best)
	}
	return nil
}

func (b *bench) connectRateOne(ctx context.Context, e endpointT, pid int) error {
	settle()
	r := connRate{target: e.name, workers: b.opt.connWorkers}
	logf("TLS+SCRAM connects to %s: %d workers for %s", e.name, r.workers, b.opt.connTime)
	var ok, errs atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	cpu0, mach0, self0 := procCPU(pid), machineCPU(), selfCPU()
	t0 := time.Now()
	deadline := t0.Add(b.opt.connTime)
	for range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				c, err := pgx.Connect(cctx, e.dsn("require"))
				if err == nil {
					err = c.Close(cctx)
				}
				cancel()
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	r.seconds = time.Since(t0).Seconds()
	cpu1, mach1, self1 := procCPU(pid), machineCPU(), selfCPU()
	r.ok, r.errs = int(ok.Load()), int(errs.Load())
	sec := float64(cpu1-cpu0) / clkTck
	r.poolerCPU = 100 * sec / r.seconds
	if r.ok > 0 {
		r.poolerCPUms = sec * 1000 / float64(r.ok)
	}
	r.clientCPU = 100 * (self1 - self0).Seconds() / r.seconds
	if d := mach1.total - mach0.total; d > 0 {
		r.machineCPU = 100 * float64(mach1.busy-mach0.busy) / float64(d)
	}
	r.otherCPU = foreign(mach0, mach1)
	logf("  %d connections (%d errors) in %.1fs = %.0f conn/s; %s CPU %.0f%% (%.2f ms/conn), client CPU %.0f%%, machine %.0f%%, other processes %.0f%%",
		r.ok, r.errs, r.seconds, r.perSec(), e.name, r.poolerCPU, r.poolerCPUms, r.clientCPU, r.machineCPU, r.otherCPU)
	if r.firstErr != "" {
		logf("  first error: %s", r.firstErr)
	}
	b.res.connRates = append(b.res.connRates, r)
	return ctx.Err()
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
