package engine

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverPIDs lists the processes of an instance's server (every one has
// its data directory as working directory).
func serverPIDs(t *testing.T, inst Instance) []int {
	t.Helper()
	data, err := filepath.EvalSymlinks(filepath.Join(inst.Dir, dataName))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, c := range cwds {
		if dir, err := os.Readlink(c); err == nil && dir == data {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("no process of %s's server", inst.ID)
	}
	return pids
}

// TestStalledPrimaryLeavesReplicaAlone: a primary that stops answering
// (stopped, not dead) is found down after two checks; its replica, which
// answers all along, is not. Each check has its own time: the replica's
// must not be what is left after the primary's hung check, or a hung
// writer would take its readers down with it and no reader could replace
// it.
func TestStalledPrimaryLeavesReplicaAlone(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{HealthInterval: 200 * time.Millisecond})
			evs := watch(m)
			p, err := m.Create(ctx, spec(e.engine, "st-p"))
			if err != nil {
				t.Fatal(err)
			}
			rs := spec(e.engine, "st-r")
			rs.ReplicaOf = p.ID
			r, err := m.Create(ctx, rs)
			if err != nil {
				t.Fatal(err)
			}
			pids := serverPIDs(t, p)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGSTOP)
			}
			t.Cleanup(func() {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGCONT)
				}
			})
			down := evs.wait(t, p.ID, EventDown, 30*time.Second)
			// Two more rounds of checks of the replica after the primary
			// was found down.
			checks := 0
			var last time.Time
			for checks < 2 {
				got, err := m.Get(r.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != StatusAvailable {
					t.Fatalf("the replica is %s after its primary stalled: %s", got.Status, got.Replication.Error)
				}
				if c := got.Replication.Checked; c.After(down.Time) && c != last {
					checks++
					last = c
				}
				time.Sleep(50 * time.Millisecond)
			}
			evs.mu.Lock()
			defer evs.mu.Unlock()
			for _, ev := range evs.list {
				if ev.ID == r.ID && ev.Kind == EventDown {
					t.Fatalf("the replica was found down with its stalled primary: %s", ev.Detail)
				}
			}
		})
	}
}

// TestWaitReadyIgnoresAnotherServer: a server whose port another program
// took before it could bind it is not ready because something answers on
// that port; it is waited for until it listens there itself (here it
// never does, and exits), so its start fails as a port race and Create
// retries on another port, instead of taking the other program's answers
// (or refusals) for its own.
func TestWaitReadyIgnoresAnotherServer(t *testing.T) {
	if _, err := listensOn(os.Getpid(), 1); err != nil {
		t.Skipf("no /proc to tell who listens: %v", err)
	}
	other, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	port := other.Addr().(*net.TCPAddr).Port
	if ok, err := listensOn(os.Getpid(), port); !ok || err != nil {
		t.Fatalf("listensOn(self, %d) = %v, %v", port, ok, err)
	}
	// "Our" server: a process that never listens and exits after a while.
	cmd := exec.Command("sleep", "0.5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, dir: t.TempDir(), port: port, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	m := &Manager{readyTimeout: 30 * time.Second, log: slog.New(slog.DiscardHandler)}
	answered := func(ctx context.Context) error { return nil } // the other program answers
	err = m.waitReady(context.Background(), s, answered, nil)
	if err == nil || !strings.Contains(err.Error(), "server exited") {
		t.Fatalf("waitReady took another program's answer for the server's: %v", err)
	}
}
