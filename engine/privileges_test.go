package engine

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestMasterPrivileges: the master user has what RDS gives it and is
// refused, with the database's own error, what RDS refuses: on
// PostgreSQL it is a member of rds_superuser, not a superuser; on MariaDB
// it has RDS's grant list (no SUPER, no FILE).
func TestMasterPrivileges(t *testing.T) {
	type step struct {
		sql  string
		code string // "": must succeed; else the SQLSTATE (PostgreSQL) or error number (MariaDB)
	}
	cases := map[string][]step{
		"postgres": {
			{"SELECT 1 WHERE NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)", ""},
			{"SELECT 1 WHERE pg_has_role('rds_superuser', 'MEMBER') AND pg_has_role('pg_monitor', 'USAGE') AND pg_has_role('pg_signal_backend', 'USAGE')", ""},
			{"SELECT 1 WHERE (SELECT rolsuper FROM pg_roles WHERE rolname = 'rdsadmin')", ""},
			{"CREATE ROLE app LOGIN PASSWORD 'app-pass-1'", ""},
			{"GRANT rds_superuser TO app", ""},
			{"CREATE DATABASE other", ""},
			{"CREATE EXTENSION pgcrypto", ""}, // trusted
			{"CREATE TABLE t (id int)", ""},
			{"CHECKPOINT", ""},
			{"SELECT 1 FROM pg_stat_activity WHERE usename = 'rdsadmin' OR backend_type <> 'client backend' LIMIT 1", ""},
			{"ALTER SYSTEM SET work_mem = '8MB'", "42501"},
			{"COPY t FROM PROGRAM 'true'", "42501"},
			{"SELECT pg_read_file('postgresql.conf')", "42501"},
			{"CREATE EXTENSION file_fdw", "42501"}, // untrusted
			{"ALTER ROLE CURRENT_USER SUPERUSER", "42501"},
			{"CREATE ROLE root2 SUPERUSER", "42501"},
		},
		"mariadb": {
			{"CREATE USER 'app'@'%' IDENTIFIED BY 'app-pass-1'", ""},
			{"GRANT SELECT, INSERT ON appdb.* TO 'app'@'%'", ""},
			{"CREATE DATABASE other", ""},
			{"CREATE TABLE t (id int)", ""},
			{"SHOW PROCESSLIST", ""},
			{"FLUSH TABLES", ""}, // RELOAD
			{"SET GLOBAL max_connections = 10", "1227"},
			{"SELECT 1 INTO OUTFILE '/tmp/rdslocal-must-not-exist'", "1227"},
			{"GRANT SUPER ON *.* TO 'app'@'%'", "1045"},
			{"GRANT FILE ON *.* TO 'app'@'%'", "1045"},
			{"SHUTDOWN", "1227"},
		},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{})
			s := spec(e.engine, "priv")
			inst, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			h := mustOpen(t, inst, s.MasterPassword)
			for _, st := range cases[e.engine] {
				err := h.Exec(st.sql)
				if got := errCode(err); got != st.code {
					t.Errorf("%s: got error %v (code %q), want code %q", st.sql, err, got, st.code)
				}
			}
			// The internal account still does what rdslocal needs.
			if err := m.SetPassword(ctx, inst.ID, "Rotated-2"); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// errCode is the database's own code of err: SQLSTATE for PostgreSQL, the
// error number for MariaDB; "" for nil.
func errCode(err error) string {
	if err == nil {
		return ""
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return strconv.Itoa(int(me.Number))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return "other: " + err.Error()
}
