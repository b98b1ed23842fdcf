package postgres

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/proxy"
)

// TestMultiplexing runs 200 clients through a pool capped at 10 server
// connections (30 max_connections × 34 %), each running short transactions
// with the pgx statement cache (named prepared statements hopping between
// backends), and checks results, isolation and the server-side count.
func TestMultiplexing(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) {
		s.Pool.MaxConnectionsPercent = 34
		s.Pool.MaxIdleConnectionsPercent = 34
		s.Pool.BorrowTimeout = 60 * time.Second
	})
	ctx := ctxT(t, 80*time.Second)
	admin, err := srv.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	admin.Exec(ctx, "DELETE FROM items WHERE client >= 1000")
	// Backends of earlier tests' proxies may still be exiting.
	eventually(t, 10*time.Second, func() error {
		var n int
		admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", appUser).Scan(&n)
		if n > 0 {
			return fmt.Errorf("%d backends of earlier tests", n)
		}
		return nil
	})

	const clients, txs = 200, 15
	var maxSeen atomic.Int64
	stop := make(chan struct{})
	var mon sync.WaitGroup
	mon.Add(1)
	go func() {
		defer mon.Done()
		for {
			var n int64
			admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND application_name <> $2", appUser, probeAppName).Scan(&n)
			if n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			errs <- runClient(ctx, h, 1000+id, txs)
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	mon.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if m := maxSeen.Load(); m > 10 || m == 0 {
		t.Fatalf("pg_stat_activity showed %d proxy backends, want 1..10", m)
	}
	if got := h.metric("MaxDatabaseConnectionsAllowed"); got != 10 {
		t.Fatalf("MaxDatabaseConnectionsAllowed = %d", got)
	}
	t.Logf("server connections opened: %d", h.metric("DatabaseConnectionsSetupSucceeded"))
	t.Logf("%d clients × %d transactions in %v (%.0f tx/s); peak backends %d",
		clients, txs, elapsed, float64(clients*txs)/elapsed.Seconds(), maxSeen.Load())
}

func runClient(ctx context.Context, h *harness, id, txs int) error {
	name := "client-" + strconv.Itoa(id)
	c, err := pgx.Connect(ctx, h.dsn(appUser, appPW, "application_name="+name))
	if err != nil {
		return fmt.Errorf("client %d connect: %w", id, err)
	}
	defer c.Close(context.Background())
	for n := 1; n <= txs; n++ {
		tx, err := c.Begin(ctx)
		if err != nil {
			return fmt.Errorf("client %d begin: %w", id, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO items (client, n) VALUES ($1, $2)", id, n); err != nil {
			return fmt.Errorf("client %d insert: %w", id, err)
		}
		var cnt int
		var app string
		if err := tx.QueryRow(ctx, "SELECT count(*), current_setting('application_name') FROM items WHERE client = $1", id).Scan(&cnt, &app); err != nil {
			return fmt.Errorf("client %d select: %w", id, err)
		}
		if cnt != n || app != name {
			return fmt.Errorf("client %d tx %d: count %d application_name %q", id, n, cnt, app)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("client %d commit: %w", id, err)
		}
		// Autocommit statement between transactions, simple protocol.
		var one int
		if err := c.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil {
			return fmt.Errorf("client %d simple: %w", id, err)
		}
	}
	return nil
}

// TestPreparedStatementsAcrossBackends: pgx's statement cache, explicit
// Prepare/Deallocate and describe-exec (unnamed statement in one Sync batch,
// Bind in the next) keep working when each transaction lands on another
// backend, and none of it pins.
func TestPreparedStatementsAcrossBackends(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) {
		s.Pool.MaxConnectionsPercent = 10 // 3 backends
	})
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			errs <- func() error {
				c, err := h.connect(ctx, "")
				if err != nil {
					return err
				}
				defer c.Close(ctx)
				if _, err := c.Prepare(ctx, "mine", "SELECT $1::int * 2"); err != nil {
					return err
				}
				for j := 0; j < 50; j++ {
					var v int
					if err := c.QueryRow(ctx, "mine", j).Scan(&v); err != nil || v != 2*j {
						return fmt.Errorf("named: %d %v", v, err)
					}
					if err := c.QueryRow(ctx, "SELECT $1::int + $2::int", j, id).Scan(&v); err != nil || v != j+id {
						return fmt.Errorf("cached: %d %v", v, err)
					}
					if err := c.QueryRow(ctx, "SELECT $1::int - 1", pgx.QueryExecModeDescribeExec, j).Scan(&v); err != nil || v != j-1 {
						return fmt.Errorf("describe-exec: %d %v", v, err)
					}
				}
				if err := c.Deallocate(ctx, "mine"); err != nil {
					return err
				}
				if _, err := c.Prepare(ctx, "mine", "SELECT $1::int * 3"); err != nil {
					return err
				}
				var v int
				if err := c.QueryRow(ctx, "mine", 5).Scan(&v); err != nil || v != 15 {
					return fmt.Errorf("re-prepared: %d %v", v, err)
				}
				// An error inside a pipeline drops the statements behind it.
				if _, err := c.Prepare(ctx, "bad", "SELECT nosuchcolumn"); err == nil {
					return fmt.Errorf("bad statement prepared")
				}
				if err := c.QueryRow(ctx, "SELECT $1::int + 100", 1).Scan(&v); err != nil || v != 101 {
					return fmt.Errorf("after error: %d %v", v, err)
				}
				return nil
			}()
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := h.logs.count("pinned"); n != 0 {
		t.Fatalf("%d sessions pinned", n)
	}
}

func TestCopy(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 20*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	rows := make([][]any, 5000)
	for i := range rows {
		rows[i] = []any{int32(5000), int32(i), "row " + strconv.Itoa(i)}
	}
	n, err := c.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"client", "n", "note"}, pgx.CopyFromRows(rows))
	if err != nil || n != 5000 {
		t.Fatalf("copy from: %d %v", n, err)
	}
	var buf countWriter
	tag, err := c.PgConn().CopyTo(ctx, &buf, "COPY (SELECT * FROM items WHERE client = 5000) TO STDOUT")
	if err != nil || tag.RowsAffected() != 5000 || buf.n == 0 {
		t.Fatalf("copy to: %v %v %d", tag, err, buf.n)
	}
	c.Exec(ctx, "DELETE FROM items WHERE client = 5000")
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
