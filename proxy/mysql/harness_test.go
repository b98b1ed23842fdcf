package mysql

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
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

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/engine"
	"github.com/rdslocal/rdslocal/engine/enginetest"
	"github.com/rdslocal/rdslocal/iamauth"
	"github.com/rdslocal/rdslocal/proxy"
	"go.uber.org/goleak"
)

// Users on the shared test server (mysql_native_password there; how
// clients authenticate to the proxy is the proxy's Auth setting).
const (
	appUser  = "app"
	appPW    = "app-secret-pw"
	sha2User = "app_sha2"
	sha2PW   = "sha2-secret-pw"
	iamUser  = "app_iam"
	iamPW    = "iam-secret-pw"
	testDB   = "appdb"
)

var (
	env     *enginetest.Env
	shared  *enginetest.Server
	skipWhy string
	testCA  *acmcert.CA
	caFile  string
)

func TestMain(m *testing.M) {
	flag.Parse()
	fuzzing := flag.Lookup("test.fuzz").Value.String() != "" || flag.Lookup("test.fuzzworker").Value.String() == "true"
	code := func() int {
		if fuzzing {
			skipWhy = "fuzzing"
		} else if err := setup(); err != nil {
			skipWhy = err.Error()
		}
		code := m.Run()
		if env != nil {
			env.Close()
		}
		if caFile != "" {
			os.RemoveAll(filepath.Dir(caFile))
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
	if testCA, err = acmcert.LoadOrCreateCA(""); err != nil {
		return err
	}
	cert, err := testCA.IssueServerCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "rdslocal-mysql-test-")
	if err != nil {
		return err
	}
	caFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, testCA.CertPEM(), 0o644); err != nil {
		return err
	}
	env, err = enginetest.New()
	if err != nil {
		return err
	}
	crt, key, err := certPEM(cert)
	if err != nil {
		return err
	}
	shared, err = env.MariaDB(enginetest.Options{MaxConnections: 60, CertPEM: crt, KeyPEM: key})
	if err != nil {
		if errors.Is(err, engine.ErrUnsupported) {
			return err
		}
		panic(err) // installed but broken: fail loudly
	}
	return seed(shared)
}

// seed creates the test users, database and tables.
func seed(srv *enginetest.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for u, pw := range map[string]string{appUser: appPW, sha2User: sha2PW, iamUser: iamPW} {
		if err := srv.CreateUser(ctx, u, pw); err != nil {
			return err
		}
	}
	return srv.Exec(ctx, "CREATE DATABASE "+testDB, "CREATE DATABASE otherdb",
		"CREATE TABLE "+testDB+".items (id INT AUTO_INCREMENT PRIMARY KEY, client INT, n INT, note VARCHAR(200)) ENGINE=InnoDB",
		"CREATE TABLE otherdb.t (a INT)")
}

func certPEM(c *tls.Certificate) (crt, key []byte, err error) {
	var b bytes.Buffer
	for _, der := range c.Certificate {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	k, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return b.Bytes(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}

func requireMariaDB(t testing.TB) *enginetest.Server {
	t.Helper()
	if shared == nil {
		t.Skip("no MariaDB for data-plane tests: " + skipWhy)
	}
	return shared
}

// serverMaxConns is the shared server's max_connections: the harness
// turns a pool cap into MaxConnectionsPercent of it.
const serverMaxConns = 60

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

// harness is one proxy.Manager with the MySQL protocol and one proxy in
// front of the shared MariaDB server.
type harness struct {
	t       testing.TB
	srv     *enginetest.Server
	p       *Protocol
	m       *proxy.Manager
	spec    proxy.ProxySpec
	addr    string
	secrets *fakeSecrets
	skew    atomic.Int64 // token validator clock offset
	logs    *logSink
}

type harnessOpts struct {
	maxConns      int           // pool cap (default 20)
	borrowTimeout time.Duration // default 10 s
	mod           func(*proxy.ProxySpec)
	noTLS         bool // the endpoint offers no TLS
	clientMaxAge  time.Duration
}

func newHarness(t testing.TB, srv *enginetest.Server, o harnessOpts) *harness {
	t.Helper()
	if o.maxConns == 0 {
		o.maxConns = 20
	}
	if o.borrowTimeout == 0 {
		o.borrowTimeout = 10 * time.Second
	}
	h := &harness{t: t, srv: srv, secrets: &fakeSecrets{m: map[string][2]string{}}, logs: &logSink{}}
	h.secrets.put("arn:app", appUser, appPW)
	h.secrets.put("arn:sha2", sha2User, sha2PW)
	h.secrets.put("arn:iam", iamUser, iamPW)
	tv := &iamauth.TokenValidator{Creds: iamauth.StaticCredentials{}, Now: func() time.Time {
		return time.Now().Add(time.Duration(h.skew.Load()))
	}}
	log := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.p = New(Config{Logger: log})
	cfg := proxy.ManagerConfig{Protocols: []proxy.Protocol{h.p}, Credentials: h.secrets, Tokens: testTokens{tv}, Logger: log,
		Limits: proxy.Limits{ClientMaxAge: o.clientMaxAge}}
	if !o.noTLS {
		certs, err := acmcert.NewEndpointCerts(testCA, acmcert.EndpointCertsConfig{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certs = testCerts{certs}
	}
	h.m = proxy.NewManager(cfg)
	h.addr = fmt.Sprintf("127.0.0.1:%d", freePort())
	host, port, _ := net.SplitHostPort(srv.Addr())
	pn, _ := strconv.Atoi(port)
	// The smallest percentage of max_connections that gives maxConns.
	pct := (o.maxConns*100 + serverMaxConns - 1) / serverMaxConns
	h.spec = proxy.ProxySpec{ID: "prx-0123456789abcdef0", Name: "test-proxy", Account: "000000000000", Region: "us-east-1",
		EngineFamily: proxy.EngineMySQL, IdleClientTimeout: 30 * time.Minute,
		Auth: []proxy.AuthSpec{
			{UserName: appUser, SecretArn: "arn:app", IAMAuth: IAMDisabled, ClientPasswordAuthType: AuthNative},
			{UserName: sha2User, SecretArn: "arn:sha2", IAMAuth: IAMDisabled, ClientPasswordAuthType: AuthCachingSHA2},
			{UserName: iamUser, SecretArn: "arn:iam", IAMAuth: IAMRequired},
		},
		Pool:      proxy.PoolSpec{MaxConnectionsPercent: pct, MaxIdleConnectionsPercent: pct, BorrowTimeout: o.borrowTimeout},
		Targets:   []proxy.TargetSpec{{ID: "db-1", Host: host, Port: pn, Role: proxy.RoleReadWrite}},
		Endpoints: []proxy.EndpointSpec{{Name: "default", Listen: h.addr}},
	}
	if o.mod != nil {
		o.mod(&h.spec)
	}
	if err := h.m.Apply([]proxy.ProxySpec{h.spec}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.close)
	return h
}

func (h *harness) close() {
	if h.t.Failed() || testing.Verbose() {
		h.logs.mu.Lock()
		for _, l := range h.logs.lines {
			h.t.Log(strings.TrimSpace(l))
		}
		h.logs.mu.Unlock()
	}
	h.m.Close()
}

// metric reads one of the proxy's metrics: of its target ("db-1") when
// the name starts with Database, else of its endpoint.
func (h *harness) metric(name string) int64 {
	h.t.Helper()
	var buf bytes.Buffer
	h.m.WriteMetrics(&buf)
	lb := `endpoint="default"`
	if strings.HasPrefix(name, "Database") || strings.HasPrefix(name, "MaxDatabase") {
		lb = `target="db-1"`
	}
	prefix := "rdslocal_" + name + `{proxy="` + h.spec.Name + `",` + lb + "} "
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

// dials counts the server connections the pool opened.
func (h *harness) dials() int64 { return h.metric("DatabaseConnectionsSetupSucceeded") }

// idleCount counts the pool's idle server connections.
func (h *harness) idleCount() int64 {
	return h.metric("DatabaseConnections") - h.metric("DatabaseConnectionsCurrentlyBorrowed")
}

// pins counts the sessions pinned (RDS's log line).
func (h *harness) pins() int64 {
	return int64(h.logs.count("The client session was pinned to the database connection"))
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

func iamToken(t testing.TB, addr, user string) string {
	tok, err := auth.BuildAuthToken(context.Background(), addr, "us-east-1", user,
		credentials.NewStaticCredentialsProvider("test", "test", ""))
	if err != nil {
		t.Fatal(err)
	}
	return tok
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
