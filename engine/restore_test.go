package engine

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRestart: a new Manager on the same DataDir restores every instance
// with its data, its port and its role.
func TestRestart(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			dir := newDir(t)
			m1 := newManager(t, Config{DataDir: dir})
			s := spec(e.engine, "keep")
			pri, err := m1.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			rs := Spec{ID: id("keep-r"), Engine: e.engine, ReplicaOf: pri.ID}
			rep, err := m1.Create(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			h := mustOpen(t, pri, s.MasterPassword)
			mustExec(t, h, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'kept')")
			h.Close()
			if err := m1.Close(); err != nil {
				t.Fatal(err)
			}
			if portOpen(pri.Port) || portOpen(rep.Port) {
				t.Fatal("a server still listens after Close")
			}

			m2 := newManager(t, Config{DataDir: dir})
			if got, _ := m2.Get(pri.ID); got.Status != StatusStopped || got.Port != pri.Port {
				t.Fatalf("before Restore: %+v", got)
			}
			// The replica is listed first: Restore orders primaries first.
			if err := m2.Restore(ctx, []Spec{rs, s}); err != nil {
				t.Fatal(err)
			}
			for _, want := range []Instance{pri, rep} {
				got, err := m2.Get(want.ID)
				if err != nil || got.Port != want.Port || got.Status != StatusAvailable || got.Role != want.Role {
					t.Fatalf("restored %+v (%v), want port %d role %s", got, err, want.Port, want.Role)
				}
			}
			hp := mustOpen(t, pri, s.MasterPassword)
			if v, err := readValue(hp, 1); err != nil || v != "kept" {
				t.Fatalf("data after restore: %q, %v", v, err)
			}
			mustExec(t, hp, "INSERT INTO t VALUES (2, 'new')")
			hr := mustOpen(t, rep, s.MasterPassword)
			if err := eventually(5*time.Second, func() error { _, err := readValue(hr, 2); return err }); err != nil {
				t.Fatalf("replication after restore: %v", err)
			}
			// A Spec that is not on disk is created.
			if err := m2.Restore(ctx, []Spec{spec(e.engine, "fresh")}); err != nil {
				t.Fatal(err)
			}
			if got, _ := m2.Get(id("fresh")); got.Status != StatusAvailable {
				t.Fatalf("fresh: %+v", got)
			}
		})
	}
}

// TestReapLeftovers: a Manager that died without Close (its lock is
// released by the kernel, its servers keep running) is cleaned up by the
// next Manager on the same directory, which then restores the instance.
func TestReapLeftovers(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			dir := newDir(t)
			m1 := newManager(t, Config{DataDir: dir})
			s := spec(e.engine, "orphan")
			inst, err := m1.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			// What the kernel does when rdslocal dies: the flock goes away.
			// The server was started by this process, so Pdeathsig cannot
			// fire; only the pid file leads to it.
			m1.lock.Close()
			m2 := newManager(t, Config{DataDir: dir})
			if !processGone(inst.PID) {
				t.Fatalf("server pid %d still running after the new Manager started", inst.PID)
			}
			if err := m2.Restore(ctx, []Spec{s}); err != nil {
				t.Fatal(err)
			}
			mustOpen(t, inst, s.MasterPassword).Close()
		})
	}
}

// TestInUse: two Managers cannot share a DataDir.
func TestInUse(t *testing.T) {
	dir := newDir(t)
	newManager(t, Config{DataDir: dir})
	_, err := NewManager(context.Background(), Config{DataDir: dir})
	wantErr(t, err, ErrInUse, strconv.Itoa(os.Getpid()))
}

// TestParentKilled: when the process running the Manager is SIGKILLed,
// its servers die with it (Pdeathsig), and the next Manager on the
// DataDir restores the instance with its data.
func TestParentKilled(t *testing.T) {
	if dir := os.Getenv("ENGINE_TEST_CHILD_DIR"); dir != "" {
		childMain(t, dir)
		return
	}
	requireEngine(t, "postgres")
	dir := newDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestParentKilled$")
	cmd.Env = append(os.Environ(), "ENGINE_TEST_CHILD_DIR="+dir, "ENGINE_TEST_TOKEN="+token, "ENGINE_TEST_TEMPLATES="+tmplDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var line string
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(line, "\n") && time.Now().Before(deadline) {
		n, err := out.Read(buf)
		line += string(buf[:n])
		if err != nil {
			break
		}
	}
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "READY" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	pid, _ := strconv.Atoi(f[1])
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if !waitGone(pid, 10*time.Second) {
		t.Fatalf("server %d outlived its SIGKILLed parent", pid)
	}
	ctx := ctxT(t)
	m := newManager(t, Config{DataDir: dir})
	s := spec("postgres", "child")
	if err := m.Restore(ctx, []Spec{s}); err != nil {
		t.Fatal(err)
	}
	inst, _ := m.Get(s.ID)
	h := mustOpen(t, inst, s.MasterPassword)
	if v, err := readValue(h, 1); err != nil || v != "child" {
		t.Fatalf("data after the crash: %q, %v", v, err)
	}
}

// childMain runs in the child process of TestParentKilled: create an
// instance, write a row, report, wait to be killed.
func childMain(t *testing.T, dir string) {
	token = os.Getenv("ENGINE_TEST_TOKEN")
	m, err := NewManager(context.Background(), Config{DataDir: dir, Backend: BackendProcess, TemplateDir: os.Getenv("ENGINE_TEST_TEMPLATES")})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Create(context.Background(), spec("postgres", "child"))
	if err != nil {
		t.Fatal(err)
	}
	h := mustOpen(t, inst, spec("postgres", "child").MasterPassword)
	mustExec(t, h, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'child')")
	h.Close()
	os.Stdout.WriteString("READY " + strconv.Itoa(inst.PID) + "\n")
	time.Sleep(time.Minute)
}

// TestRestartAfterPromotion: a primary that died and whose replica was
// promoted never comes back as a primary, even if rdslocal stops before
// it is demoted (Demote would rebuild it): the next Manager rebuilds it as
// a replica of the promoted one.
func TestRestartAfterPromotion(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			dir := newDir(t)
			m1 := newManager(t, Config{DataDir: dir})
			evs := watch(m1)
			s := spec(e.engine, "pr-a")
			a, err := m1.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			bs := Spec{ID: id("pr-b"), Engine: e.engine, ReplicaOf: a.ID}
			b, err := m1.Create(ctx, bs)
			if err != nil {
				t.Fatal(err)
			}
			ha := mustOpen(t, a, s.MasterPassword)
			mustExec(t, ha, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'before')")
			ha.Close()
			hb := mustOpen(t, b, s.MasterPassword)
			hasRows(t, hb, []int{1}, nil)
			hb.Close()
			_ = syscall.Kill(m1.instPID(a.ID), syscall.SIGKILL)
			evs.wait(t, a.ID, EventDown, 10*time.Second)
			if err := m1.Promote(ctx, b.ID); err != nil {
				t.Fatal(err)
			}
			// rdslocal stops here, before Demote(a, b).
			if err := m1.Close(); err != nil {
				t.Fatal(err)
			}

			m2 := newManager(t, Config{DataDir: dir})
			if err := m2.Restore(ctx, []Spec{s, bs}); err != nil {
				t.Fatal(err)
			}
			for _, want := range []struct {
				id, role, replicaOf string
			}{{a.ID, RoleReplica, b.ID}, {b.ID, RolePrimary, ""}} {
				got, err := m2.Get(want.id)
				if err != nil || got.Status != StatusAvailable || got.Role != want.role || got.ReplicaOf != want.replicaOf {
					t.Fatalf("%s after the restart: %+v (%v), want a %s of %q", want.id, got, err, want.role, want.replicaOf)
				}
			}
			hb = mustOpen(t, b, s.MasterPassword)
			defer hb.Close()
			mustExec(t, hb, "INSERT INTO t VALUES (2, 'after')")
			ha = mustOpen(t, a, s.MasterPassword)
			defer ha.Close()
			hasRows(t, ha, []int{1, 2}, nil)
			if r := role(t, ha, e.engine); r != RoleReplica {
				t.Fatalf("the former primary came back as a %s", r)
			}
		})
	}
}

// TestRestartMidSwitchover: rdslocal stops in the middle of a Switchover,
// after the old primary was stopped with everything sent to the new one
// and marked to be rebuilt as its replica, but before the new one was
// promoted. The next Manager finishes the switchover: the new one is
// promoted, the old one rebuilt under it; nothing is lost.
func TestRestartMidSwitchover(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			dir := newDir(t)
			m1 := newManager(t, Config{DataDir: dir})
			s := spec(e.engine, "ms-a")
			a, err := m1.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			bs := Spec{ID: id("ms-b"), Engine: e.engine, ReplicaOf: a.ID}
			b, err := m1.Create(ctx, bs)
			if err != nil {
				t.Fatal(err)
			}
			ha := mustOpen(t, a, s.MasterPassword)
			mustExec(t, ha, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'before')")
			ha.Close()
			hb := mustOpen(t, b, s.MasterPassword)
			hasRows(t, hb, []int{1}, nil)
			hb.Close()
			if err := m1.Close(); err != nil {
				t.Fatal(err)
			}
			// What Switchover saves once the old primary handed over and
			// stopped; rdslocal dies before the promotion.
			md, err := loadMeta(a.Dir)
			if err != nil {
				t.Fatal(err)
			}
			md.Role, md.ReplicaOf, md.Rebuild = RoleReplica, b.ID, true
			if err := saveMeta(a.Dir, md); err != nil {
				t.Fatal(err)
			}

			m2 := newManager(t, Config{DataDir: dir})
			if err := m2.Restore(ctx, []Spec{s, bs}); err != nil {
				t.Fatal(err)
			}
			for _, want := range []struct {
				id, role, replicaOf string
			}{{b.ID, RolePrimary, ""}, {a.ID, RoleReplica, b.ID}} {
				got, err := m2.Get(want.id)
				if err != nil || got.Status != StatusAvailable || got.Role != want.role || got.ReplicaOf != want.replicaOf {
					t.Fatalf("%s after the restart: %+v (%v), want a %s of %q", want.id, got, err, want.role, want.replicaOf)
				}
			}
			hb = mustOpen(t, b, s.MasterPassword)
			defer hb.Close()
			mustExec(t, hb, "INSERT INTO t VALUES (2, 'after')")
			ha = mustOpen(t, a, s.MasterPassword)
			defer ha.Close()
			hasRows(t, ha, []int{1, 2}, nil)
		})
	}
}
