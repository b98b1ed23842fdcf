package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/proxy"
)

// proxyBackends counts the harness user's server connections, probes aside.
func proxyBackends(ctx context.Context, t *testing.T, admin *pgx.Conn) int {
	t.Helper()
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND application_name <> $2",
		appUser, probeAppName).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdleConnectionsReaped: connections above MaxIdleConnectionsPercent
// stay open until they have been unused for the idle period, then close
// down to the idle share.
func TestIdleConnectionsReaped(t *testing.T) {
	srv := requirePG(t) // max_connections 30
	h := newHarnessLimits(t, srv, Limits{IdleConnectionAfter: 2 * time.Second}, func(s *proxy.ProxySpec) {
		s.Pool.MaxConnectionsPercent = 50
		s.Pool.MaxIdleConnectionsPercent = 4 // one connection
	})
	ctx := ctxT(t, 60*time.Second)
	admin, err := srv.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	eventually(t, 10*time.Second, func() error {
		if n := proxyBackends(ctx, t, admin); n != 0 {
			return fmt.Errorf("%d backends of earlier tests", n)
		}
		return nil
	})
	var txs []pgx.Tx
	for range 6 {
		c := h.mustConnect(ctx, "")
		defer c.Close(ctx)
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := proxyBackends(ctx, t, admin); n != 6 {
		t.Fatalf("right after the transactions: %d server connections, want all 6 kept", n)
	}
	eventually(t, 15*time.Second, func() error {
		if n := proxyBackends(ctx, t, admin); n != 1 {
			return fmt.Errorf("%d server connections, want the idle share (1)", n)
		}
		return nil
	})
}

// TestConnectionMaxAge: an idle server connection older than the maximum
// age is replaced.
func TestConnectionMaxAge(t *testing.T) {
	srv := requirePG(t)
	h := newHarnessLimits(t, srv, Limits{ConnectionMaxAge: time.Second}, nil)
	ctx := ctxT(t, 30*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	var first int
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&first); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		var pid int
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if pid == first {
			return fmt.Errorf("still on server connection %d", pid)
		}
		return nil
	})
}

// TestClientMaxAge: a client older than the maximum life is disconnected
// at its next idle moment, never inside a transaction.
func TestClientMaxAge(t *testing.T) {
	srv := requirePG(t)
	h := newHarnessLimits(t, srv, Limits{ClientMaxAge: time.Second}, nil)
	ctx := ctxT(t, 30*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := tx.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("inside the transaction past the client's life: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, "SELECT 1")
	if code := pgCode(err); code != "57P01" {
		t.Fatalf("after the transaction: %v (code %q), want FATAL 57P01", err, code)
	}
}
