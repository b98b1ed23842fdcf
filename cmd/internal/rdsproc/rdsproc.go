package rdsproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Options say how to start rdslocal.
type Options struct {
	Bin  string   // path of the binary (bin/rdslocal)
	Dir  string   // work directory: data/ and rdslocal.log go there
	Args []string // flags after --listen and --data-dir
	Env  []string // extra environment variables
	// Logf receives progress lines (nil: none).
	Logf func(format string, args ...any)
}

// Process is a running rdslocal.
type Process struct {
	Cmd     *exec.Cmd
	APIURL  string // http://127.0.0.1:port
	LogPath string
	log     *os.File
	done    chan struct{}
	logf    func(format string, args ...any)
}

// Start runs rdslocal with --listen on a free loopback port and --data-dir
// Dir/data (mode 711: database servers run as their service users and
// must reach it), logging to Dir/rdslocal.log, in a process group of its
// own (so Ctrl-C reaches the driver, which stops it in order), and waits
// up to 30 s for its health endpoint.
func Start(ctx context.Context, o Options) (*Process, error) {
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %v (run `make build` first)", o.Bin, err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(o.Dir, "data")
	if err := os.Mkdir(data, 0o711); err != nil {
		return nil, err
	}
	p := &Process{LogPath: filepath.Join(o.Dir, "rdslocal.log"), done: make(chan struct{}), logf: logf}
	if p.log, err = os.Create(p.LogPath); err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin, append([]string{"--listen", addr, "--data-dir", data}, o.Args...)...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	if err := cmd.Start(); err != nil {
		p.log.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	p.Cmd, p.APIURL = cmd, "http://"+addr
	logf("rdslocal pid %d, API %s, log %s", cmd.Process.Pid, p.APIURL, p.LogPath)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.APIURL + "/_rdslocal/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			p.log.Close()
			return nil, fmt.Errorf("rdslocal exited:\n%s", Tail(p.LogPath, 20))
		case <-ctx.Done():
			p.Stop(10 * time.Second)
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop(10 * time.Second)
			return nil, fmt.Errorf("rdslocal did not become healthy: %v\n%s", err, Tail(p.LogPath, 20))
		}
	}
}

// AWSConfig is a client configuration for p's API (region us-east-1,
// LocalStack's test credentials).
func (p *Process) AWSConfig() aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(p.APIURL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Tail is the end of rdslocal's log, for failure reports.
func (p *Process) Tail(n int) string { return Tail(p.LogPath, n) }

// Stop ends rdslocal with SIGTERM (it stops its database servers), then
// SIGKILL to its process group after grace.
func (p *Process) Stop(grace time.Duration) {
	p.logf("stopping rdslocal (pid %d)", p.Cmd.Process.Pid)
	StopProcess(p.Cmd, p.done, grace, p.logf)
	p.log.Close()
}

// StopProcess ends a child started with Setpgid: SIGTERM, then SIGKILL to
// its process group after grace. done is closed when the child has been
// waited for (nil: StopProcess waits for it itself).
func StopProcess(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration, logf func(string, ...any)) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	if done == nil {
		ch := make(chan struct{})
		go func() { _ = cmd.Wait(); close(ch) }()
		done = ch
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	if logf != nil {
		logf("%s did not stop within %s; killing it", filepath.Base(cmd.Path), grace)
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
	<-done
}

// KillStragglers ends the processes whose command line names dir (database
// servers of a run's instances that rdslocal did not stop): SIGTERM, then
// SIGKILL two seconds later.
func KillStragglers(dir string, logf func(string, ...any)) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, f := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if pid == os.Getpid() {
			continue
		}
		if cl, err := os.ReadFile(f); err == nil && strings.Contains(string(cl), dir) {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		if logf != nil {
			logf("stopping leftover process %d", pid)
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if len(pids) > 0 {
		time.Sleep(2 * time.Second)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// RaiseNoFile lifts RLIMIT_NOFILE to at least n (up to the hard limit, or
// beyond it as root); children inherit it.
func RaiseNoFile(n int, logf func(string, ...any)) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	want := uint64(n)
	if l.Max != ^uint64(0) && want > l.Max {
		if os.Geteuid() == 0 {
			l.Max = want
		} else {
			want = l.Max
		}
	}
	l.Cur = max(l.Cur, want)
	// Set it even when it is high enough, so that Go does not restore
	// its start-up value for child processes.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil && logf != nil {
		logf("cannot raise the open-file limit to %d: %v", n, err)
	}
}

// FreePort is a loopback TCP port nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
