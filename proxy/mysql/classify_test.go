package mysql

import (
	"fmt"
	"testing"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		sql  string
		want string // fields of Class that are set
	}{
		{"SELECT 1", ""},
		{"select * from t where a = 'SET @x = 1' -- SET @y=2", ""},
		{"SET @x = 1", "var=" + reasonUserVar},
		{"set @x := 1, @@session.sql_mode = 'ANSI'", "var=" + reasonUserVar + " tracked"},
		{"SET SESSION sql_mode = 'ANSI', time_zone = '+00:00'", "tracked"},
		{"SET sql_mode = CONCAT(@@sql_mode, ',ANSI'), wait_timeout = 10", "tracked"},
		{"SET LOCAL autocommit = 0", "tracked"},
		{"SET NAMES utf8mb4 COLLATE utf8mb4_bin", "tracked"},
		{"SET CHARACTER SET latin1", "tracked"},
		{"SET CHARSET latin1", "tracked"},
		{"SET @@tx_isolation = 'READ-COMMITTED'", "tracked"},
		{"SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "tracked"},
		{"SET TRANSACTION READ ONLY", "oneshot"},
		{"SET GLOBAL wait_timeout = 10", ""},
		{"SET @@global.wait_timeout = 10", ""},
		{"SET SESSION max_join_size = 100", "var=" + reasonSet},
		{"SET foreign_key_checks = 0", "var=" + reasonSet},
		{"SET STATEMENT max_statement_time = 1 FOR SELECT 1", ""},
		{"SET PASSWORD = PASSWORD('x')", ""},
		{"SET ROLE admin", "pin=" + reasonRole},
		{"USE `my db`", "tracked"},
		{"DROP DATABASE x", "tracked"},
		{"DROP SCHEMA IF EXISTS x", "tracked"},
		{"DROP TABLE x", ""},
		{"PREPARE s FROM 'SELECT 1'", "pin=" + reasonPrepare},
		{"EXECUTE s USING @a", "pin=" + reasonPrepare},
		{"EXECUTE IMMEDIATE 'SELECT 1'", ""},
		{"DEALLOCATE PREPARE s", "pin=" + reasonPrepare},
		{"DROP PREPARE s", "pin=" + reasonPrepare},
		{"CREATE TEMPORARY TABLE t (a int)", "pin=" + reasonTemp},
		{"CREATE OR REPLACE TEMPORARY TABLE t (a int)", "pin=" + reasonTemp},
		{"CREATE TABLE t (a int)", ""},
		{"LOCK TABLES t READ", "pin=" + reasonLock},
		{"lock table t write", "pin=" + reasonLock},
		{"FLUSH TABLES WITH READ LOCK", "pin=" + reasonLock},
		{"FLUSH TABLES", ""},
		{"SELECT GET_LOCK('a', 1)", "pin=" + reasonNamedLock},
		{"SELECT get_lock ('a', 1)", "pin=" + reasonNamedLock},
		{"SELECT 'GET_LOCK(1)'", ""},
		{"SELECT `get_lock` FROM t", ""},
		{"SELECT SQL_CALC_FOUND_ROWS * FROM t", "pin=" + reasonFoundRows},
		{"SELECT @v := 1", "var=" + reasonUserVar},
		{"SELECT a INTO @v FROM t", "var=" + reasonUserVar},
		{"SELECT @v", ""},
		{"SELECT LAST_INSERT_ID()", "lastid"},
		{"SELECT ROW_COUNT(), FOUND_ROWS()", "prev"},
		{"HANDLER t OPEN", "pin=" + reasonHandler},
		{"/*!40101 SET NAMES utf8 */", "tracked"},
		{"/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE */", "var=" + reasonUserVar},
		{"/* SET @x = 1 */ SELECT 1", ""},
		{"# comment\nSET @x = 1", "var=" + reasonUserVar},
		{"SELECT 1; SET @x = 1", "var=" + reasonUserVar},
		{"SELECT 1; CREATE TEMPORARY TABLE t (a int); USE db", "pin=" + reasonTemp + " tracked"},
		{"CREATE PROCEDURE p() BEGIN SET @x = 1; CREATE TEMPORARY TABLE t (a int); END", "routine"},
		{"CREATE DEFINER = CURRENT_USER FUNCTION f() RETURNS INT RETURN 1", "routine"},
		{"KILL 12", "kill=conn:12"},
		{"KILL QUERY 12", "kill=query:12"},
		{"kill connection 12;", "kill=conn:12"},
		{"KILL HARD QUERY 7", "kill=query:7"},
		{"KILL QUERY ID 7", "kill=unsupported"},
		{"KILL USER app", "kill=unsupported"},
		{"KILL 1+1", "kill=unsupported"},
		{"SELECT 1; KILL 12", ""},
		{"SET @x = 'it''s \\' ; SET @@y = 2'", "var=" + reasonUserVar},
	}
	for _, tc := range cases {
		t.Run(tc.sql, func(t *testing.T) {
			if got := describe(Classify([]byte(tc.sql))); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func describe(c Class) string {
	var parts []string
	if c.Pin != "" {
		parts = append(parts, "pin="+c.Pin)
	}
	if c.VarPin != "" {
		parts = append(parts, "var="+c.VarPin)
	}
	if c.Tracked {
		parts = append(parts, "tracked")
	}
	if c.OneShot {
		parts = append(parts, "oneshot")
	}
	if c.LastInsertID {
		parts = append(parts, "lastid")
	}
	if c.PrevResult {
		parts = append(parts, "prev")
	}
	if c.Routine {
		parts = append(parts, "routine")
	}
	if k := c.Kill; k != nil {
		switch {
		case k.Unsupported:
			parts = append(parts, "kill=unsupported")
		case k.Query:
			parts = append(parts, fmt.Sprintf("kill=query:%d", k.ID))
		default:
			parts = append(parts, fmt.Sprintf("kill=conn:%d", k.ID))
		}
	}
	out := ""
	for i, p := range parts {
		if i > 0 {
			out += " "
		}
		out += p
	}
	return out
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("SET a = 1; SET b = ';'; ; SELECT 1 -- x;\n")
	if fmt.Sprint(got) != "[SET a = 1 SET b = ';' SELECT 1 -- x;]" {
		t.Fatalf("%q", got)
	}
}

func TestFlavor(t *testing.T) {
	for v, want := range map[string]string{
		"5.5.5-10.11.19-MariaDB-0+deb12u1": "tx_isolation query_cache_type",
		"11.4.2-MariaDB":                   "transaction_isolation query_cache_type",
		"8.0.36":                           "transaction_isolation ",
		"5.7.44-log":                       "tx_isolation query_cache_type",
	} {
		f := flavorOf(v)
		if got := f.names[16] + " " + f.names[varQueryCache]; got != want {
			t.Errorf("%s: %q, want %q", v, got, want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"SET @x = 1", "/*!40101 SET NAMES utf8 */", "KILL QUERY 5", "SELECT 'a''b' -- c\n; USE `d`",
		"CREATE PROCEDURE p() BEGIN SET x = 1; END", "SET @@session.", "@", "SET STATEMENT", "'\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		Classify(q)
		splitStatements(string(q))
	})
}

func BenchmarkClassify(b *testing.B) {
	q := []byte("SELECT c FROM sbtest1 WHERE id = 4242 AND k BETWEEN 10 AND 20 ORDER BY c")
	b.ReportAllocs()
	for b.Loop() {
		Classify(q)
	}
}
