package engine

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// events collects what a Manager reports to Watch.
type events struct {
	mu   sync.Mutex
	list []Event
}

func watch(m *Manager) *events {
	e := &events{}
	m.Watch(func(ev Event) {
		e.mu.Lock()
		e.list = append(e.list, ev)
		e.mu.Unlock()
	})
	return e
}

// wait returns the first event of kind for id, waiting up to d.
func (e *events) wait(t *testing.T, id, kind string, d time.Duration) Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		e.mu.Lock()
		for _, ev := range e.list {
			if ev.ID == id && ev.Kind == kind {
				e.mu.Unlock()
				return ev
			}
		}
		e.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s within %s", kind, id, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// adminExec runs statements as rdsadmin on an instance.
func adminExec(t *testing.T, m *Manager, id string, stmts ...string) {
	t.Helper()
	m.mu.Lock()
	inst := m.insts[id]
	md := inst.meta
	m.mu.Unlock()
	if err := inst.fam.exec(ctxT(t), adminLogin(inst.fam.name(), md), stmts...); err != nil {
		t.Fatal(err)
	}
}

// role reads what the server itself says it is: "primary" when it takes
// writes, "replica" when it is a standby (pg_is_in_recovery()) or
// read_only.
func role(t *testing.T, h client, engine string) string {
	t.Helper()
	q := "SELECT CASE WHEN pg_is_in_recovery() THEN 'replica' ELSE 'primary' END"
	if engine != "postgres" {
		q = "SELECT IF(@@read_only, 'replica', 'primary')"
	}
	v, err := h.Value(q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hasRows waits until h returns every row id in want, and none of absent.
func hasRows(t *testing.T, h client, want []int, absent []int) {
	t.Helper()
	if err := eventually(10*time.Second, func() error {
		for _, id := range want {
			if _, err := readValue(h, id); err != nil {
				return fmt.Errorf("row %d: %w", id, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range absent {
		if v, err := readValue(h, id); err == nil {
			t.Fatalf("row %d (%q) is there: it was written on a diverged primary", id, v)
		}
	}
}

// TestSwitchoverAndDemote: a planned failover loses no write, the former
// primary rejoins as a replica of the new one (rows written on the new
// primary reach it; it refuses writes; every role report agrees), then
// the new primary is killed: its death is reported, the former primary is
// promoted back and the dead one is rebuilt from its crashed data.
func TestSwitchoverAndDemote(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{HealthInterval: 200 * time.Millisecond})
			evs := watch(m)
			s := spec(e.engine, "sw-a")
			a, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.Create(ctx, Spec{ID: id("sw-b"), Engine: e.engine, ReplicaOf: a.ID})
			if err != nil {
				t.Fatal(err)
			}
			c, err := m.Create(ctx, Spec{ID: id("sw-c"), Engine: e.engine, ReplicaOf: a.ID})
			if err != nil {
				t.Fatal(err)
			}
			ha, hb, hc := mustOpen(t, a, s.MasterPassword), mustOpen(t, b, s.MasterPassword), mustOpen(t, c, s.MasterPassword)
			mustExec(t, ha, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'on-a')")

			start := time.Now()
			if err := m.Switchover(ctx, a.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			addFigure("%s switchover (old primary fenced and stopped, replica promoted): %v", e.engine, time.Since(start).Round(time.Millisecond))
			if got, _ := m.Get(a.ID); got.Status != StatusStopped || got.Role != RoleReplica || got.ReplicaOf != b.ID {
				t.Fatalf("former primary after switchover: %+v", got)
			}
			if got, _ := m.Get(b.ID); got.Role != RolePrimary || got.Status != StatusAvailable {
				t.Fatalf("new primary: %+v", got)
			}
			hb.Close()
			hb = mustOpen(t, b, s.MasterPassword)
			hasRows(t, hb, []int{1}, nil) // nothing lost
			mustExec(t, hb, "INSERT INTO t VALUES (2, 'on-b')")
			if err := m.Repoint(ctx, c.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			hasRows(t, hc, []int{1, 2}, nil)

			start = time.Now()
			if err := m.Demote(ctx, a.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			addFigure("%s former primary rebuilt as a replica after a switchover: %v", e.engine, time.Since(start).Round(time.Millisecond))
			got, _ := m.Get(a.ID)
			if got.Role != RoleReplica || got.ReplicaOf != b.ID || got.Status != StatusAvailable || !got.Replication.Running {
				t.Fatalf("demoted: %+v", got)
			}
			ha.Close()
			ha = mustOpen(t, a, s.MasterPassword)
			mustExec(t, hb, "INSERT INTO t VALUES (3, 'on-b-later')")
			hasRows(t, ha, []int{1, 2, 3}, nil)
			if err := ha.Exec("INSERT INTO t VALUES (4, 'on-a-again')"); err == nil {
				t.Fatal("the former primary took a write")
			}
			if r := role(t, ha, e.engine); r != RoleReplica {
				t.Fatalf("the former primary says it is a %s", r)
			}
			if r := role(t, hb, e.engine); r != RolePrimary {
				t.Fatalf("the new primary says it is a %s", r)
			}

			// The new primary dies.
			hb.Close()
			syscall.Kill(m.instPID(b.ID), syscall.SIGKILL)
			ev := evs.wait(t, b.ID, EventDown, 10*time.Second)
			if got, _ := m.Get(b.ID); got.Status != StatusFailed {
				t.Fatalf("dead primary: %+v (event %+v)", got, ev)
			}
			posA, errA := m.Position(ctx, a.ID)
			posC, errC := m.Position(ctx, c.ID)
			if errA != nil || errC != nil || posA == 0 || posA != posC {
				t.Fatalf("positions of the replicas of a dead primary: %d %v, %d %v", posA, errA, posC, errC)
			}
			if err := m.Promote(ctx, a.ID); err != nil {
				t.Fatal(err)
			}
			mustExec(t, ha, "INSERT INTO t VALUES (5, 'on-a-promoted')")
			if err := m.Repoint(ctx, c.ID, a.ID); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			if err := m.Demote(ctx, b.ID, a.ID); err != nil {
				t.Fatal(err)
			}
			addFigure("%s killed primary rebuilt as a replica: %v", e.engine, time.Since(start).Round(time.Millisecond))
			hb = mustOpen(t, b, s.MasterPassword)
			hasRows(t, hb, []int{1, 2, 3, 5}, nil)
			hasRows(t, hc, []int{1, 2, 3, 5}, nil)
			if r := role(t, hb, e.engine); r != RoleReplica {
				t.Fatalf("the rebuilt primary says it is a %s", r)
			}
			// A rebuilt replica survives a reboot as a replica.
			if err := m.Reboot(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			hb = mustOpen(t, b, s.MasterPassword)
			mustExec(t, ha, "INSERT INTO t VALUES (6, 'after-reboot')")
			hasRows(t, hb, []int{6}, nil)
		})
	}
}

// TestDemoteDiverged: a replica stops replicating (reported at once, with
// the reason), its primary takes writes it never receives and dies; the
// replica is promoted and the dead primary, rebuilt under it, loses the
// writes the new primary never had, as it would on RDS.
func TestDemoteDiverged(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{HealthInterval: 200 * time.Millisecond})
			evs := watch(m)
			s := spec(e.engine, "dv-a")
			a, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.Create(ctx, Spec{ID: id("dv-b"), Engine: e.engine, ReplicaOf: a.ID})
			if err != nil {
				t.Fatal(err)
			}
			ha := mustOpen(t, a, s.MasterPassword)
			mustExec(t, ha, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'both')")
			hb := mustOpen(t, b, s.MasterPassword)
			hasRows(t, hb, []int{1}, nil)

			// Replication stops for real.
			if e.engine == "postgres" {
				adminExec(t, m, b.ID, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
			} else {
				adminExec(t, m, b.ID, "STOP SLAVE")
			}
			ev := evs.wait(t, b.ID, EventReplication, 10*time.Second)
			got, _ := m.Get(b.ID)
			if ev.Running || got.Replication.Running || got.Replication.Error == "" {
				t.Fatalf("broken replication reported as %+v, instance %+v", ev, got.Replication)
			}
			mustExec(t, ha, "INSERT INTO t VALUES (2, 'diverged')")
			ha.Close()
			syscall.Kill(m.instPID(a.ID), syscall.SIGKILL)
			evs.wait(t, a.ID, EventDown, 10*time.Second)

			if err := m.Promote(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			mustExec(t, hb, "INSERT INTO t VALUES (3, 'new-primary')")
			if err := m.Demote(ctx, a.ID, b.ID); err != nil {
				t.Fatal(err)
			}
			ha = mustOpen(t, a, s.MasterPassword)
			hasRows(t, ha, []int{1, 3}, []int{2})
			if r := role(t, ha, e.engine); r != RoleReplica {
				t.Fatalf("the rebuilt primary says it is a %s", r)
			}
			if err := ha.Exec("INSERT INTO t VALUES (4, 'nope')"); err == nil {
				t.Fatal("the rebuilt primary took a write")
			}
		})
	}
}

// instPID is the pid of an instance's server.
func (m *Manager) instPID(id string) int {
	got, _ := m.Get(id)
	return got.PID
}
