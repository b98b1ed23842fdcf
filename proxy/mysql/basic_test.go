package mysql

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// dsn is a go-sql-driver/mysql DSN for the harness.
func (h *harness) dsn(user, pw, db, params string) string {
	d := fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=10s", user, pw, h.addr, db)
	if params != "" {
		d += "&" + params
	}
	return d
}

func (h *harness) open(user, pw, db, params string) *sql.DB {
	h.t.Helper()
	db_, err := sql.Open("mysql", h.dsn(user, pw, db, params))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db_.Close() })
	return db_
}

func TestBasic(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	for _, params := range []string{"", "interpolateParams=true"} {
		t.Run("params="+params, func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			db := h.open(appUser, appPW, testDB, params)
			var one int
			if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("SELECT 1: %d %v", one, err)
			}
			var v, schema string
			if err := db.QueryRowContext(ctx, "SELECT VERSION(), DATABASE()").Scan(&v, &schema); err != nil {
				t.Fatal(err)
			}
			if schema != testDB {
				t.Fatalf("DATABASE() = %q", schema)
			}
			res, err := db.ExecContext(ctx, "INSERT INTO items (client, n, note) VALUES (?, ?, ?)", 1, 2, "x")
			if err != nil {
				t.Fatal(err)
			}
			id, _ := res.LastInsertId()
			var n int
			if err := db.QueryRowContext(ctx, "SELECT n FROM items WHERE id = ?", id).Scan(&n); err != nil || n != 2 {
				t.Fatalf("select: %d %v", n, err)
			}
		})
	}
	_ = mysql.ErrInvalidConn
}
