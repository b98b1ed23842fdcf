package mysql

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/mysql/wire"
)

// Protocol is the MySQL wire protocol of the data plane: the value the
// server hands to the core for the MYSQL engine family. It owns what is
// private to MySQL and shared by sessions: the connection IDs it gives
// clients (KILL finds sessions by them), the greetings of the targets, the
// caching_sha2_password fast-auth cache and the RSA key of its full
// authentication. It is safe for concurrent use.
type Protocol struct {
	log *slog.Logger

	ids    atomic.Uint32 // connection IDs given to clients
	serial atomic.Uint64 // session serials (never reused)

	mu        sync.Mutex
	sessions  map[uint32]*session
	greetings map[string]wire.Greeting // by target host:port
	sha2      map[string][32]byte      // proxy and user → SHA256(SHA256(password)) after a full authentication

	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaPEM  []byte
	rsaErr  error
}

// Config configures a Protocol.
type Config struct {
	// Logger receives protocol-level lines; nil discards them.
	Logger *slog.Logger
	// RSAKey is the key caching_sha2_password's full authentication uses
	// without TLS; nil: one is generated at first use.
	RSAKey *rsa.PrivateKey
}

// New returns the MySQL protocol.
func New(cfg Config) *Protocol {
	p := &Protocol{log: cfg.Logger, sessions: map[uint32]*session{}, greetings: map[string]wire.Greeting{},
		sha2: map[string][32]byte{}}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RSAKey != nil {
		p.rsaOnce.Do(func() { p.setRSA(cfg.RSAKey) })
	}
	return p
}

// Family is the engine family the protocol serves.
func (p *Protocol) Family() string { return proxy.EngineMySQL }

// Dial opens and authenticates one server connection for a pool.
func (p *Protocol) Dial(ctx context.Context, req DialRequest) (proxy.ServerConn, error) {
	b, err := p.dial(ctx, req)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Probe logs in to a target and disconnects (health checks); it also
// refreshes the target's greeting.
func (p *Protocol) Probe(ctx context.Context, req DialRequest) error {
	addr := net.JoinHostPort(req.Host, strconv.Itoa(req.Port))
	if _, err := p.fetchGreeting(ctx, addr); err != nil {
		return err
	}
	if req.Key.Variant == "" {
		req.Key.Variant = probeVariant
	}
	b, err := p.dial(ctx, req)
	if err != nil {
		return err
	}
	// COM_QUIT, then wait for the server to hang up: the probe's slot of
	// the target's budget is free only once the server let it go.
	b.nc.SetDeadline(time.Now().Add(2 * time.Second))
	b.w.Write(wire.AppendCommand(nil, gm.COM_QUIT, nil))
	if b.w.Flush() == nil {
		io.Copy(io.Discard, b.nc)
	}
	b.nc.Close()
	return nil
}

// probeVariant is what health probes log in with (the core names no
// variant): utf8mb4_general_ci and the flags every driver sets.
var probeVariant = variant{caps: gm.CLIENT_MULTI_RESULTS | gm.CLIENT_DEPRECATE_EOF, charset: 45}.String()

// Serve runs one client connection: the connection phase here, then the
// command phase on a fresh goroutine (c.Continue), because TLS and the
// authentication grow this goroutine's stack and an idle session should
// keep a small one. Every server connection the session borrowed is
// released when it ends.
func (p *Protocol) Serve(c *proxy.Client) {
	s := p.newSession(c)
	p.register(s)
	stop := context.AfterFunc(c.Context(), s.kill)
	if err := s.handshake(); err != nil {
		c.Logger().Debug("mysql: client setup failed", "remote", s.raw.RemoteAddr().String(), "err", err)
		stop()
		s.finish()
		return
	}
	p.publish(s)
	s.idle()
	c.Continue(func() {
		s.loop()
		stop()
		s.finish()
	})
}

// greeting returns the cached greeting of the server at addr.
func (p *Protocol) greeting(addr string) (wire.Greeting, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.greetings[addr]
	return g, ok
}

// fetchGreeting connects to addr, reads its greeting, caches it and
// disconnects.
func (p *Protocol) fetchGreeting(ctx context.Context, addr string) (wire.Greeting, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return wire.Greeting{}, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	r := wire.NewReader(nc, 1024)
	r.Max = 64 << 10
	pkt, _, err := r.ReadPacket()
	if err != nil {
		return wire.Greeting{}, err
	}
	g, err := wire.ParseGreeting(pkt)
	if err != nil {
		return wire.Greeting{}, err
	}
	p.mu.Lock()
	if len(p.greetings) > 1024 {
		clear(p.greetings)
	}
	p.greetings[addr] = g
	p.mu.Unlock()
	return g, nil
}

// register gives s a connection ID no other live session has; KILL finds
// the session only once publish has run (after its login).
func (p *Protocol) register(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		id := p.ids.Add(1)
		if _, taken := p.sessions[id]; id != 0 && !taken {
			s.id = id
			p.sessions[id] = nil
			return
		}
	}
}

// publish makes a logged-in session reachable by KILL.
func (p *Protocol) publish(s *session) {
	p.mu.Lock()
	p.sessions[s.id] = s
	p.mu.Unlock()
}

func (p *Protocol) unregister(s *session) {
	p.mu.Lock()
	if cur, ok := p.sessions[s.id]; ok && (cur == s || cur == nil) {
		delete(p.sessions, s.id)
	}
	p.mu.Unlock()
}

func (p *Protocol) lookup(id uint32) *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions[id]
}

// sha2Key names a fast-auth cache entry.
func sha2Key(proxyID, user string) string { return proxyID + "\x00" + user }

// sha2Cached reports whether a full authentication with password was
// done for user since the proxy started (caching_sha2_password's cache).
func (p *Protocol) sha2Cached(proxyID, user, password string) bool {
	p.mu.Lock()
	h, ok := p.sha2[sha2Key(proxyID, user)]
	p.mu.Unlock()
	return ok && h == doubleSHA256(password)
}

func (p *Protocol) sha2Store(proxyID, user, password string) {
	p.mu.Lock()
	if len(p.sha2) > 4096 {
		clear(p.sha2)
	}
	p.sha2[sha2Key(proxyID, user)] = doubleSHA256(password)
	p.mu.Unlock()
}

func doubleSHA256(pw string) [32]byte {
	h := sha256.Sum256([]byte(pw))
	return sha256.Sum256(h[:])
}

// rsa returns the key of caching_sha2_password's full authentication and
// its public half in PEM.
func (p *Protocol) rsa() (*rsa.PrivateKey, []byte, error) {
	p.rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			p.rsaErr = err
			return
		}
		p.setRSA(k)
	})
	return p.rsaKey, p.rsaPEM, p.rsaErr
}

func (p *Protocol) setRSA(k *rsa.PrivateKey) {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		p.rsaErr = err
		return
	}
	p.rsaKey = k
	p.rsaPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
