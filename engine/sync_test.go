package engine

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// syncState reads whether the server's commits wait for a replica:
// synchronous_standby_names on PostgreSQL, rpl_semi_sync_master_enabled
// on MariaDB.
func syncState(t *testing.T, m *Manager, id string) string {
	t.Helper()
	m.mu.Lock()
	inst := m.insts[id]
	md := inst.meta
	m.mu.Unlock()
	q := "SELECT current_setting('synchronous_standby_names')"
	if inst.fam.name() == famMySQL {
		q = "SELECT @@rpl_semi_sync_master_enabled"
	}
	var row []string
	var err error
	if inst.fam.name() == famMySQL {
		row, err = mariadb{}.queryRow(ctxT(t), adminLogin(famMySQL, md), q)
	} else {
		row, err = postgres{}.queryRow(ctxT(t), adminLogin(famPostgres, md), q)
	}
	if err != nil {
		t.Fatal(err)
	}
	return row[0]
}

// waitSync waits until the Manager reports want as id's synchronous
// replicas.
func waitSync(t *testing.T, m *Manager, id string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if err := eventually(20*time.Second, func() error {
		got, err := m.Get(id)
		if err != nil {
			return err
		}
		if !slices.Equal(got.SyncReplicas, want) {
			return fmt.Errorf("synchronous replicas of %s: %v, want %v", id, got.SyncReplicas, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// killServerNow stops every process of an instance's server and then
// kills them all, as when its host fails: none can act while the others
// die (PostgreSQL's backends each lead their own session).
func killServerNow(t *testing.T, inst Instance) {
	t.Helper()
	pids := serverPIDs(t, inst)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// writers inserts rows into t on n sessions of inst until a write fails
// on each of them, and records the ids whose commit was acknowledged.
type writers struct {
	next  atomic.Int64
	mu    sync.Mutex
	acked []int
	wg    sync.WaitGroup
}

func startWriters(t *testing.T, inst Instance, password string, n int) *writers {
	t.Helper()
	w := &writers{}
	w.next.Store(1000)
	for range n {
		h := mustOpen(t, inst, password)
		w.wg.Go(func() {
			for {
				id := int(w.next.Add(1))
				if err := h.Exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'stream')", id)); err != nil {
					return
				}
				w.mu.Lock()
				w.acked = append(w.acked, id)
				w.mu.Unlock()
			}
		})
	}
	return w
}

func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// TestSyncReplicationSet: a primary's commits wait for its synchronous
// replicas while one is healthy — not for an asynchronous read replica,
// and a lone instance stays asynchronous. When every synchronous replica
// dies the primary goes on alone at once; a replica that comes back is
// waited for again.
func TestSyncReplicationSet(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{HealthInterval: 200 * time.Millisecond})
			s := spec(e.engine, "ss-a")
			a, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			lone, err := m.Create(ctx, spec(e.engine, "ss-lone"))
			if err != nil {
				t.Fatal(err)
			}
			var reps []Instance
			for _, n := range []string{"ss-b", "ss-c"} {
				r, err := m.Create(ctx, Spec{ID: id(n), Engine: e.engine, ReplicaOf: a.ID, Synchronous: true})
				if err != nil {
					t.Fatal(err)
				}
				reps = append(reps, r)
			}
			// Create returns with the primary waiting for the new replica.
			if got, _ := m.Get(a.ID); !slices.Equal(got.SyncReplicas, []string{reps[0].ID, reps[1].ID}) {
				t.Fatalf("synchronous replicas after Create: %v", got.SyncReplicas)
			}
			if _, err := m.Create(ctx, Spec{ID: id("ss-async"), Engine: e.engine, ReplicaOf: a.ID}); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"postgres": fmt.Sprintf(`ANY 1 ("%s", "%s")`, reps[0].ID, reps[1].ID), "mariadb": "1"}[e.engine]
			if got := syncState(t, m, a.ID); got != want {
				t.Fatalf("server setting %q, want %q", got, want)
			}
			ha := mustOpen(t, a, s.MasterPassword)
			mustExec(t, ha, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'sync')")

			// A lone instance is untouched: asynchronous.
			if got, _ := m.Get(lone.ID); len(got.SyncReplicas) != 0 {
				t.Fatalf("a lone instance waits for %v", got.SyncReplicas)
			}
			if got := syncState(t, m, lone.ID); got != map[string]string{"postgres": "", "mariadb": "0"}[e.engine] {
				t.Fatalf("lone instance's setting %q", got)
			}

			// Commit latency with and without a synchronous replica.
			hl := mustOpen(t, lone, s.MasterPassword)
			mustExec(t, hl, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))")
			lat := func(h client) (p50, p99 time.Duration) {
				var d []time.Duration
				for i := range 300 {
					start := time.Now()
					mustExec(t, h, fmt.Sprintf("INSERT INTO t VALUES (%d, 'lat')", 100+i))
					d = append(d, time.Since(start))
				}
				slices.Sort(d)
				return d[len(d)/2], d[len(d)*99/100]
			}
			a50, a99 := lat(hl)
			s50, s99 := lat(ha)
			addFigure("%s single-row INSERT commit, asynchronous (lone instance) p50 %v p99 %v; synchronous (2 synchronous replicas) p50 %v p99 %v",
				e.engine, a50.Round(time.Microsecond), a99.Round(time.Microsecond), s50.Round(time.Microsecond), s99.Round(time.Microsecond))

			// Both synchronous replicas die: writes go on.
			for _, r := range reps {
				killServerNow(t, r)
			}
			waitSync(t, m, a.ID)
			done := make(chan error, 1)
			go func() { done <- ha.Exec("INSERT INTO t VALUES (2, 'alone')") }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("a commit still waits for dead synchronous replicas")
			}
			// One comes back: the primary waits for it again.
			if err := m.Reboot(ctx, reps[1].ID); err != nil {
				t.Fatal(err)
			}
			waitSync(t, m, a.ID, reps[1].ID)
			if got := syncState(t, m, a.ID); got == map[string]string{"postgres": "", "mariadb": "0"}[e.engine] {
				t.Fatalf("the primary does not wait for its synchronous replica again: %q", got)
			}
			mustExec(t, ha, "INSERT INTO t VALUES (3, 'sync-again')")
			hasRows(t, mustOpen(t, reps[1], s.MasterPassword), []int{1, 2, 3}, nil)
			// A planned stop of the replica releases the primary first.
			if err := m.Reboot(ctx, reps[1].ID); err != nil {
				t.Fatal(err)
			}
			mustExec(t, ha, "INSERT INTO t VALUES (4, 'after-reboot')")
		})
	}
}

// TestFailoverKeepsAcknowledgedWrites: writers commit continuously on a
// primary with two synchronous replicas, one of which has stopped
// receiving; the primary is killed mid-stream. The set it died with is
// reported, and promoting the replica that lags makes it take the rest
// from its sibling first: every acknowledged row is on the new primary.
func TestFailoverKeepsAcknowledgedWrites(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{HealthInterval: 200 * time.Millisecond})
			evs := watch(m)
			s := spec(e.engine, "fk-a")
			a, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.Create(ctx, Spec{ID: id("fk-b"), Engine: e.engine, ReplicaOf: a.ID, Synchronous: true})
			if err != nil {
				t.Fatal(err)
			}
			c, err := m.Create(ctx, Spec{ID: id("fk-c"), Engine: e.engine, ReplicaOf: a.ID, Synchronous: true})
			if err != nil {
				t.Fatal(err)
			}
			ha := mustOpen(t, a, s.MasterPassword)
			mustExec(t, ha, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'before')")
			hb := mustOpen(t, b, s.MasterPassword)
			hasRows(t, hb, []int{1}, nil)

			// b stops receiving: the primary waits for c alone.
			if e.engine == "postgres" {
				adminExec(t, m, b.ID, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
			} else {
				adminExec(t, m, b.ID, "STOP SLAVE IO_THREAD")
			}
			waitSync(t, m, a.ID, c.ID)

			w := startWriters(t, a, s.MasterPassword, 4)
			if err := eventually(30*time.Second, func() error {
				if n := w.count(); n < 300 {
					return fmt.Errorf("%d rows acknowledged", n)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			killServerNow(t, a)
			w.wg.Wait()
			evs.wait(t, a.ID, EventDown, 10*time.Second)
			if got, _ := m.Get(a.ID); !slices.Equal(got.SyncReplicas, []string{c.ID}) {
				t.Fatalf("the dead primary's synchronous replicas: %v, want [%s]", got.SyncReplicas, c.ID)
			}
			posB, _ := m.Position(ctx, b.ID)
			posC, _ := m.Position(ctx, c.ID)
			if posB >= posC {
				t.Fatalf("b (%d) is not behind c (%d): the test proves nothing", posB, posC)
			}
			if err := m.Promote(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			hb.Close()
			hb = mustOpen(t, b, s.MasterPassword)
			acked := w.acked
			t.Logf("%d rows acknowledged before the primary died", len(acked))
			missing := 0
			for _, id := range append([]int{1}, acked...) {
				if _, err := readValue(hb, id); err != nil {
					missing++
				}
			}
			if missing > 0 {
				t.Fatalf("%d of %d acknowledged rows are missing on the new primary", missing, len(acked)+1)
			}
			mustExec(t, hb, "INSERT INTO t VALUES (2, 'new-primary')")
			if err := m.Repoint(ctx, c.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			hasRows(t, mustOpen(t, c, s.MasterPassword), []int{2}, nil)
			waitSync(t, m, b.ID, c.ID)
		})
	}
}
