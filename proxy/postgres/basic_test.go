package postgres

import (
	"testing"
	"time"

	"github.com/rdslocal/rdslocal/proxy"
)

func TestBasicQuery(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 20*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("got %d, %v", n, err)
	}
	for i := 0; i < 5; i++ {
		var s string
		if err := c.QueryRow(ctx, "SELECT 'x' || $1::int::text", i).Scan(&s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// TestInitQueryAndDebugLogging checks that the target group's InitQuery
// runs on each new backend connection and that DebugLogging logs each
// statement's SQL.
func TestInitQueryAndDebugLogging(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) {
		s.Pool.InitQuery = "SET statement_timeout = '4321ms'"
		s.DebugLogging = true
	})
	ctx := ctxT(t, 20*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&v); err != nil || v != "4321ms" {
		t.Fatalf("statement_timeout %q, %v: InitQuery did not run", v, err)
	}
	if h.logs.count("SHOW statement_timeout") == 0 {
		t.Fatal("DebugLogging did not log the statement")
	}
}
