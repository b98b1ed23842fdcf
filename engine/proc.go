package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Files every spawned instance keeps in its directory.
const (
	logName = "server.log" // the server's stdout and stderr, appended
	pidName = "server.pid" // the server's pid while it runs
)

// stopTimeout bounds a graceful shutdown before the process group is
// SIGKILLed.
const stopTimeout = 15 * time.Second

// server is one running database server process.
type server struct {
	cmd     *exec.Cmd
	pid     int
	dir     string // instance directory: log and pid file
	data    string // its data directory, every server process's working directory
	port    int    // the port it listens on, on 127.0.0.1 (0: not known)
	stopSig syscall.Signal
	done    chan struct{} // closed once the process has exited
	err     error         // exit status; valid after done
	// stopping is set before a deliberate stop, so an exit is not
	// reported as a failure.
	stopping atomic.Bool
}

// launch starts cmd as the server of the instance in dir: output goes to
// dir/server.log, the pid to dir/server.pid. onExit runs after an exit
// that stop did not ask for.
func (m *Manager) launch(dir string, cmd *exec.Cmd, stopSig syscall.Signal, onExit func(*server)) (*server, error) {
	logf, err := os.OpenFile(filepath.Join(dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "\n--- rdslocal: %s %s\n", time.Now().Format(time.RFC3339), strings.Join(cmd.Args, " "))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.Env = childEnv()
	if err := m.spawn.start(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, dir: dir, data: filepath.Join(dir, dataName), stopSig: stopSig, done: make(chan struct{})}
	if err := os.WriteFile(filepath.Join(dir, pidName), []byte(strconv.Itoa(s.pid)+"\n"), 0o644); err != nil {
		m.log.Warn("engine: cannot write pid file", "dir", dir, "err", err)
	}
	go func() {
		s.err = cmd.Wait()
		logf.Close()
		close(s.done)
		if !s.stopping.Load() && onExit != nil {
			onExit(s)
		}
	}()
	return s, nil
}

// stop shuts the server down: its stop signal, then SIGKILL to its whole
// process group after stopTimeout. It always returns with the process
// gone.
func (s *server) stop() {
	if s == nil {
		return
	}
	s.stopping.Store(true)
	if !s.exited() {
		_ = syscall.Kill(s.pid, s.stopSig)
	}
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = syscall.Kill(-s.pid, syscall.SIGKILL)
		<-s.done
		killStragglers(s.data)
	}
	_ = os.Remove(filepath.Join(s.dir, pidName))
}

// killStragglers kills what is left of a server that died: PostgreSQL's
// backends each lead their own session (setsid), so they outlive a killed
// postmaster until they notice, and one may still commit a transaction a
// client sent at that moment on a server that is gone. Every process of a
// server has its data directory as working directory.
func killStragglers(data string) {
	if real, err := filepath.EvalSymlinks(data); err == nil {
		data = real
	}
	for range 50 {
		found := false
		cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
		for _, c := range cwds {
			if dir, err := os.Readlink(c); err == nil && dir == data {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
				_ = syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exited reports whether the process has ended.
func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// withLog appends the tail of the server's log to err.
func (s *server) withLog(err error) error {
	return withLogTail(err, filepath.Join(s.dir, logName))
}

func withLogTail(err error, path string) error {
	tail := logTail(path, 20)
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\n--- %s (last lines) ---\n%s", err, path, tail)
}

// logTail returns up to n last lines of the file at path.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errNotListening: the server does not listen on its port yet.
var errNotListening = errors.New("the server does not listen on its port yet")

// waitReady polls try until it succeeds, the server exits, fatal(err)
// says retrying is pointless, or the ready timeout passes. try runs only
// once the server's own process listens on its port: another program may
// have taken the port after it was found free (other servers on the
// machine use the same range), and its answers must not pass for ours.
func (m *Manager) waitReady(ctx context.Context, s *server, try func(context.Context) error, fatal func(error) bool) error {
	ctx, cancel := context.WithTimeout(ctx, m.readyTimeout)
	defer cancel()
	for {
		err := errNotListening
		if ours, lerr := listensOn(s.pid, s.port); ours || lerr != nil || s.port == 0 {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			err = try(actx)
			acancel()
		}
		if err == nil {
			return nil
		}
		if fatal != nil && fatal(err) {
			// It may be another server on our port that answered, ours
			// having failed to bind it (another program took the port
			// after we probed it): then ours exits at once, and says why.
			select {
			case <-s.done:
				return s.withLog(fmt.Errorf("server exited (%v) before it accepted connections; last attempt: %v", s.err, err))
			case <-time.After(500 * time.Millisecond):
			}
			return s.withLog(err)
		}
		select {
		case <-s.done:
			return s.withLog(fmt.Errorf("server exited (%v) before it accepted connections; last attempt: %v", s.err, err))
		case <-ctx.Done():
			return s.withLog(fmt.Errorf("server not ready after %s: %v", m.readyTimeout, err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// run runs a short-lived tool (initdb, pg_basebackup, …) through the
// spawner and returns its error with the tail of its output.
func (m *Manager) run(ctx context.Context, cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	if cmd.Env == nil {
		cmd.Env = childEnv()
	}
	if err := m.spawn.start(cmd); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = ctx.Err()
	}
	if err != nil {
		tail := strings.TrimSpace(out.String())
		if len(tail) > 4000 {
			tail = tail[len(tail)-4000:]
		}
		return fmt.Errorf("%s failed: %w\n%s", filepath.Base(cmd.Path), err, tail)
	}
	return nil
}

// childEnv is the environment of every child: no PG*/MYSQL* variables of
// ours leak into the servers.
func childEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return []string{"PATH=" + path, "LC_ALL=C", "LANG=C"}
}

// portRace reports whether a server that failed to start lost its port
// to another process.
func portRace(logPath string) bool {
	t := logTail(logPath, 30)
	return strings.Contains(t, "Address already in use") || strings.Contains(t, "could not bind")
}
