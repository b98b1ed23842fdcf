package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// openIdleMySQL opens n connections to e with 8 concurrent connectors
// (go-mysql's client; TLS when tlsOn), runs SELECT 1 on each and keeps
// them open.
func openIdleMySQL(ctx context.Context, e endpointT, tlsOn bool, curves []tls.CurveID, n int) (conns []*client.Conn, errs int, firstErr string, secs float64) {
	var (
		mu   sync.Mutex
		next atomic.Int64
		wg   sync.WaitGroup
	)
	var opts []client.Option
	if tlsOn {
		// As sslmode=require in the PostgreSQL section: encrypted, not
		// verified (the certificate cost is the same).
		opts = append(opts, func(c *client.Conn) error {
			c.SetTLSConfig(&tls.Config{InsecureSkipVerify: true, CurvePreferences: curves})
			return nil
		})
	}
	conns = make([]*client.Conn, 0, n)
	t0 := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				c, err := client.ConnectWithContext(ctx, e.addr(), dbUser, dbPassword, dbName, 60*time.Second, opts...)
				if err == nil {
					// An idle client of a pool has run queries before.
					c.SetDeadline(time.Now().Add(60 * time.Second))
					if _, err = c.Execute("SELECT 1"); err != nil {
						c.Close()
					}
					c.SetDeadline(time.Time{})
				}
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

func closeAllMySQL(conns []*client.Conn) {
	var wg sync.WaitGroup
	ch := make(chan *client.Conn)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Quit()
				c.Close()
			}
		}()
	}
	for _, c := range conns {
		ch <- c
	}
	close(ch)
	wg.Wait()
}

// idleMySQLClients measures rdslocal's resident memory per idle MySQL
// client: n plain connections, then n TLS connections on top of them.
func (b *bench) idleMySQLClients(ctx context.Context) error {
	pid := b.rdslocal.Process.Pid
	var held []*client.Conn
	var batch []int
	settle()
	// Go clients offer a hybrid ML-KEM key share (1.2 KB) first;
	// libmariadb and libmysqlclient with OpenSSL 3.0 offer X25519: the
	// third batch is those.
	for _, k := range []struct {
		tls    bool
		curves []tls.CurveID
		kind   string
	}{{false, nil, "plain"}, {true, nil, "TLS"}, {true, []tls.CurveID{tls.X25519}, "TLS, X25519 only"}} {
		r := idleResult{target: "rdslocal", tls: k.tls, kind: k.kind, n: b.opt.myIdle}
		r.rssBefore = rssKB(pid)
		cpu0 := procCPU(pid)
		logf("opening %d idle %s MySQL clients to rdslocal", r.n, k.kind)
		conns, errs, first, secs := openIdleMySQL(ctx, b.my.proxy, k.tls, k.curves, r.n)
		cpu1 := procCPU(pid)
		held = append(held, conns...)
		r.opened, r.errs, r.firstErr, r.seconds = len(conns), errs, first, secs
		if r.opened > 0 {
			r.poolerCPUms = float64(cpu1-cpu0) / clkTck * 1000 / float64(r.opened)
		}
		settle()
		r.rssAfter = rssKB(pid)
		logf("  %d open (%d errors) in %.1fs = %.0f logins/s; rdslocal RSS %d → %d kB: %.1f kB per client; %.2f ms proxy CPU per login",
			r.opened, r.errs, r.seconds, float64(r.opened)/r.seconds, r.rssBefore, r.rssAfter, r.kbPerClient(), r.poolerCPUms)
		if first != "" {
			logf("  first error: %s", first)
		}
		b.my.idle = append(b.my.idle, r)
		batch = append(batch, len(b.my.idle)-1)
		if ctx.Err() != nil {
			break
		}
	}
	// Every held connection must still answer: the proxy keeps idle
	// clients (IdleClientTimeout is 30 minutes by default).
	dead := 0
	for _, c := range held[:min(len(held), 200)] {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if err := c.Ping(); err != nil {
			dead++
		}
		c.SetDeadline(time.Time{})
	}
	if dead > 0 {
		logf("  %d of the first %d idle connections no longer answer a ping", dead, min(len(held), 200))
		if i := batch[len(batch)-1]; b.my.idle[i].firstErr == "" {
			b.my.idle[i].firstErr = fmt.Sprintf("%d of the first %d idle connections no longer answered a ping", dead, min(len(held), 200))
		}
	}
	closeAllMySQL(held)
	time.Sleep(3 * time.Second)
	rss := rssKB(pid)
	for _, i := range batch {
		b.my.idle[i].rssAfterClose = rss
	}
	logf("  all closed: rdslocal RSS %d kB", rss)
	return ctx.Err()
}

// perfMySQL profiles rdslocal with perf(1) during one extra sysbench run
// per test at the largest thread count (not part of the figures).
func (b *bench) perfMySQL(ctx context.Context) error {
	threads := b.opt.myThreads[len(b.opt.myThreads)-1]
	for _, test := range b.opt.myTests {
		stop := b.perfStart(ctx, fmt.Sprintf("sysbench-%s-%d", test, threads))
		r := runResult{mode: test, clients: threads, target: "rdslocal"}
		b.sysbench(ctx, b.my.proxy, &r)
		stop()
		logf("  (profiled run: %.0f TPS)", r.tps)
	}
	return ctx.Err()
}
