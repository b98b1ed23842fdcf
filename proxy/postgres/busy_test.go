package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/proxy"
)

// TestServerOutOfSlots: when other clients hold most of the database's
// connection slots, the server refuses the proxy's extra connections with
// 53300 although the proxy's budget (a share of max_connections) allows
// them. The proxy then waits for one of its own connections to come back,
// as it does when its budget is used up, instead of passing the refusal
// to the client; the target stays AVAILABLE.
func TestServerOutOfSlots(t *testing.T) {
	requirePG(t)
	srv, err := startPG(12)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.Pool.BorrowTimeout = 20 * time.Second })
	ctx := ctxT(t, 60*time.Second)

	// Direct sessions take all but two of the slots a non-superuser may
	// have (max_connections less the reserved ones).
	admin, err := srv.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var maxConns, reserved int
	if err := admin.QueryRow(ctx, "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int").Scan(&maxConns, &reserved); err != nil {
		t.Fatal(err)
	}
	var direct []*pgx.Conn
	defer func() {
		for _, c := range direct {
			c.Close(context.Background())
		}
	}()
	for len(direct) < maxConns-reserved-2 {
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", srv.port, appUser, appPW))
		if err != nil {
			t.Fatalf("direct session %d: %v", len(direct)+1, err)
		}
		direct = append(direct, c)
	}

	const clients, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for i := range clients {
		wg.Go(func() {
			c, err := h.connect(ctx, "")
			if err != nil {
				errs <- fmt.Errorf("client %d: connect: %w", i, err)
				return
			}
			defer c.Close(context.Background())
			for range rounds {
				tx, err := c.Begin(ctx)
				if err == nil {
					_, err = tx.Exec(ctx, "SELECT pg_sleep(0.05)")
				}
				if err == nil {
					err = tx.Commit(ctx)
				}
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					tx.Rollback(ctx)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d transactions failed", n, clients*rounds)
	}
	if st, reason, desc := h.m.TargetHealth(h.spec.ID, "db-1"); st != "AVAILABLE" {
		t.Fatalf("target health %s %s %s", st, reason, desc)
	}
}

// TestServerOutOfSlotsCapLifts: the cap a server's 53300 puts on the
// budget lasts a second. A request that queued under it is served once the
// server has room again, not only when one of the proxy's own connections
// comes back: here the one the proxy holds stays in a transaction until
// the queued request is done. (The borrow timeout is shorter than the
// health probe's interval, whose slot, given back, would wake it too.)
func TestServerOutOfSlotsCapLifts(t *testing.T) {
	requirePG(t)
	srv, err := startPG(12)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.Pool.BorrowTimeout = 8 * time.Second })
	ctx := ctxT(t, 60*time.Second)

	// A holds the proxy's one connection in a transaction.
	a := h.mustConnect(ctx, "")
	defer a.Close(context.Background())
	txA, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := txA.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	// Direct sessions take every other slot a non-superuser may have.
	var direct []*pgx.Conn
	closeDirect := func() {
		for _, c := range direct {
			c.Close(context.Background())
		}
		direct = nil
	}
	defer closeDirect()
	for {
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", srv.port, appUser, appPW))
		if err != nil {
			if pgCode(err) != "53300" {
				t.Fatalf("direct session %d: %v", len(direct)+1, err)
			}
			break
		}
		direct = append(direct, c)
	}
	failed := h.metric("DatabaseConnectionsSetupFailed")

	// B needs a second connection: the server refuses it, B queues.
	done := make(chan error, 1)
	go func() {
		b, err := h.connect(ctx, "")
		if err == nil {
			_, err = b.Exec(ctx, "SELECT 2")
			b.Close(context.Background())
		}
		done <- err
	}()
	eventually(t, 10*time.Second, func() error {
		if n := h.metric("DatabaseConnectionsSetupFailed"); n == failed {
			return fmt.Errorf("no refused dial yet")
		}
		return nil
	})
	// The server has room again; A's transaction stays open until B is done.
	closeDirect()
	if err := <-done; err != nil {
		t.Fatalf("B while A holds its transaction and the server has room: %v", err)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
