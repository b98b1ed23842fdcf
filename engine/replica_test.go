package engine

import (
	"fmt"
	"testing"
	"time"
)

// TestReplica: a row written on the primary is readable on its replica
// within a second; the replica refuses writes and password changes;
// password changes on the primary reach it. Then a failover: one replica
// is promoted and the other repointed at it.
func TestReplica(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{})
			s := spec(e.engine, "pri")
			s.InstanceClass = "db.r6g.large"
			pri, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			hp := mustOpen(t, pri, s.MasterPassword)
			mustExec(t, hp, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'before')")

			waitSpares(m)
			start := time.Now()
			rep, err := m.Create(ctx, Spec{ID: id("rep1"), Engine: e.engine, InstanceClass: "db.t3.micro", ReplicaOf: pri.ID})
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			rss, pss, _ := treeMemory(rep.PID)
			addFigure("%s replica: Create→ready %.2fs; RSS %d MiB, PSS %d MiB", e.engine, took.Seconds(), rss/1024, pss/1024)
			if rep.Role != RoleReplica || rep.ReplicaOf != pri.ID || rep.Port == pri.Port || rep.MasterUsername != "master" {
				t.Fatalf("unexpected replica %+v", rep)
			}
			if e.engine == "postgres" && rep.MaxConnections != pri.MaxConnections {
				t.Errorf("a PostgreSQL standby needs max_connections >= its primary's: %d < %d", rep.MaxConnections, pri.MaxConnections)
			}
			hr := mustOpen(t, rep, s.MasterPassword)
			if v, err := readValue(hr, 1); err != nil || v != "before" {
				t.Fatalf("replica lacks the primary's data: %q, %v", v, err)
			}

			// Replication lag: write, then read on the replica.
			mustExec(t, hp, "INSERT INTO t VALUES (2, 'after')")
			start = time.Now()
			if err := eventually(time.Second, func() error {
				v, err := readValue(hr, 2)
				if err == nil && v != "after" {
					err = fmt.Errorf("got %q", v)
				}
				return err
			}); err != nil {
				t.Fatalf("row not on the replica within 1s: %v", err)
			}
			addFigure("%s replication lag (insert on primary → visible on replica): %v", e.engine, time.Since(start).Round(time.Millisecond))

			if err := hr.Exec("INSERT INTO t VALUES (3, 'nope')"); err == nil {
				t.Fatal("the replica took a write")
			}
			wantErr(t, m.SetPassword(ctx, rep.ID, "whatever1"), ErrUnsupported, "replica")
			wantErr(t, m.Promote(ctx, pri.ID), ErrInvalid, "not a replica")

			// The password is the primary's, replicated.
			const newPW = "Rotated-1"
			if err := m.SetPassword(ctx, pri.ID, newPW); err != nil {
				t.Fatal(err)
			}
			if err := eventually(2*time.Second, func() error {
				h, err := open(rep, "master", newPW, "appdb")
				if err == nil {
					h.Close()
				}
				return err
			}); err != nil {
				t.Fatalf("new password not valid on the replica: %v", err)
			}

			// Failover: rep1 becomes the primary, rep2 follows it.
			rep2, err := m.Create(ctx, Spec{ID: id("rep2"), Engine: e.engine, ReplicaOf: pri.ID})
			if err != nil {
				t.Fatal(err)
			}
			hr2 := mustOpen(t, rep2, newPW)
			mustExec(t, hp, "INSERT INTO t VALUES (4, 'last-on-old')")
			for _, h := range []client{hr, hr2} {
				if err := eventually(2*time.Second, func() error { _, err := readValue(h, 4); return err }); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.Promote(ctx, rep.ID); err != nil {
				t.Fatal(err)
			}
			if got, _ := m.Get(rep.ID); got.Role != RolePrimary || got.ReplicaOf != "" {
				t.Fatalf("after promote: %+v", got)
			}
			mustExec(t, hr, "INSERT INTO t VALUES (5, 'on-new')")
			if err := m.Repoint(ctx, rep2.ID, rep.ID); err != nil {
				t.Fatal(err)
			}
			if err := eventually(5*time.Second, func() error { _, err := readValue(hr2, 5); return err }); err != nil {
				t.Fatalf("repointed replica did not get the new primary's row: %v", err)
			}
			if got, _ := m.Get(rep2.ID); got.ReplicaOf != rep.ID {
				t.Fatalf("after repoint: %+v", got)
			}
			// A promoted instance stays a primary across a reboot.
			if err := m.Reboot(ctx, rep.ID); err != nil {
				t.Fatal(err)
			}
			h := mustOpen(t, rep, newPW)
			mustExec(t, h, "INSERT INTO t VALUES (6, 'after-reboot')")
		})
	}
}
