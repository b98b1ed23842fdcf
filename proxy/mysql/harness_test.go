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
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/engine"
	"github.com/rdslocal/rdslocal/engine/enginetest"
	"github.com/rdslocal/rdslocal/iamauth"
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
	srvCert tls.Certificate
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
	srvCert = *cert
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

// secret is one Auth entry of the test proxy with its secret.
type secret struct {
	auth     Auth
	user, pw string
}

// harness is a Protocol serving a listener, with a test-only pool (a
// capped set of server connections) standing in for the core.
type harness struct {
	t        testing.TB
	srv      *enginetest.Server
	p        *Protocol
	ln       net.Listener
	addr     string
	settings Settings
	tlsConf  *tls.Config
	pool     *testPool
	tokens   *iamauth.TokenValidator
	skew     atomic.Int64
	logs     *logSink

	mu      sync.Mutex
	secrets []secret

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	pins, setupOK, setupFailedAuth, setupFailed, queries, inTx atomic.Int64
}

type harnessOpts struct {
	maxConns      int           // pool cap (default 20)
	borrowTimeout time.Duration // default 10 s
	mod           func(*Settings)
	tls           bool // the proxy dials the server with TLS
	noTLS         bool // the endpoint offers no TLS
}

func newHarness(t testing.TB, srv *enginetest.Server, o harnessOpts) *harness {
	t.Helper()
	if o.maxConns == 0 {
		o.maxConns = 20
	}
	if o.borrowTimeout == 0 {
		o.borrowTimeout = 10 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, p: New(Config{}), ln: ln, addr: ln.Addr().String(), logs: &logSink{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.settings = Settings{ProxyID: "prx-0123456789abcdef0", IdleClientTimeout: 30 * time.Minute, Target: srv.Addr()}
	if o.mod != nil {
		o.mod(&h.settings)
	}
	if !o.noTLS {
		h.tlsConf = &tls.Config{Certificates: []tls.Certificate{srvCert}}
	}
	h.secrets = []secret{
		{auth: Auth{IAMAuth: IAMDisabled, ClientPasswordAuthType: AuthNative}, user: appUser, pw: appPW},
		{auth: Auth{IAMAuth: IAMDisabled, ClientPasswordAuthType: AuthCachingSHA2}, user: sha2User, pw: sha2PW},
		{auth: Auth{IAMAuth: IAMRequired}, user: iamUser, pw: iamPW},
	}
	h.tokens = &iamauth.TokenValidator{Creds: iamauth.StaticCredentials{}, Now: func() time.Time {
		return time.Now().Add(time.Duration(h.skew.Load()))
	}}
	host, port, _ := net.SplitHostPort(srv.Addr())
	pn, _ := strconv.Atoi(port)
	h.pool = &testPool{h: h, host: host, port: pn, cap: o.maxConns, timeout: o.borrowTimeout, tls: o.tls,
		idle: map[Key][]*Backend{}}
	h.pool.cond = sync.NewCond(&h.pool.mu)
	h.wg.Add(1)
	go h.accept()
	t.Cleanup(h.close)
	return h
}

func (h *harness) accept() {
	defer h.wg.Done()
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.p.Serve(&testClient{h: h, conn: c})
		}()
	}
}

func (h *harness) close() {
	if h.t.Failed() || testing.Verbose() {
		h.logs.mu.Lock()
		for _, l := range h.logs.lines {
			h.t.Log(strings.TrimSpace(l))
		}
		h.logs.mu.Unlock()
	}
	h.cancel()
	h.ln.Close()
	h.wg.Wait()
	h.pool.close()
}

func (h *harness) secret(user string) (secret, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.secrets {
		if s.user == user {
			return s, true
		}
	}
	return secret{}, false
}

// testClient is the core's side of one session.
type testClient struct {
	h    *harness
	conn net.Conn
}

func (c *testClient) Conn() net.Conn           { return c.conn }
func (c *testClient) Context() context.Context { return c.h.ctx }
func (c *testClient) Settings() Settings       { return c.h.settings }
func (c *testClient) TLSConfig() *tls.Config   { return c.h.tlsConf }
func (c *testClient) Credentials(user string) (Auth, string, bool) {
	s, ok := c.h.secret(user)
	return s.auth, s.pw, ok
}

func (c *testClient) CheckToken(token, user string) error {
	_, err := c.h.tokens.Validate(token, iamauth.TokenExpectation{Addresses: []string{c.h.addr}, Region: "us-east-1", User: user})
	return err
}

func (c *testClient) Borrow(key Key, prefer *Backend) (*Backend, error) {
	return c.h.pool.borrow(key, prefer)
}
func (c *testClient) Release(b *Backend, reusable bool) { c.h.pool.release(b, reusable) }
func (c *testClient) Pin(b *Backend, reason string) {
	c.h.pins.Add(1)
	c.Logger().Info(fmt.Sprintf("The client session was pinned to the database connection [dbConnection=%d] for the remainder of the session. The proxy can't reuse this connection until the session ends. Reason: %s", b.ID, reason))
}
func (c *testClient) SetupDone(bool) { c.h.setupOK.Add(1) }
func (c *testClient) SetupFailed(auth bool) {
	if auth {
		c.h.setupFailedAuth.Add(1)
	} else {
		c.h.setupFailed.Add(1)
	}
}
func (c *testClient) QueryDone(bool, time.Duration, time.Duration) { c.h.queries.Add(1) }
func (c *testClient) InTransaction(_ *Backend, in bool) {
	if in {
		c.h.inTx.Add(1)
	} else {
		c.h.inTx.Add(-1)
	}
}
func (c *testClient) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c.h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testPool is the test's stand-in for the core's pools: at most cap
// server connections in all, idle ones kept per key (LIFO), waiters
// woken on every release, ErrBorrowTimeout after the timeout.
type testPool struct {
	h       *harness
	host    string
	port    int
	cap     int
	timeout time.Duration
	tls     bool

	mu      sync.Mutex
	cond    *sync.Cond
	open    int
	maxOpen int
	idle    map[Key][]*Backend
	nextID  int64
	dials   int
	closed  bool
}

func (p *testPool) borrow(key Key, prefer *Backend) (*Backend, error) {
	deadline := time.Now().Add(p.timeout)
	timer := time.AfterFunc(p.timeout, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	for {
		if l := p.idle[key]; len(l) > 0 {
			i := len(l) - 1
			for j, b := range l {
				if b == prefer {
					i = j
				}
			}
			b := l[i]
			p.idle[key] = append(l[:i], l[i+1:]...)
			if !alive(b.nc) {
				// Lost while idle (the server restarted): the core
				// discards such connections with a non-blocking peek.
				p.open--
				go b.Close()
				continue
			}
			p.mu.Unlock()
			return b, nil
		}
		if p.open < p.cap {
			p.open++
			p.maxOpen = max(p.maxOpen, p.open)
			p.nextID++
			id := p.nextID
			p.dials++
			p.mu.Unlock()
			b, err := p.dial(key)
			if err != nil {
				p.mu.Lock()
				p.open--
				p.cond.Broadcast()
				p.mu.Unlock()
				return nil, err
			}
			b.ID = id
			return b, nil
		}
		if p.evictOther(key) {
			continue
		}
		if time.Now().After(deadline) {
			p.mu.Unlock()
			return nil, ErrBorrowTimeout
		}
		p.cond.Wait()
	}
}

func (p *testPool) dial(key Key) (*Backend, error) {
	s, ok := p.h.secret(key.User)
	if !ok {
		return nil, errors.New("no secret")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.h.p.Dial(ctx, DialRequest{Host: p.host, Port: p.port, Key: key, Password: s.pw, TLS: p.tls,
		InitQuery: p.h.settings.InitQuery, NeedMaxConnections: true})
}

// evictOther closes an idle connection of another key to make room.
func (p *testPool) evictOther(key Key) bool {
	for k, l := range p.idle {
		if k != key && len(l) > 0 {
			b := l[0]
			p.idle[k] = l[1:]
			p.open--
			go b.Close()
			return true
		}
	}
	return false
}

func (p *testPool) release(b *Backend, reusable bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if reusable && !p.closed {
		p.idle[b.key] = append(p.idle[b.key], b)
	} else {
		p.open--
		b.Close()
	}
	p.cond.Broadcast()
}

func (p *testPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.idle {
		n += len(l)
	}
	return n
}

func (p *testPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = map[Key][]*Backend{}
	p.mu.Unlock()
	for _, l := range idle {
		for _, b := range l {
			b.Close()
		}
	}
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

// alive reports whether an idle connection has nothing to read and no
// EOF (a one-byte MSG_PEEK|MSG_DONTWAIT answering EAGAIN).
func alive(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	tcp, ok := nc.(*net.TCPConn)
	if !ok {
		return true
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = err == syscall.EAGAIN
		return true
	})
	return idle
}
