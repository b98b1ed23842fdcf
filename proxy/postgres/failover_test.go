package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rdslocal/rdslocal/proxy"
)

// The proxy's side of a failover and of READ_ONLY endpoints, with the
// control plane's changes played by Apply and real servers as targets.

// extraPG starts another test server for the test.
func extraPG(t *testing.T) *pgServer {
	t.Helper()
	requirePG(t)
	s, err := startPG(30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// fatals collects the FATALs the proxy sends a client.
type fatals struct{ ch chan *pgconn.PgError }

// all returns the FATALs received so far.
func (f fatals) all() []*pgconn.PgError {
	var out []*pgconn.PgError
	for len(f.ch) > 0 {
		out = append(out, <-f.ch)
	}
	return out
}

// recording connects through the harness, keeping the FATALs the proxy
// sends.
func recording(t *testing.T, dsn string) (*pgx.Conn, fatals) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	f := fatals{ch: make(chan *pgconn.PgError, 8)}
	cfg.OnPgError = func(_ *pgconn.PgConn, e *pgconn.PgError) bool {
		if e.Severity == "FATAL" {
			f.ch <- e
		}
		return e.Severity != "FATAL"
	}
	c, err := pgx.ConnectConfig(ctxT(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, f
}

// closedWith waits, sending nothing, until the proxy closes c, and
// returns the FATAL it sent first.
func closedWith(t *testing.T, c *pgx.Conn, f fatals) *pgconn.PgError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.PgConn().WaitForNotification(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("the proxy did not close the session: %v", err)
	}
	if all := f.all(); len(all) > 0 {
		return all[0]
	}
	return nil
}

func failoverFatal(e *pgconn.PgError, pinned bool) bool {
	return e != nil && e.Code == failoverCode && (e.Message == failoverPinnedText) == pinned &&
		(e.Message == failoverPinnedText || e.Message == failoverTxText)
}

func serverPort(t *testing.T, c *pgx.Conn) int {
	t.Helper()
	var p int
	if err := c.QueryRow(ctxT(t, 10*time.Second), "SELECT inet_server_port()").Scan(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFailoverEvictsHeldSessions: when the writer target moves (another
// address) or is demoted in place (its role changes from READ_WRITE), the
// sessions pinned to it and those with a transaction or a statement on it
// are closed at once with FATAL 57P01, and nothing more is sent to it; idle
// sessions carry on against the new writer with no error.
func TestFailoverEvictsHeldSessions(t *testing.T) {
	a := requirePG(t)
	b := extraPG(t)
	for _, tc := range []struct {
		name    string
		targets []proxy.TargetSpec
	}{
		{"writer-moved", []proxy.TargetSpec{{ID: "db-2", Host: "127.0.0.1", Port: b.port, Role: proxy.RoleReadWrite}}},
		{"writer-demoted", []proxy.TargetSpec{
			{ID: "db-1", Host: "127.0.0.1", Port: a.port, Role: proxy.RoleReadOnly},
			{ID: "db-2", Host: "127.0.0.1", Port: b.port, Role: proxy.RoleReadWrite}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, a, nil)
			ctx := ctxT(t, time.Minute)
			dsn := h.dsn(appUser, appPW, "")
			idle, idleF := recording(t, dsn)
			if serverPort(t, idle) != a.port {
				t.Fatal("idle client not on the first writer")
			}
			pinned, pinnedF := recording(t, dsn)
			if _, err := pinned.Exec(ctx, "SET application_name = 'pinned'"); err != nil {
				t.Fatal(err)
			}
			inTx, inTxF := recording(t, dsn)
			if _, err := inTx.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			if _, err := inTx.Exec(ctx, "INSERT INTO items VALUES (-1, 1, 'in-tx')"); err != nil {
				t.Fatal(err)
			}
			running, _ := recording(t, dsn)
			runErr, ran := make(chan error, 1), make(chan struct{})
			runCtx, cancelRun := context.WithCancel(ctx)
			query := "SELECT pg_sleep(30), " + strconv.FormatInt(time.Now().UnixNano(), 10) // its own text: the server of an earlier run may still sleep
			go func() {
				defer close(ran)
				_, err := running.Exec(runCtx, query)
				runErr <- err
			}()
			t.Cleanup(func() { cancelRun(); <-ran }) // before the connection closes
			adm, err := a.admin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, func() error {
				var n int
				if err := adm.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = $1", query).Scan(&n); err != nil || n != 1 {
					return errors.New("the statement is not running yet")
				}
				return nil
			})
			t.Cleanup(func() {
				// The evicted statement's backend sleeps on: the server is
				// shared with later tests.
				adm.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1", query)
				adm.Close(context.Background())
			})

			sp := h.spec
			sp.Targets = tc.targets
			if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
				t.Fatal(err)
			}

			if e := closedWith(t, pinned, pinnedF); !failoverFatal(e, true) {
				t.Errorf("pinned session closed with %+v, want FATAL 57P01 (pinned)", e)
			}
			if e := closedWith(t, inTx, inTxF); !failoverFatal(e, false) {
				t.Errorf("session in a transaction closed with %+v, want FATAL 57P01", e)
			}
			var pe *pgconn.PgError
			if err := <-runErr; !errors.As(err, &pe) || !failoverFatal(pe, false) {
				t.Errorf("running statement: %v, want FATAL 57P01", err)
			}
			if p := serverPort(t, idle); p != b.port {
				t.Errorf("idle session served by port %d after the failover, want %d", p, b.port)
			}
			if got := idleF.all(); len(got) != 0 {
				t.Errorf("idle session got %v", got)
			}
			// The transaction was not committed anywhere.
			for _, s := range []*pgServer{a, b} {
				adm, err := s.admin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var n int
				err = adm.QueryRow(ctx, "SELECT count(*) FROM items WHERE note = 'in-tx'").Scan(&n)
				adm.Close(ctx)
				if err != nil || n != 0 {
					t.Errorf("server %d: %d in-tx rows, %v", s.port, n, err)
				}
			}
		})
	}
}

// TestReaderRouting: a READ_ONLY endpoint routes to readers only: none at
// all fails at once (08004), none in service waits the borrow timeout
// (53300) and never falls back to the writer; among readers the least
// borrowed serves, round robin among equals; a reader that is down is
// skipped at once for another.
func TestReaderRouting(t *testing.T) {
	w := requirePG(t)
	r1, r2 := extraPG(t), extraPG(t)
	ro := freePort()
	roAddr := "127.0.0.1:" + strconv.Itoa(ro)
	h := newHarness(t, w, func(sp *proxy.ProxySpec) {
		sp.Endpoints = append(sp.Endpoints, proxy.EndpointSpec{Name: "ro", Listen: roAddr, TargetRole: proxy.RoleReadOnly})
		sp.Pool.BorrowTimeout = time.Second
	})
	roDSN := strings.Replace(h.dsn(appUser, appPW, ""), "port="+h.addr[strings.LastIndexByte(h.addr, ':')+1:], "port="+strconv.Itoa(ro), 1)
	apply := func(hasReaders bool, readers ...*pgServer) {
		t.Helper()
		sp := h.spec
		sp.HasReaders = hasReaders
		for i, r := range readers {
			sp.Targets = append(sp.Targets, proxy.TargetSpec{ID: "reader-" + strconv.Itoa(i+1), Host: "127.0.0.1", Port: r.port, Role: proxy.RoleReadOnly})
		}
		if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
			t.Fatal(err)
		}
	}
	loginErr := func() *pgconn.PgError {
		t.Helper()
		c, err := pgx.Connect(ctxT(t, 10*time.Second), roDSN)
		if err == nil {
			p := serverPort(t, c)
			c.Close(context.Background())
			t.Fatalf("the READ_ONLY endpoint served a client (port %d)", p)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("login: %v", err)
		}
		return pe
	}

	// No reader at all: at once, 08004.
	if e := loginErr(); e.Code != noReadersCode || e.Message != noReadersText {
		t.Fatalf("no readers: %s %s, want %s", e.Code, e.Message, noReadersCode)
	}
	// Readers, none in service: the borrow timeout, never the writer.
	apply(true)
	if e := loginErr(); e.Code != "53300" || e.Message != borrowTimeoutText {
		t.Fatalf("no reader in service: %s %s, want 53300", e.Code, e.Message)
	}

	apply(true, r1, r2)
	ctx := ctxT(t, time.Minute)
	c, err := pgx.Connect(ctx, roDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	seen := map[int]int{}
	for range 10 {
		seen[serverPort(t, c)]++
	}
	if seen[r1.port] == 0 || seen[r2.port] == 0 || len(seen) != 2 {
		t.Fatalf("requests served by %v, want both readers (%d, %d) only", seen, r1.port, r2.port)
	}

	// Least borrowed: while a transaction holds one reader, the other
	// serves.
	holder, err := pgx.Connect(ctx, roDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var busy int
	if err := tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&busy); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if p := serverPort(t, c); p == busy {
			t.Fatalf("request served by the reader holding a transaction (%d)", p)
		}
	}
	tx.Rollback(ctx)

	// A reader that is down is skipped at once.
	r2.stop()
	for range 6 {
		if p := serverPort(t, c); p != r1.port {
			t.Fatalf("request served by %d with reader %d down", p, r2.port)
		}
	}
}

// TestNoWriterQueues: while no target serves as the writer, a request
// waits: it is served once a writer is back, and fails with 53300 when the
// borrow timeout passes first; the session goes on.
func TestNoWriterQueues(t *testing.T) {
	a := requirePG(t)
	h := newHarness(t, a, func(sp *proxy.ProxySpec) { sp.Pool.BorrowTimeout = time.Second })
	ctx := ctxT(t, time.Minute)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	sp := h.spec
	sp.Targets = nil
	if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(ctx, "SELECT 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || pe.Message != borrowTimeoutText {
		t.Fatalf("no writer: %v, want 53300", err)
	}
	// A writer that comes back while the request waits serves it.
	sp.Pool.BorrowTimeout = 30 * time.Second
	if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "SELECT 1")
		res <- err
	}()
	time.Sleep(200 * time.Millisecond) // the request waits meanwhile
	if err := h.m.Apply([]proxy.ProxySpec{h.spec}); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("request queued until the writer came back: %v", err)
	}
}

// TestFailoverMidResponse: a failover while rows stream to the client
// ends the session with the failover's FATAL, which the client reads as a
// message (never in the middle of a row).
func TestFailoverMidResponse(t *testing.T) {
	a := requirePG(t)
	b := extraPG(t)
	h := newHarness(t, a, nil)
	ctx := ctxT(t, time.Minute)
	c, _ := recording(t, h.dsn(appUser, appPW, ""))
	query := "SELECT g, repeat('x', 200) FROM generate_series(1, 50000000) g -- " + strconv.FormatInt(time.Now().UnixNano(), 10)
	t.Cleanup(func() {
		adm, err := a.admin(context.Background())
		if err == nil {
			adm.Exec(context.Background(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1", query)
			adm.Close(context.Background())
		}
	})
	rows, err := c.Query(ctx, query, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		t.Fatalf("no first row: %v", rows.Err())
	}
	sp := h.spec
	sp.Targets = []proxy.TargetSpec{{ID: "db-2", Host: "127.0.0.1", Port: b.port, Role: proxy.RoleReadWrite}}
	if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
	}
	var pe *pgconn.PgError
	if err := rows.Err(); !errors.As(err, &pe) || !failoverFatal(pe, false) {
		t.Fatalf("rows streaming at the failover ended with %v, want FATAL 57P01", err)
	}
}
