package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/gorilla/mux"
	"github.com/rdslocal/rdslocal/fixture"
)

// Start-up phases the health endpoint reports (Health.Init.State).
const (
	PhaseFixtures = "fixtures" // applying the fixture file, waiting for its resources
	PhaseHooks    = "hooks"    // running ready.d hooks
	PhaseReady    = "ready"
	PhaseFailed   = "failed" // a fixture or a hook failed; Errors says which
)

// Init hook states, LocalStack's.
const (
	ScriptUnknown    = "UNKNOWN"
	ScriptRunning    = "RUNNING"
	ScriptSuccessful = "SUCCESSFUL"
	ScriptError      = "ERROR"
)

// Script is one init hook and how it went.
type Script struct {
	Stage    string `json:"stage"` // READY: the only stage rdslocal runs
	Name     string `json:"name"`  // path below ready.d
	State    string `json:"state"`
	ExitCode *int   `json:"exitCode,omitempty"`
}

// InitStatus is the progress of start-up: the fixture file, then the
// ready.d hooks.
type InitStatus struct {
	State       string                   `json:"state"`
	FixtureFile string                   `json:"fixtureFile,omitempty"`
	Fixtures    []fixture.ResourceStatus `json:"fixtures,omitempty"`
	InitDir     string                   `json:"initDir,omitempty"`
	Scripts     []Script                 `json:"scripts,omitempty"`
	Errors      []string                 `json:"errors,omitempty"`
}

// Health is the document GET /_rdslocal/health (and /_localstack/health)
// answers: LocalStack's fields, plus whether start-up is done.
type Health struct {
	Services map[string]string `json:"services"`
	Edition  string            `json:"edition"`
	Version  string            `json:"version"`
	// Ready is true once every fixture is ready and every hook ran
	// successfully. It stays false after a failure (Init.State failed).
	Ready bool       `json:"ready"`
	Init  InitStatus `json:"init"`
}

// initState is the server's start-up progress, read by the health
// endpoint while initialize runs.
type initState struct {
	file     *fixture.File // nil without --init-file
	progress *fixture.Progress

	mu      sync.Mutex
	phase   string
	scripts []Script
	errors  []string
}

func (st *initState) setPhase(p string) {
	st.mu.Lock()
	st.phase = p
	st.mu.Unlock()
}

func (st *initState) fail(err string) {
	st.mu.Lock()
	st.phase = PhaseFailed
	st.errors = append(st.errors, err)
	st.mu.Unlock()
}

// status returns a copy of the progress.
func (s *Server) initStatus() InitStatus {
	st := &s.init
	st.mu.Lock()
	defer st.mu.Unlock()
	out := InitStatus{State: st.phase, InitDir: s.cfg.InitDir, Scripts: append([]Script(nil), st.scripts...),
		Errors: append([]string(nil), st.errors...)}
	if st.file != nil {
		out.FixtureFile = st.file.Path
		out.Fixtures = st.progress.Resources()
	}
	return out
}

// initialize applies the fixture file and then runs the ready.d hooks;
// the server is ready when both are done. apiURL is where hooks reach the
// API.
func (s *Server) initialize(ctx context.Context, apiURL string) {
	start := time.Now()
	if f := s.init.file; f != nil {
		s.init.setPhase(PhaseFixtures)
		ap := &fixture.Applier{Config: s.InProcessConfig(), Logger: s.log}
		if err := ap.Apply(ctx, f, s.init.progress); err != nil {
			if ctx.Err() == nil {
				s.log.Error("fixtures failed", "err", err)
				s.init.fail(err.Error())
			}
			return
		}
		s.log.Info("fixtures ready", "file", f.Path, "resources", len(f.Resources), "took", time.Since(start).Round(time.Millisecond))
	}
	if s.cfg.InitDir != "" {
		s.init.setPhase(PhaseHooks)
		if !s.runHooks(ctx, apiURL) {
			return
		}
	}
	s.init.setPhase(PhaseReady)
	s.log.Info("rdslocal ready", "took", time.Since(start).Round(time.Millisecond))
}

// hookRegion is the AWS_DEFAULT_REGION hooks get: the fixture file's.
func (s *Server) hookRegion() string {
	if s.init.file != nil {
		return s.init.file.Region
	}
	return DefaultRegion
}

// runHooks runs the executable files below <init-dir>/ready.d in order
// (LocalStack's: sorted by name, a directory's files before its
// subdirectories), each to its end even when one fails. It reports
// whether all succeeded.
func (s *Server) runHooks(ctx context.Context, apiURL string) bool {
	// Absolute, since each hook runs in its own directory.
	dir, err := filepath.Abs(filepath.Join(s.cfg.InitDir, "ready.d"))
	var paths []string
	if err == nil {
		paths, err = hookFiles(dir)
	}
	if err != nil {
		s.init.fail(fmt.Sprintf("init hooks: %v", err))
		return false
	}
	s.init.mu.Lock()
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		s.init.scripts = append(s.init.scripts, Script{Stage: "READY", Name: rel, State: ScriptUnknown})
	}
	s.init.mu.Unlock()
	env := append(os.Environ(),
		"AWS_ENDPOINT_URL="+apiURL, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_DEFAULT_REGION="+s.hookRegion(), "AWS_REGION="+s.hookRegion(), "AWS_PAGER=")
	ok := true
	for i, p := range paths {
		s.setScript(i, ScriptRunning, nil)
		code, err := s.runHook(ctx, p, s.init.scripts[i].Name, env)
		if ctx.Err() != nil {
			return false
		}
		state := ScriptSuccessful
		if err != nil {
			state, ok = ScriptError, false
			s.init.mu.Lock()
			s.init.errors = append(s.init.errors, fmt.Sprintf("init hook ready.d/%s: %v", s.init.scripts[i].Name, err))
			s.init.mu.Unlock()
		}
		s.setScript(i, state, &code)
	}
	if !ok {
		s.init.setPhase(PhaseFailed)
	}
	return ok
}

func (s *Server) setScript(i int, state string, code *int) {
	s.init.mu.Lock()
	s.init.scripts[i].State, s.init.scripts[i].ExitCode = state, code
	s.init.mu.Unlock()
}

// hookFiles lists the executable regular files below dir, in run order.
// A missing directory has none.
func hookFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	var files, subdirs []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		info, err := os.Stat(p) // follows symbolic links, as mounted files often are
		switch {
		case err != nil:
			return nil, err
		case info.IsDir():
			subdirs = append(subdirs, p)
		case info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0:
			files = append(files, p)
		}
	}
	for _, d := range subdirs {
		more, err := hookFiles(d)
		if err != nil {
			return nil, err
		}
		files = append(files, more...)
	}
	return files, nil
}

// runHook runs one hook, its output going to the log line by line.
func (s *Server) runHook(ctx context.Context, path, name string, env []string) (int, error) {
	s.log.Info("init hook started", "script", name)
	cmd := exec.CommandContext(ctx, path)
	cmd.Dir = filepath.Dir(path)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.log.Info("init hook output", "script", name, "line", sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	code := cmd.ProcessState.ExitCode()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		s.log.Info("init hook succeeded", "script", name)
	case errors.As(err, &exitErr):
		err = fmt.Errorf("exited with status %d", code)
		s.log.Error("init hook failed", "script", name, "exit_code", code)
	default:
		s.log.Error("init hook failed", "script", name, "err", err)
	}
	return code, err
}

// InProcessConfig returns an aws.Config whose clients call this server's
// gateway in-process (no socket): the same routing, validation, handlers
// and persistence as any API request. Set Region and Credentials before
// use (the fixture applier does).
func (s *Server) InProcessConfig() aws.Config {
	return aws.Config{
		Region:       DefaultRegion,
		BaseEndpoint: aws.String("http://rdslocal.in-process"),
		HTTPClient:   &http.Client{Transport: inProcess{s}},
	}
}

// inProcess is an http.RoundTripper that serves requests with the
// server's router.
type inProcess struct{ s *Server }

type quietKey struct{}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(context.WithValue(req.Context(), quietKey{}, true))
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "in-process"
	w := &responseBuffer{header: http.Header{}}
	t.s.router.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", w.status, http.StatusText(w.status)), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: w.header,
		Body: io.NopCloser(strings.NewReader(w.body.String())), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// responseBuffer is the http.ResponseWriter of an in-process request.
type responseBuffer struct {
	header http.Header
	status int
	body   strings.Builder
}

func (w *responseBuffer) Header() http.Header { return w.header }
func (w *responseBuffer) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *responseBuffer) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// apiURLFor is the URL hooks reach a listener at (127.0.0.1 for a wildcard
// address).
func apiURLFor(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// serveInit answers LocalStack's init endpoints: GET /_localstack/init
// and /_localstack/init/ready (also under /_rdslocal/).
func (s *Server) serveInit(w http.ResponseWriter, r *http.Request) {
	st := s.initStatus()
	scripts := st.Scripts
	if scripts == nil {
		scripts = []Script{}
	}
	completed := st.State == PhaseReady || (st.State == PhaseFailed && len(st.Scripts) > 0)
	stage, ok := mux.Vars(r)["stage"]
	if !ok {
		writeJSON(w, http.StatusOK, map[string]any{"completed": map[string]bool{"READY": completed}, "scripts": scripts})
		return
	}
	if !strings.EqualFold(stage, "ready") {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such stage " + stage + ": rdslocal runs READY hooks only"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"completed": completed, "scripts": scripts})
}
