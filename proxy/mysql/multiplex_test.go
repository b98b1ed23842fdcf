package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// conn returns a dedicated client session of db.
func conn(t testing.TB, ctx context.Context, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustExec(t testing.TB, ctx context.Context, c *sql.Conn, q string, args ...any) sql.Result {
	t.Helper()
	r, err := c.ExecContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return r
}

func scan1[T any](t testing.TB, ctx context.Context, c *sql.Conn, q string, args ...any) T {
	t.Helper()
	var v T
	if err := c.QueryRowContext(ctx, q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// TestMultiplex runs 200 concurrent clients through a pool of 10 server
// connections: every transaction's results are checked, the server never
// sees more than 10 of the proxy's connections, and no client sees
// another's tracked variables or user variables (a tenth of the clients
// set one, which pins them).
func TestMultiplex(t *testing.T) {
	srv := requireMariaDB(t)
	const clients, rounds, cap_ = 200, 4, 10
	h := newHarness(t, srv, harnessOpts{maxConns: cap_, borrowTimeout: 60 * time.Second})
	ctx := ctxT(t, 3*time.Minute)
	admin := srv.DB("")
	defer admin.Close()
	admin.ExecContext(ctx, "DELETE FROM "+testDB+".items")

	var maxSeen atomic.Int64
	stop := make(chan struct{})
	var mon sync.WaitGroup
	mon.Add(1)
	go func() {
		defer mon.Done()
		for {
			var n int64
			if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = ?", appUser).Scan(&n); err == nil {
				for {
					m := maxSeen.Load()
					if n <= m || maxSeen.CompareAndSwap(m, n) {
						break
					}
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	db := h.open(appUser, appPW, testDB, "interpolateParams=true")
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(0) // a client that is done disconnects (a pinned session holds its connection until then)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				c, err := db.Conn(ctx)
				if err != nil {
					return err
				}
				defer c.Close()
				pinned := i%10 == 0
				if _, err := c.ExecContext(ctx, "SET SESSION wait_timeout = ?", 1000+i); err != nil {
					return err
				}
				if pinned {
					if _, err := c.ExecContext(ctx, "SET @mine = ?", i); err != nil {
						return err
					}
				}
				for k := 1; k <= rounds; k++ {
					var wt int
					var mine sql.NullInt64
					if err := c.QueryRowContext(ctx, "SELECT @@session.wait_timeout, @mine").Scan(&wt, &mine); err != nil {
						return err
					}
					if wt != 1000+i {
						return fmt.Errorf("client %d sees wait_timeout %d", i, wt)
					}
					if pinned && (!mine.Valid || mine.Int64 != int64(i)) || !pinned && mine.Valid {
						return fmt.Errorf("client %d sees @mine = %v", i, mine)
					}
					tx, err := c.BeginTx(ctx, nil)
					if err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, "INSERT INTO items (client, n) VALUES (?, ?)", i, k); err != nil {
						return err
					}
					var cnt, sum int
					if err := tx.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM items WHERE client = ?", i).Scan(&cnt, &sum); err != nil {
						return err
					}
					if cnt != k || sum != k*(k+1)/2 {
						return fmt.Errorf("client %d round %d: count %d sum %d", i, k, cnt, sum)
					}
					if err := tx.Commit(); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(stop)
	mon.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if m := maxSeen.Load(); m > cap_ || m == 0 {
		t.Errorf("processlist showed %d of the proxy's connections (cap %d)", m, cap_)
	}
	if n := h.metric("MaxDatabaseConnectionsAllowed"); n != cap_ {
		t.Errorf("MaxDatabaseConnectionsAllowed %d, want %d", n, cap_)
	}
	if n := h.metric("DatabaseConnections"); n > cap_ {
		t.Errorf("pool holds %d server connections (cap %d)", n, cap_)
	}
	var total int
	admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+testDB+".items").Scan(&total)
	if total != clients*rounds {
		t.Errorf("%d rows, want %d", total, clients*rounds)
	}
	if p := h.pins(); p != clients/10 {
		t.Errorf("%d pins, want %d", p, clients/10)
	}
	t.Logf("max server connections seen: %d, dials: %d", maxSeen.Load(), h.dials())
}

// TestTrackedState shares one server connection between two sessions
// that set different tracked values: each always sees its own.
func TestTrackedState(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 1})
	ctx := ctxT(t, time.Minute)
	db := h.open(appUser, appPW, testDB, "interpolateParams=true")
	a, b := conn(t, ctx, db), conn(t, ctx, db)
	const q = "SELECT CONCAT_WS('|', @@sql_mode, @@time_zone, @@character_set_client, @@tx_isolation, @@autocommit, @@auto_increment_increment, DATABASE())"
	mustExec(t, ctx, a, "SET SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+05:00'")
	mustExec(t, ctx, a, "SET NAMES latin1")
	mustExec(t, ctx, a, "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE")
	mustExec(t, ctx, a, "SET autocommit = 0")
	mustExec(t, ctx, a, "SET @@session.auto_increment_increment = 5")
	defB := scan1[string](t, ctx, b, q)
	check := func(wantA string) {
		t.Helper()
		for range 3 {
			gotA := scan1[string](t, ctx, a, q)
			mustExec(t, ctx, a, "COMMIT")
			if gotA != wantA {
				t.Fatalf("session A sees %q, want %q", gotA, wantA)
			}
			if gotB := scan1[string](t, ctx, b, q); gotB != defB {
				t.Fatalf("session B sees %q, want %q", gotB, defB)
			}
		}
	}
	check("ANSI_QUOTES|+05:00|latin1|SERIALIZABLE|OFF|5|" + testDB)
	if h.dials() != 1 {
		t.Fatalf("%d dials; the sessions should share one connection", h.dials())
	}
	// The default schema: a pool of its own, the other values follow.
	mustExec(t, ctx, a, "USE otherdb")
	check("ANSI_QUOTES|+05:00|latin1|SERIALIZABLE|OFF|5|otherdb")
	if h.pins() != 0 {
		t.Fatalf("%d pins", h.pins())
	}
}

// TestLastInsertID: sessions alternating on one server connection each
// get their own LAST_INSERT_ID().
func TestLastInsertID(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 1})
	ctx := ctxT(t, time.Minute)
	db := h.open(appUser, appPW, testDB, "interpolateParams=true")
	a, b := conn(t, ctx, db), conn(t, ctx, db)
	for range 3 {
		ra := mustExec(t, ctx, a, "INSERT INTO items (client, n) VALUES (-1, 1)")
		rb := mustExec(t, ctx, b, "INSERT INTO items (client, n) VALUES (-2, 1)")
		ida, _ := ra.LastInsertId()
		idb, _ := rb.LastInsertId()
		if got := scan1[int64](t, ctx, a, "SELECT LAST_INSERT_ID()"); got != ida {
			t.Fatalf("A: LAST_INSERT_ID() = %d, want %d", got, ida)
		}
		if got := scan1[int64](t, ctx, b, "SELECT LAST_INSERT_ID()"); got != idb {
			t.Fatalf("B: LAST_INSERT_ID() = %d, want %d", got, idb)
		}
	}
}

// TestAutocommitOff: with autocommit off the first statement opens a
// transaction and the connection stays with the session until COMMIT.
func TestAutocommitOff(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 2, borrowTimeout: 2 * time.Second})
	ctx := ctxT(t, time.Minute)
	db := h.open(appUser, appPW, testDB, "interpolateParams=true")
	a, b := conn(t, ctx, db), conn(t, ctx, db)
	idle := func(want int64) {
		t.Helper()
		// The proxy answers the client before it returns the connection.
		eventually(t, 5*time.Second, func() error {
			if n := h.idleCount(); n != want {
				return fmt.Errorf("%d idle connections, want %d", n, want)
			}
			return nil
		})
	}
	mustExec(t, ctx, a, "SET autocommit = 0")
	idle(1)
	mustExec(t, ctx, a, "INSERT INTO items (client, n) VALUES (-10, 1)")
	idle(0)
	if got := scan1[int](t, ctx, b, "SELECT COUNT(*) FROM items WHERE client = -10"); got != 0 {
		t.Fatalf("B sees %d uncommitted rows", got)
	}
	if got := scan1[int](t, ctx, a, "SELECT COUNT(*) FROM items WHERE client = -10"); got != 1 {
		t.Fatalf("A sees %d rows", got)
	}
	mustExec(t, ctx, a, "COMMIT")
	if got := scan1[int](t, ctx, b, "SELECT COUNT(*) FROM items WHERE client = -10"); got != 1 {
		t.Fatalf("B sees %d committed rows", got)
	}
	// An error with autocommit off: the connection stays until a status
	// says no transaction is open.
	mustExec(t, ctx, a, "INSERT INTO items (client, n) VALUES (-10, 2)")
	if _, err := a.ExecContext(ctx, "INSERT INTO nosuchtable VALUES (1)"); err == nil {
		t.Fatal("no error")
	}
	mustExec(t, ctx, a, "ROLLBACK")
	if got := scan1[int](t, ctx, b, "SELECT COUNT(*) FROM items WHERE client = -10"); got != 1 {
		t.Fatalf("rolled back row visible: %d", got)
	}
	if h.pins() != 0 {
		t.Fatalf("%d pins", h.pins())
	}
}

// TestBorrowTimeout: with the pool's one connection held in a
// transaction, another client's statement waits ConnectionBorrowTimeout,
// then gets RDS's ERROR 9501; the holder is not disturbed.
func TestBorrowTimeout(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 1, borrowTimeout: 300 * time.Millisecond})
	ctx := ctxT(t, 30*time.Second)
	db := h.open(appUser, appPW, "", "")
	a, b := conn(t, ctx, db), conn(t, ctx, db)
	if _, err := a.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var one int
	err := b.QueryRowContext(ctx, "SELECT 1").Scan(&one)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 9501 || string(me.SQLState[:]) != "HY000" ||
		me.Message != "Timed-out waiting to acquire database connection" {
		t.Fatalf("got %v, want ERROR 9501 (HY000): Timed-out waiting to acquire database connection", err)
	}
	if _, err := a.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
}
