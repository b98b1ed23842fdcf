package mysql

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-sql-driver/mysql"
	"github.com/rdslocal/rdslocal/engine/enginetest"
	"github.com/rdslocal/rdslocal/proxy"
)

// heldBackend returns the server thread ID of the connection the session
// with connection ID id holds, or 0.
func (h *harness) heldBackend(id uint32) uint32 {
	s := h.p.lookup(id)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return 0
	}
	return s.b.threadID
}

// TestClientGoneMidTransaction: the transaction is rolled back and the
// connection returned clean.
func TestClientGoneMidTransaction(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 1})
	ctx := ctxT(t, time.Minute)
	c, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"BEGIN", "INSERT INTO items (client, n) VALUES (-50, 1)"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatal(err)
		}
	}
	if h.heldBackend(c.GetConnectionID()) == 0 {
		t.Fatal("no connection held in the transaction")
	}
	c.Conn.Conn.Close() // gone, no COM_QUIT
	eventually(t, 10*time.Second, func() error {
		if h.idleCount() != 1 {
			return errors.New("connection not returned")
		}
		return nil
	})
	// The same client kind (same capabilities, so the same pool).
	d, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, err := d.Execute("SELECT COUNT(*), @@in_transaction FROM items WHERE client = -50")
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.GetInt(0, 0); n != 0 {
		t.Fatalf("%d rows of the abandoned transaction", n)
	}
	if n, _ := r.GetInt(0, 1); n != 0 {
		t.Fatal("connection still in a transaction")
	}
	if h.dials() != 1 {
		t.Fatalf("%d dials: the rolled-back connection should have been reused", h.dials())
	}
	_ = ctx
}

// TestBackendDies: the server connection of one session is killed on the
// server; that client gets an error, the other sessions go on.
func TestBackendDies(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 4})
	ctx := ctxT(t, time.Minute)
	a, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	other := conn(t, ctx, h.open(appUser, appPW, testDB, "interpolateParams=true"))
	if _, err := a.Execute("BEGIN"); err != nil {
		t.Fatal(err)
	}
	tid := h.heldBackend(a.GetConnectionID())
	if tid == 0 {
		t.Fatal("no held connection")
	}
	if err := srv.Exec(ctx, "KILL CONNECTION "+strconv.Itoa(int(tid))); err != nil {
		t.Fatal(err)
	}
	_, err = a.Execute("SELECT 1")
	if err == nil {
		t.Fatal("no error after the server connection died")
	}
	t.Logf("client saw: %v", err)
	for range 3 {
		if scan1[int](t, ctx, other, "SELECT 1") != 1 {
			t.Fatal("other session harmed")
		}
	}
}

// TestDatabaseRestart: after the database restarts, new connections work
// without restarting the proxy (dead idle connections are discarded).
func TestDatabaseRestart(t *testing.T) {
	requireMariaDB(t)
	srv, err := env.MariaDB(enginetest.Options{MaxConnections: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := seed(srv); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, srv, harnessOpts{})
	ctx := ctxT(t, 2*time.Minute)
	db := h.open(appUser, appPW, testDB, "interpolateParams=true")
	db.SetMaxIdleConns(0)
	for range 2 {
		c := conn(t, ctx, db)
		if scan1[int](t, ctx, c, "SELECT 1") != 1 {
			t.Fatal("before restart")
		}
		c.Close()
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		c = conn(t, ctx, db)
		if scan1[int](t, ctx, c, "SELECT 2") != 2 {
			t.Fatal("after restart")
		}
		c.Close()
	}
}

// TestKill: KILL QUERY n and KILL n, n being the connection ID the proxy
// gave a client, reach the server connection running that client's
// statement; other users' sessions and unknown IDs are out of reach.
func TestKill(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 6})
	ctx := ctxT(t, time.Minute)
	a, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	id := a.GetConnectionID()
	same := conn(t, ctx, h.open(appUser, appPW, testDB, "interpolateParams=true"))
	stranger := conn(t, ctx, h.open(sha2User, sha2PW, testDB, tlsParam()))

	run := func(q string) chan error {
		done := make(chan error, 1)
		go func() {
			r, err := a.Execute(q)
			if err == nil && r.Resultset != nil {
				if v, _ := r.GetInt(0, 0); v == 1 {
					err = errors.New("interrupted") // SLEEP() returns 1 when killed
				}
			}
			done <- err
		}()
		eventually(t, 10*time.Second, func() error {
			if h.heldBackend(id) == 0 {
				return errors.New("statement not running yet")
			}
			return nil
		})
		return done
	}
	done := run("SELECT SLEEP(30)")
	if _, err := stranger.ExecContext(ctx, fmt.Sprintf("KILL QUERY %d", id)); myErrNo(err) != 1094 {
		t.Fatalf("another user's KILL: %v", err)
	}
	if _, err := same.ExecContext(ctx, "KILL QUERY 4000000000"); myErrNo(err) != 1094 {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := same.ExecContext(ctx, "KILL USER app"); myErrNo(err) != 1235 {
		t.Fatalf("KILL USER: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("statement ended early: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	start := time.Now()
	mustExec(t, ctx, same, fmt.Sprintf("KILL QUERY %d", id))
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("SLEEP finished normally")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("KILL QUERY did not interrupt the statement")
	}
	t.Logf("interrupted after %v", time.Since(start))
	// The session goes on after KILL QUERY.
	if _, err := a.Execute("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// KILL CONNECTION ends it.
	done = run("SELECT SLEEP(30)")
	mustExec(t, ctx, same, fmt.Sprintf("KILL %d", id))
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("KILL did not end the session")
	}
	if _, err := a.Execute("SELECT 1"); err == nil {
		t.Fatal("killed connection still works")
	}
	if scan1[int](t, ctx, same, "SELECT 3") != 3 {
		t.Fatal("killer session broken")
	}
}

// TestTargetHealth: the core's health probe logs in through Probe:
// AVAILABLE with the secret's password, UNAVAILABLE with AUTH_FAILURE when
// the server refuses it (and the client gets the server's ERROR 1045),
// CONNECTION_FAILED when nothing listens on the target's port.
func TestTargetHealth(t *testing.T) {
	srv := requireMariaDB(t)
	health := func(h *harness, want, reason string) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			st, r, desc := h.m.TargetHealth(h.spec.ID, "db-1")
			if st != want || r != reason {
				return fmt.Errorf("target health %s %s %q, want %s %s", st, r, desc, want, reason)
			}
			return nil
		})
	}
	health(newHarness(t, srv, harnessOpts{}), "AVAILABLE", "")

	h := newHarness(t, srv, harnessOpts{})
	h.secrets.put("arn:app", appUser, "not-the-password")
	h.secrets.put("arn:sha2", sha2User, "not-the-password")
	h.secrets.put("arn:iam", iamUser, "not-the-password")
	if err := h.m.Apply([]proxy.ProxySpec{h.spec}); err != nil { // probes again at once
		t.Fatal(err)
	}
	health(h, "UNAVAILABLE", "AUTH_FAILURE")
	_, err := client.Connect(h.addr, appUser, "not-the-password", testDB)
	if err == nil || !strings.Contains(err.Error(), "1045") {
		t.Fatalf("login with the secret's (wrong) password: %v, want the server's ERROR 1045", err)
	}

	down := newHarness(t, srv, harnessOpts{mod: func(s *proxy.ProxySpec) { s.Targets[0].Port = freePort() }})
	health(down, "UNAVAILABLE", "CONNECTION_FAILED")
}

// TestDatabaseFull: when the database refuses a new connection for lack
// of room (ERROR 1040 Too many connections, because other clients of the
// database or the proxy's own probe hold the slots its max_connections
// leaves), a client of the proxy waits for a server connection as it
// does when the pool is full, instead of getting the database's refusal:
// here it gets the connection another client returns by committing.
// go-sql-driver/mysql's TestConcurrent (max_connections clients at once
// through the proxy) met this.
func TestDatabaseFull(t *testing.T) {
	requireMariaDB(t)
	srv, err := env.MariaDB(enginetest.Options{MaxConnections: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := seed(srv); err != nil {
		t.Fatal(err)
	}
	// The pool may use all of max_connections, as with RDS's default.
	h := newHarness(t, srv, harnessOpts{borrowTimeout: time.Minute, mod: func(s *proxy.ProxySpec) {
		s.Pool.MaxConnectionsPercent, s.Pool.MaxIdleConnectionsPercent = 100, 100
	}})
	ctx := ctxT(t, 2*time.Minute)
	db := h.open(appUser, appPW, testDB, "")
	a, b := conn(t, ctx, db), conn(t, ctx, db)
	if _, err := a.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if scan1[int](t, ctx, a, "SELECT 1") != 1 {
		t.Fatal("SELECT 1")
	}
	// Other clients of the database take every slot left.
	direct, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=10s", appUser, appPW, srv.Addr(), testDB))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	full := false
	for range 20 {
		c, err := direct.Conn(ctx)
		if err != nil {
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1040 {
				t.Fatalf("filling the database: %v", err)
			}
			full = true
			break
		}
		defer c.Close()
	}
	if !full {
		t.Fatal("the database never refused a connection")
	}
	// b needs a server connection; the pool has room, the database not.
	got := make(chan error, 1)
	go func() {
		var n int
		err := b.QueryRowContext(ctx, "SELECT 2").Scan(&n)
		if err == nil && n != 2 {
			err = fmt.Errorf("SELECT 2 = %d", n)
		}
		got <- err
	}()
	// Once the database has refused b's server connection, a commits.
	eventually(t, 30*time.Second, func() error {
		if h.metric("DatabaseConnectionsSetupFailed") == 0 {
			return errors.New("the database never refused the proxy")
		}
		return nil
	})
	if _, err := a.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("a client of a full database: %v, want it served by the connection another client returned", err)
	}
}
