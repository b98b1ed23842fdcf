package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// tempPrefix names the temporary root of a Manager without a DataDir.
const tempPrefix = "rdslocal-engine-"

// lockRoot takes an exclusive, non-blocking flock on root/lock and writes
// our pid into it. The kernel drops the lock when the process dies, so a
// root whose lock can be taken has no live owner.
func lockRoot(root string) (*os.File, error) {
	path := filepath.Join(root, lockName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("%w: %s is held by another rdslocal engine manager (pid %s)", ErrInUse, root, strings.TrimSpace(string(b)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// reapInstances stops every server that a previous, dead owner of root
// left running: each instance's pid file names it, and the process is
// killed only if it is a postgres/mariadbd/mysqld whose command line
// names that instance's data directory (the pid may have been reused).
func (m *Manager) reapInstances(root string) {
	files, _ := filepath.Glob(filepath.Join(root, instancesName, "*", pidName))
	for _, pf := range files {
		dir := filepath.Dir(pf)
		b, _ := os.ReadFile(pf)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if sig, ok := serverOf(pid, filepath.Join(dir, dataName)); ok {
			m.log.Warn("engine: stopping a server left behind by a previous run", "dir", dir, "pid", pid)
			killAndWait(pid, sig)
		}
		_ = os.Remove(pf)
	}
}

// serverOf reports whether pid is a database server running on data, and
// the signal that shuts it down cleanly.
func serverOf(pid int, data string) (syscall.Signal, bool) {
	if pid <= 0 {
		return 0, false
	}
	args, err := processArgs(pid)
	if err != nil || len(args) == 0 {
		return 0, false
	}
	var sig syscall.Signal
	switch filepath.Base(args[0]) {
	case "postgres", "postmaster":
		sig = syscall.SIGINT
	case "mariadbd", "mysqld":
		sig = syscall.SIGTERM
	default:
		return 0, false
	}
	for _, a := range args[1:] {
		if a == data || strings.HasSuffix(a, "="+data) {
			return sig, true
		}
	}
	return 0, false
}

// killAndWait stops a process that is not our child: sig, then SIGKILL to
// its process group (spawned servers lead their own group).
func killAndWait(pid int, sig syscall.Signal) {
	_ = syscall.Kill(pid, sig)
	if waitGone(pid, stopTimeout) {
		return
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	waitGone(pid, 5*time.Second)
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if processGone(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return processGone(pid)
}

// reapTempRoots removes the temporary roots of Managers whose process
// died without Close (SIGKILL): their servers died with them through
// Pdeathsig, but their data stayed. A root qualifies when it is ours, its
// lock is older than a minute (so a Manager that is just starting is left
// alone) and nobody holds the lock.
func (m *Manager) reapTempRoots() {
	roots, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, root := range roots {
		if root == m.root {
			continue
		}
		fi, err := os.Stat(filepath.Join(root, lockName))
		if err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		f, err := lockRoot(root)
		if err != nil {
			continue
		}
		m.reapInstances(root)
		_ = os.RemoveAll(root)
		f.Close()
		m.log.Info("engine: removed the data of a previous run", "dir", root)
	}
}

// clearStalePid makes sure the server's own pid file (postmaster.pid)
// does not name a process that would stop a new server from starting: a
// live server of ours on data is stopped; a dead one, a zombie not yet
// reaped by init (PostgreSQL would take it for a running postmaster) or an
// unrelated process that reused the pid leaves a stale file, removed.
func clearStalePid(pidFile, data string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	if sig, ok := serverOf(pid, data); ok {
		killAndWait(pid, sig)
	}
	_ = os.Remove(pidFile)
}
