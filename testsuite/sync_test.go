package testsuite_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"
)

// streamWriters insert rows continuously and remember which commits were
// acknowledged.
type streamWriters struct {
	next  atomic.Int64
	mu    sync.Mutex
	acked []int
	fails atomic.Int64
	stop  chan struct{}
	wg    sync.WaitGroup
}

func newStreamWriters() *streamWriters {
	w := &streamWriters{stop: make(chan struct{})}
	w.next.Store(10000)
	return w
}

func (w *streamWriters) ack(id int) {
	w.mu.Lock()
	w.acked = append(w.acked, id)
	w.mu.Unlock()
}

func (w *streamWriters) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// direct writes on one session to the server until a write fails (the
// server died).
func (w *streamWriters) direct(db *sql.DB) {
	w.wg.Go(func() {
		for {
			id := int(w.next.Add(1))
			if _, err := db.Exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'stream')", id)); err != nil {
				w.fails.Add(1)
				return
			}
			w.ack(id)
		}
	})
}

// viaProxy writes through the proxy until stopped, connecting again when
// its session ends: a client that keeps working through a failover.
func (w *streamWriters) viaProxy(endpoint string) {
	w.wg.Go(func() {
		ctx := context.Background()
		var c *pgx.Conn
		defer func() {
			if c != nil {
				c.Close(ctx)
			}
		}()
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			if c == nil || c.IsClosed() {
				var err error
				if c, err = pgx.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=master password=%s dbname=app sslmode=disable connect_timeout=10", endpoint, haPassword)); err != nil {
					w.fails.Add(1)
					c = nil
					time.Sleep(10 * time.Millisecond)
					continue
				}
			}
			id := int(w.next.Add(1))
			if _, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO t VALUES (%d, 'stream')", id)); err != nil {
				w.fails.Add(1)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			w.ack(id)
		}
	})
}

// waitCount waits until n more commits than now are acknowledged.
func (w *streamWriters) waitCount(t *testing.T, n int) {
	t.Helper()
	target := w.count() + n
	deadline := time.Now().Add(time.Minute)
	for w.count() < target {
		if time.Now().After(deadline) {
			t.Fatalf("%d commits acknowledged, want %d", w.count(), target)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// missing lists the acknowledged rows db does not have.
func (w *streamWriters) missing(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query("SELECT id FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := map[int]bool{}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for _, id := range w.acked {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// pauseServer stops every process of an instance's server with SIGSTOP
// and returns the function that lets them go on.
func pauseServer(t *testing.T, instanceDir string) func() {
	t.Helper()
	pids := serverPIDs(t, instanceDir)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	return func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
}

// waitSynchronous waits until the engine layer reports that the server's
// commits wait for a replica.
func (h *ha) waitSynchronous(t *testing.T, engineID string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := h.emu.Server.Engines().Get(engineID)
		if err == nil && len(got.SyncReplicas) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's commits do not wait for a replica: %+v %v", engineID, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNoAcknowledgedWriteLost: clients commit continuously on an Aurora
// cluster's writer or a Multi-AZ primary — straight to the server, and for
// PostgreSQL also through a proxy, across the failover — and the writer's
// server is killed with SIGKILL mid-stream. A reader (the standby) is
// promoted, and every commit that was acknowledged is on it: Aurora's
// shared storage and the Multi-AZ synchronous standby lose nothing, and
// neither does rdslocal.
func TestNoAcknowledgedWriteLost(t *testing.T) {
	h := newHA(t)
	ctx := context.Background()
	for _, tc := range []struct {
		engine  string
		cluster bool
	}{
		{"aurora-postgresql", true},
		{"aurora-mysql", true},
		{"postgres", false},
		{"mariadb", false},
	} {
		t.Run(tc.engine, func(t *testing.T) {
			id := "ack-" + tc.engine
			var writer, proxy string
			if tc.cluster {
				writer = id + "-w"
				h.cluster(t, tc.engine, id, member{writer, "db.r6g.large", 1}, member{id + "-r1", "db.r6g.large", 1}, member{id + "-r2", "db.r6g.large", 1})
				proxy = h.proxy(t, tc.engine, id+"-proxy", id, "")
			} else {
				writer = id
				if _, err := h.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.micro"),
					Engine: aws.String(tc.engine), MasterUsername: aws.String("master"), MasterUserPassword: aws.String(haPassword), DBName: aws.String("app"),
					MultiAZ: aws.Bool(true)}); err != nil {
					t.Fatal(err)
				}
				waitAvailable(t, h.rc, id)
				proxy = h.proxy(t, tc.engine, id+"-proxy", "", id)
			}
			if _, err := h.open(t, tc.engine, writer).Exec("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))"); err != nil {
				t.Fatal(err)
			}
			srv, err := h.emu.Server.Engines().Get(eid(writer))
			if err != nil {
				t.Fatal(err)
			}
			h.waitSynchronous(t, srv.ID)
			before := *h.instance(t, writer).Endpoint.Port

			w := newStreamWriters()
			for range 4 {
				w.direct(h.open(t, tc.engine, writer))
			}
			if isPG(tc.engine) {
				viaProxy(t, proxy) // the proxy serves before the writers start
				for range 4 {
					w.viaProxy(proxy)
				}
			}
			w.waitCount(t, 400)
			// The readers (the standby) stall for a moment, and the writer
			// dies meanwhile: with asynchronous replication the commits
			// acknowledged in that moment would be on the writer only.
			var stalled []string
			if tc.cluster {
				stalled = []string{eid(id + "-r1"), eid(id + "-r2")}
			} else {
				stalled = []string{eid(id) + ".standby"}
			}
			var resume []func()
			for _, r := range stalled {
				in, err := h.emu.Server.Engines().Get(r)
				if err != nil {
					t.Fatal(err)
				}
				resume = append(resume, pauseServer(t, in.Dir))
			}
			pausedAt := w.count()
			time.Sleep(300 * time.Millisecond)
			acked := w.count()
			killServer(t, srv.Dir)
			start := time.Now()
			for _, f := range resume {
				f()
			}
			t.Logf("%d commits acknowledged while the readers stalled", acked-pausedAt)

			// The failover: a reader (standby) takes over.
			deadline := time.Now().Add(2 * time.Minute)
			for {
				done := false
				if tc.cluster {
					done = h.writer(t, id) != writer
				} else {
					in := h.instance(t, id)
					done = *in.DBInstanceStatus == "available" && *in.Endpoint.Port != before
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no failover after the writer's death")
				}
				time.Sleep(50 * time.Millisecond)
			}
			if isPG(tc.engine) {
				w.waitCount(t, 200) // through the proxy, on the new writer
			}
			close(w.stop)
			w.wg.Wait()
			newWriter := id
			if tc.cluster {
				newWriter = h.writer(t, id)
			}
			lost := w.missing(t, h.open(t, tc.engine, newWriter))
			t.Logf("figure: %s writer SIGKILLed mid-stream → %s promoted in %v: %d commits acknowledged (%d failed attempts), %d lost",
				tc.engine, newWriter, time.Since(start).Round(time.Millisecond), w.count(), w.fails.Load(), len(lost))
			if len(lost) > 0 {
				t.Fatalf("%d acknowledged commits are not on the new writer, e.g. %v", len(lost), lost[:min(len(lost), 10)])
			}
		})
	}
}

// TestWriterAloneRestartsInPlace: the only reader stops replicating, so
// the writer goes on alone (its commits no longer wait for a replica) and
// takes writes the reader never gets; then the writer dies. Promoting the
// reader would lose those acknowledged writes: the writer restarts on its
// own data instead, with every one of them, as RDS recovers a primary
// whose standby was out of service.
func TestWriterAloneRestartsInPlace(t *testing.T) {
	h := newHA(t)
	for _, engine := range []string{"aurora-postgresql", "aurora-mysql"} {
		t.Run(engine, func(t *testing.T) {
			cl := "alone-" + engine[len("aurora-"):]
			w, r := cl+"-w", cl+"-r"
			h.cluster(t, engine, cl, member{w, "db.r6g.large", 1}, member{r, "db.r6g.large", 1})
			wdb := h.open(t, engine, w)
			if _, err := wdb.Exec("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))"); err != nil {
				t.Fatal(err)
			}
			h.waitSynchronous(t, eid(w))
			if isPG(engine) {
				h.adminExec(t, engine, r, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
			} else {
				h.adminExec(t, engine, r, "STOP SLAVE")
			}
			deadline := time.Now().Add(time.Minute)
			for {
				got, err := h.emu.Server.Engines().Get(eid(w))
				if err == nil && len(got.SyncReplicas) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the writer still waits for %v", got.SyncReplicas)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for id := 1; id <= 20; id++ {
				if _, err := wdb.Exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'alone')", id)); err != nil {
					t.Fatal(err)
				}
			}
			srv, err := h.emu.Server.Engines().Get(eid(w))
			if err != nil {
				t.Fatal(err)
			}
			killServer(t, srv.Dir)
			h.wantEvents(t, types.SourceTypeDbCluster, cl, "Promoting previous primary again: "+w+".", "Completed failover to DB instance: "+w+".")
			waitAvailable(t, h.rc, w)
			if got := h.writer(t, cl); got != w {
				t.Fatalf("writer %s, want %s restarted in place", got, w)
			}
			db := h.open(t, engine, w)
			for id := 1; id <= 20; id++ {
				hasRow(t, db, id)
			}
		})
	}
}
