package postgres

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/proxy"
)

func TestBackendKilledMidTransaction(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 20*time.Second)
	admin, err := srv.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	victim := h.mustConnect(ctx, "")
	defer victim.Close(ctx)
	bystander := h.mustConnect(ctx, "")
	defer bystander.Close(ctx)
	tx, err := victim.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT 1")
	if code := pgCode(err); code != "57P01" && code != "08006" {
		t.Fatalf("victim got %v (code %q)", err, code)
	}
	for i := 0; i < 5; i++ {
		if _, err := bystander.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("bystander: %v", err)
		}
	}
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

func TestClientGoneMidTransaction(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 20*time.Second)
	admin, err := srv.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	c := h.mustConnect(ctx, "")
	tx, _ := c.Begin(ctx)
	var pid int
	tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid)
	if _, err := tx.Exec(ctx, "INSERT INTO items (client, n) VALUES (8000, 1)"); err != nil {
		t.Fatal(err)
	}
	c.PgConn().Conn().Close() // vanish without Terminate
	eventually(t, 5*time.Second, func() error {
		var state string
		err := admin.QueryRow(ctx, "SELECT state FROM pg_stat_activity WHERE pid = $1", pid).Scan(&state)
		if err != nil || state != "idle" {
			return fmt.Errorf("backend %d state %q %v", pid, state, err)
		}
		return nil
	})
	var n int
	admin.QueryRow(ctx, "SELECT count(*) FROM items WHERE client = 8000").Scan(&n)
	if n != 0 {
		t.Fatalf("uncommitted insert visible: %d", n)
	}
	// The backend went back to the pool and serves the next client.
	c2 := h.mustConnect(ctx, "")
	defer c2.Close(ctx)
	var pid2 int
	c2.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid2)
	if pid2 != pid {
		t.Fatalf("backend not reused: %d vs %d", pid2, pid)
	}
}

func TestBorrowTimeout(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) {
		s.Pool.MaxConnectionsPercent = 1 // one connection
		s.Pool.BorrowTimeout = 300 * time.Millisecond
	})
	ctx := ctxT(t, 20*time.Second)
	waiter := h.mustConnect(ctx, "")
	defer waiter.Close(ctx)
	holder := h.mustConnect(ctx, "")
	defer holder.Close(ctx)
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = waiter.Exec(ctx, "SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "Timed-out waiting to acquire database connection.") || pgCode(err) != "53300" {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Fatalf("waited %v", d)
	}
	// A new login cannot borrow either.
	if _, err := h.connect(ctx, ""); err == nil || !strings.Contains(err.Error(), "Timed-out waiting") {
		t.Fatalf("login: %v", err)
	}
	tx.Rollback(ctx)
	if _, err := waiter.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestDatabaseRestart(t *testing.T) {
	requirePG(t)
	srv, err := startPG(20)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.Pool.BorrowTimeout = 500 * time.Millisecond })
	ctx := ctxT(t, 40*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if st, _, _ := h.m.TargetHealth(h.spec.ID, "db-1"); st != "AVAILABLE" {
			return fmt.Errorf("health %s", st)
		}
		return nil
	})
	srv.stop()
	_, err = c.Exec(ctx, "SELECT 1")
	if err == nil || !strings.Contains(err.Error(), "Timed-out waiting") {
		t.Fatalf("while down: %v", err)
	}
	if st, reason, _ := h.m.TargetHealth(h.spec.ID, "db-1"); st != "UNAVAILABLE" || reason != "CONNECTION_FAILED" {
		t.Fatalf("health while down: %s %s", st, reason)
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	// The same client session recovers: the stale idle connection is
	// discarded and a new one dialled.
	var v int
	if err := c.QueryRow(ctx, "SELECT 7").Scan(&v); err != nil || v != 7 {
		t.Fatalf("after restart: %d %v", v, err)
	}
	if st, _, _ := h.m.TargetHealth(h.spec.ID, "db-1"); st != "AVAILABLE" {
		t.Fatalf("health after restart: %s", st)
	}
}

func TestApplyRemovesEndpointUnderLoad(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) {
		s.Endpoints = append(s.Endpoints, proxy.EndpointSpec{Name: "second", Listen: fmt.Sprintf("127.0.0.1:%d", freePort())})
	})
	second := h.spec.Endpoints[1].Listen
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	failures := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host, port, _ := net.SplitHostPort(second)
			c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=disable", host, port, appUser, appPW))
			if err != nil {
				failures <- err
				return
			}
			defer c.Close(context.Background())
			for {
				tx, err := c.Begin(ctx)
				if err == nil {
					_, err = tx.Exec(ctx, "SELECT pg_sleep(0.001)")
					if err == nil {
						err = tx.Commit(ctx)
					}
				}
				if err != nil {
					failures <- err
					return
				}
				select {
				case <-stop:
					failures <- nil
					return
				default:
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	spec := h.spec
	spec.Endpoints = spec.Endpoints[:1]
	if err := h.m.Apply([]proxy.ProxySpec{spec}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(stop)
	close(failures)
	n := 0
	for err := range failures {
		if err != nil {
			n++
		}
	}
	if n != 20 {
		t.Fatalf("%d of 20 clients of the removed endpoint saw their connection end", n)
	}
	if _, err := net.DialTimeout("tcp", second, time.Second); err == nil {
		t.Fatal("removed endpoint still accepts")
	}
	// The remaining endpoint works and the pool is clean.
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	var idleTx int
	admin, _ := srv.admin(ctx)
	defer admin.Close(ctx)
	eventually(t, 5*time.Second, func() error {
		admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'").Scan(&idleTx)
		if idleTx != 0 {
			return fmt.Errorf("%d idle-in-transaction backends", idleTx)
		}
		return nil
	})
	if st, err := h.m.Status(h.spec.ID, "default"); err != nil || !st {
		t.Fatalf("status %v %v", st, err)
	}
}

func TestIdleClientTimeout(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.IdleClientTimeout = 200 * time.Millisecond })
	ctx := ctxT(t, 10*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	time.Sleep(500 * time.Millisecond)
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("idle client still connected")
	}
}

func TestCancelRequestForwarded(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 20*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	start := time.Now()
	// pgconn sends a CancelRequest when the context ends.
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err := c.Exec(qctx, "SELECT pg_sleep(10)")
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancel did not reach the server: %v after %v", err, time.Since(start))
	}
}

func TestPsql(t *testing.T) {
	srv := requirePG(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("no psql")
	}
	h := newHarness(t, srv, nil)
	host, port, _ := net.SplitHostPort(h.addr)
	cmd := exec.Command(psql, "-X", "-At", "-h", host, "-p", port, "-U", appUser, "-d", "postgres",
		"-c", "SELECT 40 + 2", "-c", "SELECT current_setting('application_name')")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+appPW, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+h.caFile)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("psql: %v: %s", err, errb.String())
	}
	if got := out.String(); got != "42\npsql\n" {
		t.Fatalf("psql printed %q", got)
	}
}

func TestMetrics(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 10*time.Second)
	c := h.mustConnect(ctx, "")
	c.Exec(ctx, "SELECT 1")
	c.Close(ctx)
	var buf bytes.Buffer
	h.m.WriteMetrics(&buf)
	out := buf.String()
	for _, want := range []string{
		`rdslocal_ClientConnectionsReceived{proxy="test-proxy",endpoint="default"} 1`,
		`rdslocal_ClientConnectionsSetupSucceeded{proxy="test-proxy",endpoint="default"} 1`,
		`rdslocal_QueryRequests{proxy="test-proxy",endpoint="default"}`,
		`rdslocal_DatabaseConnections{proxy="test-proxy",target="db-1"}`,
		`rdslocal_MaxDatabaseConnectionsAllowed{proxy="test-proxy",target="db-1"} 30`,
		"rdslocal_DatabaseConnectionsCurrentlySessionPinned", "rdslocal_DatabaseConnectionsBorrowLatency_sum",
		"rdslocal_QueryDatabaseResponseLatency_count", "rdslocal_QueryResponseLatency_sum",
		"rdslocal_ClientConnectionsSetupFailedAuth", "rdslocal_ClientConnectionsTLS",
		"rdslocal_DatabaseConnectionsCurrentlyBorrowed", "rdslocal_DatabaseConnectionsCurrentlyInTransaction",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
