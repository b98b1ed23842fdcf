package postgres

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/engine"
	"github.com/rdslocal/rdslocal/engine/enginetest"
	"github.com/rdslocal/rdslocal/iamauth"
	"github.com/rdslocal/rdslocal/proxy"
	"go.uber.org/goleak"
)

// Test users on every test server.
const (
	appUser = "app"
	appPW   = "app-secret-pw"
	md5User = "app_md5"
	md5PW   = "md5-secret-pw"
	iamUser = "app_iam"
	iamPW   = "iam-secret-pw"
)

var (
	testCA   *acmcert.CA
	env      *enginetest.Env
	certPEM  []byte // the test servers' TLS certificate and key
	keyPEM   []byte
	pgSkip   string
	sharedPG *pgServer
)

func TestMain(m *testing.M) {
	code := func() int {
		if err := setup(); err != nil {
			pgSkip = err.Error()
		} else {
			s, err := startPG(30)
			if err != nil {
				if !errors.Is(err, engine.ErrUnsupported) {
					panic(err) // installed but broken: fail loudly
				}
				pgSkip = "start postgres: " + err.Error()
			} else {
				sharedPG = s
			}
		}
		code := m.Run()
		if env != nil {
			env.Close()
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

func setup() error {
	var err error
	testCA, err = acmcert.LoadOrCreateCA("")
	if err != nil {
		return err
	}
	// TLS material for the servers (sslmode=require from the proxy).
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
	certPEM, keyPEM = crt.Bytes(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	env, err = enginetest.New()
	return err
}

// pgServer is a PostgreSQL server the tests own (engine/enginetest), with
// the test roles and table.
type pgServer struct {
	*enginetest.Server
	port int
}

// startPG starts a server with maxConns connections, TLS, the test roles
// and the items table.
func startPG(maxConns int) (*pgServer, error) {
	srv, err := env.Postgres(enginetest.Options{MaxConnections: maxConns, CertPEM: certPEM, KeyPEM: keyPEM})
	if err != nil {
		return nil, err
	}
	s := &pgServer{Server: srv, port: srv.Port}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = srv.Exec(ctx,
		"CREATE ROLE "+appUser+" LOGIN PASSWORD '"+appPW+"'",
		"CREATE ROLE "+md5User+" LOGIN PASSWORD '"+md5PW+"'",
		"CREATE ROLE "+iamUser+" LOGIN PASSWORD '"+iamPW+"'",
		"GRANT ALL ON SCHEMA public TO public",
		"CREATE TABLE items (client int, n int, note text)",
		"GRANT ALL ON items TO public",
	)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	return s, nil
}

func (s *pgServer) start() error { return s.Start() }
func (s *pgServer) stop()        { s.Stop() }

// admin connects as the server's superuser.
func (s *pgServer) admin(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres sslmode=disable",
		s.Host, s.port, enginetest.AdminUser, s.AdminPassword))
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func requirePG(t testing.TB) *pgServer {
	t.Helper()
	if sharedPG == nil {
		t.Skip("no PostgreSQL for data-plane tests: " + pgSkip)
	}
	return sharedPG
}

// fakeSecrets is a proxy.CredentialSource over a map (rotation = map
// write).
type fakeSecrets struct {
	mu sync.Mutex
	m  map[string][2]string
}

func (f *fakeSecrets) Credentials(_, _, id string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[id]
	if !ok {
		return "", "", errors.New("ResourceNotFoundException")
	}
	return v[0], v[1], nil
}

func (f *fakeSecrets) put(id, user, pw string) {
	f.mu.Lock()
	f.m[id] = [2]string{user, pw}
	f.mu.Unlock()
}

// testTokens and testCerts adapt iamauth and acmcert as the server does.
type testTokens struct{ v *iamauth.TokenValidator }

func (c testTokens) CheckToken(token string, want proxy.TokenCheck) error {
	_, err := c.v.Validate(token, iamauth.TokenExpectation{Addresses: want.Addresses, Region: want.Region,
		User: want.User, Resource: want.Resource})
	return err
}

type testCerts struct{ c *acmcert.EndpointCerts }

func (c testCerts) TLSConfig(dnsNames []string, ips []net.IP) (*tls.Config, error) {
	return c.c.TLSConfig(acmcert.Endpoint{DNSNames: dnsNames, IPs: ips})
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

// harness is one Manager with the PostgreSQL protocol and one proxy in
// front of a test server.
type harness struct {
	t       testing.TB
	pg      *pgServer
	m       *proxy.Manager
	proto   *Protocol
	spec    proxy.ProxySpec
	addr    string
	secrets *fakeSecrets
	logs    *logSink
	skew    atomic.Int64 // token validator clock offset
	caFile  string
}

// Limits are the limits tests shorten: the core's and the protocol's.
type Limits struct {
	PreparedPerConnection, RegistryStatements           int
	IdleConnectionAfter, ConnectionMaxAge, ClientMaxAge time.Duration
}

func newHarness(t testing.TB, srv *pgServer, mod func(*proxy.ProxySpec)) *harness {
	t.Helper()
	return newHarnessLimits(t, srv, Limits{}, mod)
}

// newHarnessLimits is newHarness with the Manager's and the protocol's
// limits overridden.
func newHarnessLimits(t testing.TB, srv *pgServer, lim Limits, mod func(*proxy.ProxySpec)) *harness {
	t.Helper()
	h := &harness{t: t, pg: srv, secrets: &fakeSecrets{m: map[string][2]string{}}, logs: &logSink{}}
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
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	h.proto = New(Config{Logger: log, PreparedPerConnection: lim.PreparedPerConnection, RegistryStatements: lim.RegistryStatements})
	h.m = proxy.NewManager(proxy.ManagerConfig{Protocols: []proxy.Protocol{h.proto}, Credentials: h.secrets,
		Tokens: testTokens{tv}, Certs: testCerts{certs}, Logger: log,
		Limits: proxy.Limits{IdleConnectionAfter: lim.IdleConnectionAfter, ConnectionMaxAge: lim.ConnectionMaxAge, ClientMaxAge: lim.ClientMaxAge}})
	port := freePort()
	h.addr = fmt.Sprintf("127.0.0.1:%d", port)
	h.spec = proxy.ProxySpec{ID: "prx-0123456789abcdef0", Name: "test-proxy", Account: "000000000000", Region: "us-east-1",
		EngineFamily: proxy.EnginePostgreSQL, IdleClientTimeout: 30 * time.Minute,
		Auth: []proxy.AuthSpec{
			{UserName: appUser, SecretArn: "arn:app", IAMAuth: proxy.IAMDisabled},
			{UserName: md5User, SecretArn: "arn:md5", IAMAuth: proxy.IAMDisabled, ClientPasswordAuthType: proxy.AuthMD5},
			{UserName: iamUser, SecretArn: "arn:iam", IAMAuth: proxy.IAMRequired},
		},
		Pool:      proxy.PoolSpec{MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 50, BorrowTimeout: 10 * time.Second},
		Targets:   []proxy.TargetSpec{{ID: "db-1", Host: "127.0.0.1", Port: srv.port, Role: proxy.RoleReadWrite}},
		Endpoints: []proxy.EndpointSpec{{Name: "default", Listen: h.addr}},
	}
	if mod != nil {
		mod(&h.spec)
	}
	if err := h.m.Apply([]proxy.ProxySpec{h.spec}); err != nil {
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

// metric reads one of the harness target's metrics (WriteMetrics).
func (h *harness) metric(name string) int64 {
	h.t.Helper()
	var buf bytes.Buffer
	h.m.WriteMetrics(&buf)
	prefix := "rdslocal_" + name + `{proxy="` + h.spec.Name + `",target="db-1"} `
	for _, l := range strings.Split(buf.String(), "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				h.t.Fatal(err)
			}
			return n
		}
	}
	h.t.Fatalf("no metric %s in:\n%s", name, buf.String())
	return 0
}

// registry returns the proxy's statement registry, through a session of
// it (one must be connected).
func (h *harness) registry() *stmtRegistry {
	h.t.Helper()
	h.proto.keysMu.Lock()
	defer h.proto.keysMu.Unlock()
	for _, s := range h.proto.keys {
		return s.regs
	}
	h.t.Fatal("no session")
	return nil
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
