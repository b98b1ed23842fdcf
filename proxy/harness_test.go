package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/iamauth"
	"go.uber.org/goleak"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// Test users on every test server.
const (
	adminPW = "adminpw"
	appUser = "app"
	appPW   = "app-secret-pw"
	md5User = "app_md5"
	md5PW   = "md5-secret-pw"
	iamUser = "app_iam"
	iamPW   = "iam-secret-pw"
)

var (
	testCA    *acmcert.CA
	template  string // initdb'd data directory to copy
	rootDir   string
	pgSkip    string
	sharedPG  *pgServer
	pgRunAs   *syscall.Credential
	pgUID     int
	pgGID     int
	serverSeq atomic.Int32
)

func TestMain(m *testing.M) {
	code := func() int {
		if err := setupTemplate(); err != nil {
			pgSkip = err.Error()
		} else {
			s, err := startPG(30)
			if err != nil {
				pgSkip = "start postgres: " + err.Error()
			} else {
				sharedPG = s
			}
		}
		code := m.Run()
		if sharedPG != nil {
			sharedPG.stop()
		}
		if rootDir != "" {
			os.RemoveAll(rootDir)
		}
		return code
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func setupTemplate() error {
	var err error
	testCA, err = acmcert.LoadOrCreateCA("")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(pgBin, "postgres")); err != nil {
		return errors.New("no PostgreSQL 15 binaries")
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return errors.New("running as root without a postgres user")
		}
		pgUID, _ = strconv.Atoi(u.Uid)
		pgGID, _ = strconv.Atoi(u.Gid)
		pgRunAs = &syscall.Credential{Uid: uint32(pgUID), Gid: uint32(pgGID)}
	} else {
		pgUID, pgGID = os.Getuid(), os.Getgid()
	}
	rootDir, err = os.MkdirTemp("", "rdslocal-proxy-test-")
	if err != nil {
		return err
	}
	os.Chmod(rootDir, 0o755)
	template = filepath.Join(rootDir, "template")
	pwfile := filepath.Join(rootDir, "pw")
	os.WriteFile(pwfile, []byte(adminPW+"\n"), 0o644)
	cmd := exec.Command(filepath.Join(pgBin, "initdb"), "-D", template, "-U", "postgres", "--pwfile="+pwfile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgRunAs}
	os.Chown(rootDir, pgUID, pgGID)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v: %s", err, out)
	}
	// TLS material for the server (sslmode=require from the proxy).
	cert, err := testCA.IssueServerCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	if err != nil {
		return err
	}
	var crt bytes.Buffer
	for _, der := range cert.Certificate {
		pem.Encode(&crt, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	for name, data := range map[string][]byte{"server.crt": crt.Bytes(), "server.key": keyPEM} {
		p := filepath.Join(template, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
		os.Chown(p, pgUID, pgGID)
	}
	return nil
}

// pgServer is a PostgreSQL server the tests own.
type pgServer struct {
	dir  string
	port int
	maxC int
	cmd  *exec.Cmd
	done chan struct{}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startPG(maxConns int) (*pgServer, error) {
	dir := filepath.Join(rootDir, "pg"+strconv.Itoa(int(serverSeq.Add(1))))
	if out, err := exec.Command("cp", "-a", template, dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cp: %v: %s", err, out)
	}
	s := &pgServer{dir: dir, port: freePort(), maxC: maxConns}
	if err := s.start(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := s.admin(ctx)
	if err != nil {
		s.stop()
		return nil, err
	}
	defer c.Close(ctx)
	for _, q := range []string{
		"CREATE ROLE " + appUser + " LOGIN PASSWORD '" + appPW + "'",
		"CREATE ROLE " + md5User + " LOGIN PASSWORD '" + md5PW + "'",
		"CREATE ROLE " + iamUser + " LOGIN PASSWORD '" + iamPW + "'",
		"GRANT ALL ON SCHEMA public TO public",
		"CREATE TABLE items (client int, n int, note text)",
		"GRANT ALL ON items TO public",
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			s.stop()
			return nil, fmt.Errorf("%s: %w", q, err)
		}
	}
	return s, nil
}

func (s *pgServer) start() error {
	cmd := exec.Command(filepath.Join(pgBin, "postgres"), "-D", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories=", "-c", "max_connections="+strconv.Itoa(s.maxC),
		"-c", "ssl=on", "-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "logging_collector=off",
		"-c", "log_min_messages=fatal")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pgRunAs, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	var logb bytes.Buffer
	cmd.Stderr = &logb
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited: %s", logb.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := s.admin(ctx)
		cancel()
		if err == nil {
			c.Close(context.Background())
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return errors.New("postgres did not come up")
}

func (s *pgServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

func (s *pgServer) admin(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres sslmode=disable", s.port, adminPW))
}

func requirePG(t testing.TB) *pgServer {
	t.Helper()
	if sharedPG == nil {
		t.Skip("no PostgreSQL for data-plane tests: " + pgSkip)
	}
	return sharedPG
}

// fakeSecrets is a SecretReader over a map (rotation = map write).
type fakeSecrets struct {
	mu sync.Mutex
	m  map[string]string
}

func (f *fakeSecrets) CurrentValue(_, _, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[id]
	if !ok {
		return "", errors.New("ResourceNotFoundException")
	}
	return v, nil
}

func (f *fakeSecrets) put(id, user, pw string) {
	f.mu.Lock()
	f.m[id] = fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw)
	f.mu.Unlock()
}

// logSink collects log lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return len(p), nil
}

func (l *logSink) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

// harness is one Manager with one proxy in front of a test server.
type harness struct {
	t       testing.TB
	pg      *pgServer
	m       *Manager
	spec    ProxySpec
	addr    string
	secrets *fakeSecrets
	logs    *logSink
	skew    atomic.Int64 // token validator clock offset
	caFile  string
}

func newHarness(t testing.TB, srv *pgServer, mod func(*ProxySpec)) *harness {
	t.Helper()
	return newHarnessLimits(t, srv, Limits{}, mod)
}

// newHarnessLimits is newHarness with the Manager's limits overridden.
func newHarnessLimits(t testing.TB, srv *pgServer, lim Limits, mod func(*ProxySpec)) *harness {
	t.Helper()
	h := &harness{t: t, pg: srv, secrets: &fakeSecrets{m: map[string]string{}}, logs: &logSink{}}
	h.secrets.put("arn:app", appUser, appPW)
	h.secrets.put("arn:md5", md5User, md5PW)
	h.secrets.put("arn:iam", iamUser, iamPW)
	certs, err := acmcert.NewEndpointCerts(testCA, acmcert.EndpointCertsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h.caFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(h.caFile, testCA.CertPEM(), 0o644)
	tv := &iamauth.TokenValidator{Creds: iamauth.StaticCredentials{}, Now: func() time.Time {
		return time.Now().Add(time.Duration(h.skew.Load()))
	}}
	h.m = NewManager(ManagerConfig{Secrets: h.secrets, Tokens: tv, Certs: certs,
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo})), Limits: lim})
	port := freePort()
	h.addr = fmt.Sprintf("127.0.0.1:%d", port)
	h.spec = ProxySpec{ID: "prx-0123456789abcdef0", Name: "test-proxy", Account: "000000000000", Region: "us-east-1",
		EngineFamily: EnginePostgreSQL, IdleClientTimeout: 30 * time.Minute,
		Auth: []AuthSpec{
			{UserName: appUser, SecretArn: "arn:app", IAMAuth: IAMDisabled},
			{UserName: md5User, SecretArn: "arn:md5", IAMAuth: IAMDisabled, ClientPasswordAuthType: AuthMD5},
			{UserName: iamUser, SecretArn: "arn:iam", IAMAuth: IAMRequired},
		},
		Pool:      PoolSpec{MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50, BorrowTimeout: 10 * time.Second},
		Targets:   []TargetSpec{{ID: "db-1", Host: "127.0.0.1", Port: srv.port, Role: RoleReadWrite}},
		Endpoints: []EndpointSpec{{Name: "default", Listen: h.addr}},
	}
	if mod != nil {
		mod(&h.spec)
	}
	if err := h.m.Apply([]ProxySpec{h.spec}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.m.Close() })
	return h
}

func (h *harness) dsn(user, pw, extra string) string {
	host, port, _ := net.SplitHostPort(h.addr)
	return fmt.Sprintf("host=%s port=%s user=%s password='%s' dbname=postgres sslmode=disable %s", host, port, user, pw, extra)
}

func (h *harness) connect(ctx context.Context, extra string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, h.dsn(appUser, appPW, extra))
}

func (h *harness) mustConnect(ctx context.Context, extra string) *pgx.Conn {
	h.t.Helper()
	c, err := h.connect(ctx, extra)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// target returns the harness target's state.
func (h *harness) target() *target {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return h.m.proxies[h.spec.ID].targets["db-1"]
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
