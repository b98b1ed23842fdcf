package mysql

import (
	"github.com/rdslocal/rdslocal/proxy"
	"strings"
	"testing"
	"time"
)

// TestPinning runs each statement in a fresh session and checks whether
// it pinned, as RDS documents for MySQL, with and without the
// EXCLUDE_VARIABLE_SETS filter.
func TestPinning(t *testing.T) {
	srv := requireMariaDB(t)
	big := "SELECT '" + strings.Repeat("x", 17000) + "'"
	cases := []struct {
		name, sql string
		pins      bool // without filters
		varSet    bool // a variable set: EXCLUDE_VARIABLE_SETS turns the pin off
		prepared  bool // run with go-sql-driver's binary protocol
	}{
		{name: "plain select", sql: "SELECT 1"},
		{name: "tracked: sql_mode", sql: "SET SESSION sql_mode = 'ANSI'"},
		{name: "tracked: names", sql: "SET NAMES utf8mb4"},
		{name: "tracked: autocommit", sql: "SET autocommit = 1"},
		{name: "tracked: time_zone", sql: "SET time_zone = '+01:00'"},
		{name: "tracked: isolation", sql: "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"},
		{name: "tracked: USE", sql: "USE otherdb"},
		{name: "next transaction only", sql: "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"},
		{name: "SET STATEMENT", sql: "SET STATEMENT max_statement_time=10 FOR SELECT 1"},
		{name: "user variable", sql: "SET @x = 1", pins: true, varSet: true},
		{name: "user variable in SELECT", sql: "SELECT @y := 5", pins: true, varSet: true},
		{name: "SELECT INTO user variable", sql: "SELECT 1 INTO @z", pins: true, varSet: true},
		{name: "untracked system variable", sql: "SET SESSION max_join_size = 1000000", pins: true, varSet: true},
		{name: "untracked @@ variable", sql: "SET @@session.group_concat_max_len = 4096", pins: true, varSet: true},
		{name: "SQL PREPARE", sql: "PREPARE s1 FROM 'SELECT 1'", pins: true},
		{name: "binary protocol", sql: "SELECT ?", pins: true, prepared: true},
		{name: "temporary table", sql: "CREATE TEMPORARY TABLE tmp1 (a INT)", pins: true},
		{name: "LOCK TABLES", sql: "LOCK TABLES items READ", pins: true},
		{name: "FLUSH TABLES WITH READ LOCK", sql: "FLUSH TABLES WITH READ LOCK", pins: true},
		{name: "GET_LOCK", sql: "SELECT GET_LOCK('pin-test', 0)", pins: true},
		{name: "SQL_CALC_FOUND_ROWS", sql: "SELECT SQL_CALC_FOUND_ROWS * FROM items LIMIT 1", pins: true},
		{name: "statement over 16 KB", sql: big, pins: true},
		{name: "GET_LOCK in a string", sql: "SELECT 'GET_LOCK(1)'"},
		{name: "executable comment", sql: "/*!40101 SET @c = 1 */", pins: true, varSet: true},
	}
	for _, exclude := range []bool{false, true} {
		h := newHarness(t, srv, harnessOpts{mod: func(s *proxy.ProxySpec) {
			if exclude {
				s.Pool.SessionPinningFilters = []string{"EXCLUDE_VARIABLE_SETS"}
			}
		}})
		for _, tc := range cases {
			name := tc.name
			if exclude {
				name += "/EXCLUDE_VARIABLE_SETS"
			}
			t.Run(name, func(t *testing.T) {
				ctx := ctxT(t, 20*time.Second)
				params := "interpolateParams=true"
				if tc.prepared {
					params = ""
				}
				db := h.open(appUser, appPW, testDB, params)
				db.SetMaxIdleConns(0)
				c := conn(t, ctx, db)
				before := h.pins()
				var args []any
				if tc.prepared {
					args = []any{1}
				}
				rows, err := c.QueryContext(ctx, tc.sql, args...)
				if err != nil {
					t.Fatal(err)
				}
				rows.Close()
				want := tc.pins && !(exclude && tc.varSet)
				if got := h.pins() > before; got != want {
					t.Fatalf("pinned = %v, want %v", got, want)
				}
				// The session goes on working, pinned or not.
				if scan1[int](t, ctx, c, "SELECT 7") != 7 {
					t.Fatal("session broken")
				}
				c.Close()
			})
		}
		h.close()
	}
}

// TestPinnedReset: a pinned session's connection is reset when it ends,
// so the next client finds none of its state (user variables, temporary
// tables, locks, session variables).
func TestPinnedReset(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 1, mod: func(s *proxy.ProxySpec) { s.Pool.InitQuery = "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'" }})
	ctx := ctxT(t, time.Minute)
	db := h.open(appUser, appPW, testDB, "interpolateParams=true")
	db.SetMaxIdleConns(0)
	a := conn(t, ctx, db)
	if got := scan1[string](t, ctx, a, "SELECT @@sql_mode"); got != "NO_ENGINE_SUBSTITUTION" {
		t.Fatalf("InitQuery not applied: %q", got)
	}
	mustExec(t, ctx, a, "SET @secret = 'a-data'")
	mustExec(t, ctx, a, "CREATE TEMPORARY TABLE a_tmp (x INT)")
	mustExec(t, ctx, a, "SET SESSION max_join_size = 12345")
	mustExec(t, ctx, a, "SELECT GET_LOCK('a-lock', 0)")
	mustExec(t, ctx, a, "SET SESSION sql_mode = 'ANSI'")
	a.Close()
	b := conn(t, ctx, db)
	var secret, lock any
	var mjs uint64
	var mode string
	if err := b.QueryRowContext(ctx, "SELECT @secret, @@max_join_size, IS_USED_LOCK('a-lock'), @@sql_mode").Scan(&secret, &mjs, &lock, &mode); err != nil {
		t.Fatal(err)
	}
	if secret != nil || mjs == 12345 || lock != nil || mode != "NO_ENGINE_SUBSTITUTION" {
		t.Fatalf("next session sees @secret=%v max_join_size=%d lock=%v sql_mode=%q", secret, mjs, lock, mode)
	}
	if _, err := b.ExecContext(ctx, "SELECT * FROM a_tmp"); err == nil {
		t.Fatal("temporary table survived")
	}
	if h.dials() != 1 {
		t.Fatalf("%d dials: the reset connection should have been reused", h.dials())
	}
	if n := h.logs.count("The client session was pinned to the database connection [dbConnection=1] for the remainder of the session. The proxy can't reuse this connection until the session ends. Reason: " + reasonUserVar); n != 1 {
		t.Fatalf("%d pin log lines", n)
	}
}
