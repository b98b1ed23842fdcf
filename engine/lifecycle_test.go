package engine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLifecycle: create, connect with the master credentials, write,
// read, reboot, change the password, delete.
func TestLifecycle(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			in := requireEngine(t, e.engine)
			ctx := ctxT(t)
			// A template cache of its own, to time the one-off build.
			m := newManager(t, Config{TemplateDir: filepath.Join(newDir(t), "templates")})
			// Build the template first so the timing below is the
			// per-instance cost, as it is for every instance but the first.
			start := time.Now()
			if err := m.Prepare(ctx, e.engine, ""); err != nil {
				t.Fatal(err)
			}
			addFigure("%s %s: template (Prepare, first use only) %.2fs", e.engine, in.version, time.Since(start).Seconds())
			waitSpares(m) // the steady state: a spare is ready

			s := spec(e.engine, "life")
			start = time.Now()
			inst, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			rss, pss, nproc := treeMemory(inst.PID)
			addFigure("%s %s: Create→ready %.2fs; server tree %d processes, RSS %d MiB, PSS %d MiB",
				e.engine, inst.EngineVersion, took.Seconds(), nproc, rss/1024, pss/1024)

			if inst.EngineVersion != in.version || inst.Status != StatusAvailable || inst.Role != RolePrimary ||
				inst.MaxConnections != 50 || inst.Host != loopback || inst.Port < DefaultPortMin || inst.Port >= DefaultPortMax || inst.PID == 0 {
				t.Fatalf("unexpected instance %+v (installed version %s)", inst, in.version)
			}
			h := mustOpen(t, inst, s.MasterPassword)
			mustExec(t, h, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'hello')")
			if v, err := readValue(h, 1); err != nil || v != "hello" {
				t.Fatalf("read back: %q, %v", v, err)
			}
			h.Close()

			if err := m.Reboot(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
			after, _ := m.Get(inst.ID)
			if after.PID == inst.PID || after.Port != inst.Port || after.Status != StatusAvailable {
				t.Fatalf("after reboot: %+v (before: pid %d)", after, inst.PID)
			}
			h = mustOpen(t, inst, s.MasterPassword)
			if v, err := readValue(h, 1); err != nil || v != "hello" {
				t.Fatalf("read after reboot: %q, %v", v, err)
			}
			h.Close()

			const newPW = `n3w"Pass'word`
			if err := m.SetPassword(ctx, inst.ID, newPW); err != nil {
				t.Fatal(err)
			}
			if h, err := open(inst, "master", s.MasterPassword, "appdb"); err == nil {
				h.Close()
				t.Fatal("the old password still works")
			}
			mustOpen(t, inst, newPW).Close()
			wantErr(t, m.SetPassword(ctx, inst.ID, ""), ErrInvalid, "empty")

			if err := m.Delete(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
			if portOpen(inst.Port) {
				t.Fatalf("port %d still open after Delete", inst.Port)
			}
			if _, err := os.Stat(inst.Dir); !os.IsNotExist(err) {
				t.Fatalf("data dir %s still there: %v", inst.Dir, err)
			}
			wantErr(t, m.Reboot(ctx, inst.ID), ErrNotFound, "")
			if len(m.List()) != 0 {
				t.Fatalf("instances left: %+v", m.List())
			}
		})
	}
}

// TestConcurrent creates and deletes instances of both engines at once on
// one Manager (run it with -race).
func TestConcurrent(t *testing.T) {
	for _, e := range engines {
		requireEngine(t, e.engine)
	}
	ctx := ctxT(t)
	m := newManager(t, Config{})
	type res struct {
		inst Instance
		err  error
	}
	results := make(chan res)
	n := 0
	for _, e := range engines {
		// The second name is long, like the account.region.id names
		// callers build (it also moves MariaDB's socket out of the
		// data directory, whose path gets too long for a socket).
		for _, name := range []string{"c1", "000000000000.eu-west-1.c2-with-a-rather-long-identifier"} {
			n++
			go func() {
				inst, err := m.Create(ctx, spec(e.engine, e.name+"-"+name))
				results <- res{inst, err}
			}()
		}
	}
	ports := map[int]bool{}
	for range n {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		if ports[r.inst.Port] {
			t.Errorf("port %d given twice", r.inst.Port)
		}
		ports[r.inst.Port] = true
		_ = m.List()
	}
	if t.Failed() {
		return
	}
	errs := make(chan error)
	for _, inst := range m.List() {
		go func() { errs <- m.Delete(ctx, inst.ID) }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// waitSpares waits until no spare is being made.
func waitSpares(m *Manager) {
	for {
		m.mu.Lock()
		n := len(m.filling)
		m.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
