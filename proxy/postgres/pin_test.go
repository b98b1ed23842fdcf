package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPinning: each documented statement class pins (gauge and RDS log
// line); ordinary work does not. After a pinned session ends its backend is
// reset, so no state reaches the next client.
func TestPinning(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	big := "SELECT '" + strings.Repeat("x", 17000) + "'"
	cases := []struct {
		name  string
		stmts []string
		pin   string // reason substring; "" = must not pin
	}{
		{"set", []string{"SET search_path = public"}, "session settings"},
		{"set session", []string{"SET SESSION statement_timeout = 1000"}, "session settings"},
		{"reset", []string{"RESET ALL"}, "session settings"},
		{"set_config", []string{"SELECT set_config('work_mem', '8MB', false)"}, "session settings"},
		{"sql prepare", []string{"PREPARE p1 AS SELECT 1"}, "prepared statements"},
		{"sql execute", []string{"PREPARE p2 AS SELECT 1", "EXECUTE p2"}, "prepared statements"},
		{"deallocate all", []string{"DEALLOCATE ALL"}, "prepared statements"},
		{"discard", []string{"DISCARD ALL"}, "DISCARD"},
		{"listen", []string{"LISTEN chan"}, "LISTEN"},
		{"temp table", []string{"CREATE TEMP TABLE tt (a int)"}, "temporary"},
		{"temporary view", []string{"CREATE OR REPLACE TEMPORARY VIEW tv AS SELECT 1"}, "temporary"},
		{"temp sequence", []string{"CREATE TEMP SEQUENCE ts"}, "temporary"},
		{"select into temp", []string{"SELECT 1 AS a INTO TEMP tt2"}, "temporary"},
		{"cursor with hold", []string{"DECLARE c CURSOR WITH HOLD FOR SELECT 1"}, "WITH HOLD"},
		{"advisory lock", []string{"SELECT pg_advisory_lock(42)"}, "advisory"},
		{"try advisory lock", []string{"SELECT pg_try_advisory_lock(43)"}, "advisory"},
		{"load", []string{"LOAD 'auto_explain'"}, "LOAD"},
		{"16 KB statement", []string{big}, "16384 byte limit"},
		{"plain select", []string{"SELECT 1"}, ""},
		{"insert", []string{"INSERT INTO items (client, n) VALUES (7000, 1)"}, ""},
		{"transaction", []string{"BEGIN", "SELECT 1", "COMMIT"}, ""},
		{"set local in transaction", []string{"BEGIN", "SET LOCAL work_mem = '8MB'", "COMMIT"}, ""},
		{"set transaction", []string{"BEGIN", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "COMMIT"}, ""},
		{"xact advisory lock", []string{"BEGIN", "SELECT pg_advisory_xact_lock(1)", "COMMIT"}, ""},
		{"keywords in literals", []string{"SELECT 'SET x; LISTEN y' AS a /* DISCARD ALL */ -- LOAD"}, ""},
		{"cursor without hold", []string{"BEGIN", "DECLARE c2 CURSOR FOR SELECT 1", "CLOSE c2", "COMMIT"}, ""},
		{"update set", []string{"UPDATE items SET n = n WHERE client = -1"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t, 10*time.Second)
			before := h.logs.count("pinned to the database connection")
			c := h.mustConnect(ctx, "")
			defer c.Close(ctx)
			for _, s := range tc.stmts {
				// LOAD needs a superuser; the attempt pins all the same.
				if _, err := c.Exec(ctx, s, pgx.QueryExecModeSimpleProtocol); err != nil && !strings.HasPrefix(s, "LOAD") {
					t.Fatalf("%.60s: %v", s, err)
				}
			}
			// Named statement through the extended protocol never pins.
			var v int
			if err := c.QueryRow(ctx, "SELECT $1::int", 3).Scan(&v); err != nil {
				t.Fatal(err)
			}
			gauge := h.metric("DatabaseConnectionsCurrentlySessionPinned")
			after := h.logs.count("pinned to the database connection")
			if tc.pin == "" {
				if gauge != 0 || after != before {
					t.Fatalf("pinned (gauge %d)", gauge)
				}
			} else {
				if gauge != 1 || after != before+1 || h.logs.count("Reason: ") == 0 {
					t.Fatalf("not pinned: gauge %d, log lines %d→%d", gauge, before, after)
				}
				if h.logs.count(tc.pin) == 0 {
					t.Fatalf("no log line with %q", tc.pin)
				}
			}
			c.Close(ctx)
			eventually(t, 5*time.Second, func() error {
				if g := h.metric("DatabaseConnectionsCurrentlySessionPinned"); g != 0 {
					return fmt.Errorf("pinned gauge %d after close", g)
				}
				return nil
			})
		})
	}
	t.Run("no state leaks after a pinned session", func(t *testing.T) {
		ctx := ctxT(t, 10*time.Second)
		for i := 0; i < 3; i++ {
			c := h.mustConnect(ctx, "")
			var sp, wm string
			var locks int
			if err := c.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('work_mem'), (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())").Scan(&sp, &wm, &locks); err != nil {
				t.Fatal(err)
			}
			if sp != `"$user", public` || wm != "4MB" || locks != 0 {
				t.Fatalf("leaked state: search_path %q work_mem %q advisory locks %d", sp, wm, locks)
			}
			var tmp int
			c.QueryRow(ctx, "SELECT count(*) FROM pg_class WHERE relpersistence = 't'").Scan(&tmp)
			if tmp != 0 {
				t.Fatalf("%d temporary relations visible", tmp)
			}
			c.Close(ctx)
		}
	})
}
