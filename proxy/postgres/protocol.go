package postgres

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"log/slog"
	"sync"

	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
	"github.com/xdg-go/scram"
)

// probeAppName is the application_name of health-probe connections.
const probeAppName = "rdslocal-proxy-health-check"

// Protocol is the PostgreSQL wire protocol of the data plane: the value the
// server hands to the core for the POSTGRESQL engine family. It keeps what
// sessions of every proxy share and is PostgreSQL's own: the cancel keys
// given to clients (a CancelRequest finds its session by them), the SCRAM
// credential cache, and the client writers of sessions in a request. Per
// proxy state (the prepared-statement registry) lives with the proxy
// (proxy.Client.ProxyState). It is safe for concurrent use.
type Protocol struct {
	cfg Config
	log *slog.Logger

	keysMu sync.Mutex
	keys   map[uint32]*session // client cancel keys

	scramMu  sync.Mutex
	scramKey []byte
	scramC   map[[32]byte]scram.StoredCredentials

	// writers are the buffered writers sessions use toward their clients
	// while a request is in progress; an idle session holds none.
	writers sync.Pool
}

// Config configures a Protocol; a zero field takes its default.
type Config struct {
	// Logger receives protocol-level lines; nil discards them. (Session
	// lines go to the core's logger.)
	Logger *slog.Logger
	// PreparedPerConnection caps the statements kept prepared on one
	// server connection; the least recently used are closed (200,
	// PgBouncer's max_prepared_statements).
	PreparedPerConnection int
	// RegistryStatements is how many distinct statements a proxy interns
	// before it starts afresh (10,000).
	RegistryStatements int
}

// New returns the PostgreSQL protocol.
func New(cfg Config) *Protocol {
	if cfg.PreparedPerConnection <= 0 {
		cfg.PreparedPerConnection = 200
	}
	if cfg.RegistryStatements <= 0 {
		cfg.RegistryStatements = 10000
	}
	key := make([]byte, 16)
	rand.Read(key)
	p := &Protocol{cfg: cfg, log: cfg.Logger, keys: map[uint32]*session{}, scramKey: key,
		scramC: map[[32]byte]scram.StoredCredentials{}}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p.writers.New = func() any { return bufio.NewWriterSize(nil, 16<<10) }
	return p
}

// Family is the engine family the protocol serves.
func (p *Protocol) Family() string { return proxy.EnginePostgreSQL }

// Serve runs one client connection: the startup phase here, then the
// command phase on a fresh goroutine (c.Continue), because TLS and SCRAM
// grow this goroutine's stack and an idle session should keep a small one.
func (p *Protocol) Serve(c *proxy.Client) {
	s := newSession(p, c)
	if err := s.handshake(); err != nil {
		c.Logger().Debug("proxy: client setup failed", "remote", c.Conn().RemoteAddr().String(), "err", err)
		s.finish()
		return
	}
	s.releaseBuffers()
	c.Continue(func() {
		s.loop()
		s.finish()
	})
}

// Dial opens and authenticates one server connection for a pool.
func (p *Protocol) Dial(ctx context.Context, req proxy.DialRequest) (proxy.ServerConn, error) {
	return p.dial(ctx, req)
}

// Probe logs in to the target's postgres database and disconnects.
func (p *Protocol) Probe(ctx context.Context, req proxy.DialRequest) error {
	db := req.Key.Database
	if db == "" {
		db = "postgres"
	}
	cfg := wire.DialConfig{Host: req.Host, Port: req.Port, User: req.Key.User, Password: req.Password, Database: db,
		Params: map[string]string{"application_name": probeAppName}}
	if req.TLS {
		cfg.TLS = &tls.Config{InsecureSkipVerify: true}
	}
	sc, err := wire.Dial(ctx, cfg)
	if err != nil {
		return dialError(err)
	}
	sc.Conn.Write(wire.AppendEmpty(nil, wire.MsgTerminate))
	sc.Conn.Close()
	return nil
}

// scramCreds returns SCRAM stored credentials for password, derived once
// per distinct password (keyed by a keyed hash, never the password itself).
func (p *Protocol) scramCreds(password string) (scram.StoredCredentials, error) {
	h := sha256.New()
	h.Write(p.scramKey)
	h.Write([]byte(password))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	p.scramMu.Lock()
	c, ok := p.scramC[k]
	p.scramMu.Unlock()
	if ok {
		return c, nil
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	c, err := wire.SCRAMCredentials(password, salt)
	if err != nil {
		return c, err
	}
	p.scramMu.Lock()
	if len(p.scramC) > 4096 {
		clear(p.scramC)
	}
	p.scramC[k] = c
	p.scramMu.Unlock()
	return c, nil
}

// registerKey allocates a client-facing cancel key for s.
func (p *Protocol) registerKey(s *session) {
	p.keysMu.Lock()
	defer p.keysMu.Unlock()
	for {
		var b [8]byte
		rand.Read(b[:])
		pid := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		pid &= 0x7fffffff
		if pid == 0 || p.keys[pid] != nil {
			continue
		}
		s.pid = pid
		copy(s.secret[:], b[4:])
		p.keys[pid] = s
		return
	}
}

func (p *Protocol) unregisterKey(s *session) {
	p.keysMu.Lock()
	if p.keys[s.pid] == s {
		delete(p.keys, s.pid)
	}
	p.keysMu.Unlock()
}

func (p *Protocol) lookupKey(pid uint32, secret []byte) *session {
	p.keysMu.Lock()
	s := p.keys[pid]
	p.keysMu.Unlock()
	if s == nil || len(secret) != 4 || string(secret) != string(s.secret[:]) {
		return nil
	}
	return s
}
