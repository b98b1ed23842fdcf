package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/proxy/pg"
	"github.com/rdslocal/rdslocal/secrets"
	"github.com/xdg-go/scram"
)

// probeAppName is the application_name of health-probe connections.
const probeAppName = "rdslocal-proxy-health-check"

// healthInterval is how often each target is probed.
const healthInterval = 15 * time.Second

// Manager runs the data plane of every proxy: listeners, client sessions,
// pools and health probes. Its methods are safe for concurrent use.
type Manager struct {
	cfg ManagerConfig
	log *slog.Logger

	mu      sync.Mutex
	proxies map[string]*proxyState
	closed  bool

	connSeq atomic.Int64 // dbConnection ids

	keysMu   sync.Mutex
	keys     map[uint32]*session // client cancel keys
	scramMu  sync.Mutex
	scramKey []byte
	scramC   map[[32]byte]scram.StoredCredentials
}

// NewManager returns a Manager with no proxies.
func NewManager(cfg ManagerConfig) *Manager {
	cfg.Limits = cfg.Limits.withDefaults()
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	key := make([]byte, 16)
	rand.Read(key)
	return &Manager{cfg: cfg, log: lg, proxies: map[string]*proxyState{}, keys: map[uint32]*session{},
		scramKey: key, scramC: map[[32]byte]scram.StoredCredentials{}}
}

// proxyState is one proxy's running state.
type proxyState struct {
	m    *Manager
	id   string
	cfg  atomic.Pointer[ProxySpec]
	rt   atomic.Pointer[routes]
	regs stmtRegistry

	// under m.mu
	endpoints map[string]*endpoint
	targets   map[string]*target

	userMu  sync.Mutex
	userIdx map[string]int // login user → index in Auth (a cache; verified per login)

	stop    chan struct{}
	wake    chan struct{}
	probeWG sync.WaitGroup
}

func (p *proxyState) spec() *ProxySpec { return p.cfg.Load() }

// routes maps a target role to the targets serving it.
type routes struct {
	byRole map[string][]*target
	rr     atomic.Uint32
}

// route returns the target for role: the writer for READ_WRITE, a reader
// (round robin, else the writer) for READ_ONLY.
func (p *proxyState) route(role string) *target {
	rt := p.rt.Load()
	if rt == nil {
		return nil
	}
	ts := rt.byRole[role]
	if len(ts) == 0 && role == RoleReadOnly {
		ts = rt.byRole[RoleReadWrite]
	}
	switch len(ts) {
	case 0:
		return nil
	case 1:
		return ts[0]
	}
	return ts[int(rt.rr.Add(1))%len(ts)]
}

// endpoint is one listener.
type endpoint struct {
	p       *proxyState
	spec    EndpointSpec
	ln      net.Listener
	tlsConf *tls.Config
	addrs   []string // addresses IAM tokens may name

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
	wg       sync.WaitGroup
	metrics  endpointMetrics
}

// Apply reconciles the running proxies with specs: it opens listeners for
// new endpoints, closes removed endpoints (ending their sessions), makes
// changed settings apply to new sessions without disturbing existing ones,
// and re-points pools when the targets change (connections to a removed or
// moved target close as they come back). Specs of engine families other than
// POSTGRESQL are ignored. Errors (such as an address that cannot be bound)
// are joined; the rest of the specs are still applied.
func (m *Manager) Apply(specs []ProxySpec) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("proxy: manager closed")
	}
	var errs []error
	want := map[string]bool{}
	for i := range specs {
		sp := specs[i]
		if sp.EngineFamily != EnginePostgreSQL {
			continue
		}
		want[sp.ID] = true
		p := m.proxies[sp.ID]
		if p == nil {
			p = &proxyState{m: m, id: sp.ID, endpoints: map[string]*endpoint{}, targets: map[string]*target{},
				userIdx: map[string]int{}, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
			p.regs.m = map[string]*stmt{}
			m.proxies[sp.ID] = p
			p.cfg.Store(cloneSpec(sp))
			p.probeWG.Add(1)
			go p.probeLoop()
		} else {
			p.cfg.Store(cloneSpec(sp))
		}
		errs = append(errs, p.apply(sp)...)
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	for id, p := range m.proxies {
		if !want[id] {
			p.close()
			delete(m.proxies, id)
		}
	}
	return errors.Join(errs...)
}

func cloneSpec(sp ProxySpec) *ProxySpec {
	c := sp
	c.Auth = slices.Clone(sp.Auth)
	c.Targets = slices.Clone(sp.Targets)
	c.Endpoints = slices.Clone(sp.Endpoints)
	return &c
}

// apply reconciles one proxy (m.mu held).
func (p *proxyState) apply(sp ProxySpec) []error {
	var errs []error
	// Targets.
	wantT := map[string]TargetSpec{}
	for _, ts := range sp.Targets {
		wantT[ts.ID] = ts
	}
	for id, t := range p.targets {
		ts, ok := wantT[id]
		if !ok || ts.Host != t.spec.Host || ts.Port != t.spec.Port {
			t.retire()
			delete(p.targets, id)
		}
	}
	rt := &routes{byRole: map[string][]*target{}}
	for _, ts := range sp.Targets {
		t := p.targets[ts.ID]
		if t == nil {
			t = newTarget(p, ts)
			p.targets[ts.ID] = t
		}
		t.spec.Role = ts.Role
		t.mu.Lock()
		t.configure(sp.Pool)
		t.grantSlotsLocked()
		t.mu.Unlock()
		role := ts.Role
		if role == "" {
			role = RoleReadWrite
		}
		rt.byRole[role] = append(rt.byRole[role], t)
	}
	p.rt.Store(rt)
	// Endpoints.
	wantE := map[string]EndpointSpec{}
	for _, es := range sp.Endpoints {
		wantE[es.Name] = es
	}
	for name, ep := range p.endpoints {
		es, ok := wantE[name]
		if !ok || es.Listen != ep.spec.Listen || !slices.Equal(es.DNSNames, ep.spec.DNSNames) ||
			!slices.Equal(es.Advertised, ep.spec.Advertised) || es.TargetRole != ep.spec.TargetRole {
			ep.close()
			delete(p.endpoints, name)
		}
	}
	for _, es := range sp.Endpoints {
		if p.endpoints[es.Name] != nil {
			continue
		}
		ep, err := p.listen(es)
		if err != nil {
			errs = append(errs, fmt.Errorf("proxy %s endpoint %s: %w", sp.Name, es.Name, err))
			continue
		}
		p.endpoints[es.Name] = ep
	}
	return errs
}

// listen opens an endpoint's listener and starts accepting.
func (p *proxyState) listen(es EndpointSpec) (*endpoint, error) {
	ln, err := net.Listen("tcp", es.Listen)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{p: p, spec: es, ln: ln, sessions: map[*session]struct{}{}}
	ep.addrs = slices.Clone(es.Advertised)
	if len(ep.addrs) == 0 {
		ep.addrs = []string{ln.Addr().String()}
	}
	if p.m.cfg.Certs != nil {
		ac := acmcert.Endpoint{DNSNames: es.DNSNames}
		for _, a := range append([]string{ln.Addr().String()}, ep.addrs...) {
			if h, _, err := net.SplitHostPort(a); err == nil {
				if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
					ac.IPs = append(ac.IPs, ip)
				} else if ip == nil && !slices.Contains(ac.DNSNames, h) {
					ac.DNSNames = append(ac.DNSNames, h)
				}
			}
		}
		conf, err := p.m.cfg.Certs.TLSConfig(ac)
		if err != nil {
			ln.Close()
			return nil, err
		}
		// Classical key exchange only: the hybrid ML-KEM share Go prefers
		// costs about a third more CPU per login, and PostgreSQL clients
		// (libpq with OpenSSL 3.0, pgx) do not resume sessions, so tickets
		// would be computed for nothing.
		conf.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}
		conf.SessionTicketsDisabled = true
		ep.tlsConf = conf
	}
	ep.wg.Add(1)
	go ep.acceptLoop()
	return ep, nil
}

func (ep *endpoint) acceptLoop() {
	defer ep.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := ep.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(backoff)
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s := newSession(ep, c)
		ep.mu.Lock()
		if ep.closed {
			ep.mu.Unlock()
			c.Close()
			return
		}
		ep.sessions[s] = struct{}{}
		ep.wg.Add(1)
		ep.mu.Unlock()
		go s.serve(func() {
			ep.mu.Lock()
			delete(ep.sessions, s)
			ep.mu.Unlock()
			ep.wg.Done()
		})
	}
}

// close stops the listener, ends its sessions and waits for them.
func (ep *endpoint) close() {
	ep.mu.Lock()
	ep.closed = true
	ss := make([]*session, 0, len(ep.sessions))
	for s := range ep.sessions {
		ss = append(ss, s)
	}
	ep.mu.Unlock()
	ep.ln.Close()
	for _, s := range ss {
		s.kill()
	}
	ep.wg.Wait()
}

// close stops a proxy entirely (m.mu held).
func (p *proxyState) close() {
	close(p.stop)
	for _, ep := range p.endpoints {
		ep.close()
	}
	for _, t := range p.targets {
		t.retire()
	}
	p.probeWG.Wait()
}

// Status reports whether every endpoint of the proxy is listening.
func (m *Manager) Status(proxyID string) (listening bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.proxies[proxyID]
	if p == nil {
		return false, fmt.Errorf("proxy: no running proxy %s", proxyID)
	}
	sp := p.spec()
	for _, es := range sp.Endpoints {
		if p.endpoints[es.Name] == nil {
			return false, nil
		}
	}
	return len(sp.Endpoints) > 0, nil
}

// targetHealth is the last health outcome of a target.
type targetHealth struct{ State, Reason, Description string }

func (t *target) setHealth(state, reason, desc string) {
	cur := t.health.Load()
	if cur != nil && cur.State == state && cur.Reason == reason && cur.Description == desc {
		return
	}
	t.health.Store(&targetHealth{state, reason, desc})
}

// TargetHealth returns a target's state as DescribeDBProxyTargets reports
// it: REGISTERING before the first probe, then AVAILABLE, or UNAVAILABLE
// with reason CONNECTION_FAILED, AUTH_FAILURE or UNREACHABLE, from the last
// connection attempt (a probe every 15 s or a pool dial).
func (m *Manager) TargetHealth(proxyID, targetID string) (state, reason, description string) {
	m.mu.Lock()
	p := m.proxies[proxyID]
	var t *target
	if p != nil {
		t = p.targets[targetID]
	}
	m.mu.Unlock()
	if t == nil {
		return "UNAVAILABLE", "UNREACHABLE", "The target is not registered with a running proxy."
	}
	h := t.health.Load()
	return h.State, h.Reason, h.Description
}

// Close stops every proxy, closing listeners, sessions and database
// connections, and waits for all of their goroutines.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for id, p := range m.proxies {
		p.close()
		delete(m.proxies, id)
	}
	return nil
}

// probeLoop checks every target's health now and every healthInterval,
// and closes idle connections past their time (target.reap).
func (p *proxyState) probeLoop() {
	defer p.probeWG.Done()
	lim := p.m.cfg.Limits
	probeT := time.NewTimer(0)
	defer probeT.Stop()
	reapEvery := max(time.Millisecond, min(time.Minute, lim.IdleConnectionAfter/2, lim.ConnectionMaxAge/2))
	reapT := time.NewTicker(reapEvery)
	defer reapT.Stop()
	each := func(f func(*target)) {
		if rt := p.rt.Load(); rt != nil {
			for _, ts := range rt.byRole {
				for _, t := range ts {
					f(t)
				}
			}
		}
	}
	for {
		select {
		case <-p.stop:
			return
		case <-reapT.C:
			each(func(t *target) { t.reap(lim) })
			continue
		case <-probeT.C:
		case <-p.wake:
		}
		each(p.probe)
		probeT.Reset(healthInterval)
	}
}

// probe opens and closes one connection to t with the first usable secret.
// The probe takes a slot of the target's budget, so it never exceeds
// MaxConnectionsPercent; when the pool is full it is skipped (the pool's own
// dials and borrows report health then).
func (p *proxyState) probe(t *target) {
	t.mu.Lock()
	if t.retired || t.open >= t.capacity() {
		t.mu.Unlock()
		return
	}
	t.open++
	t.mu.Unlock()
	defer t.freeSlot()
	sp := p.spec()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var lastErr string
	for _, a := range sp.Auth {
		v, err := p.m.cfg.Secrets.CurrentValue(sp.Account, sp.Region, a.SecretArn)
		if err != nil {
			lastErr = err.Error()
			continue
		}
		user, pw, err := secrets.ParseCredentials(v)
		if err != nil {
			lastErr = err.Error()
			continue
		}
		cfg := pg.DialConfig{Host: t.spec.Host, Port: t.spec.Port, User: user, Password: pw, Database: "postgres",
			Params: map[string]string{"application_name": probeAppName}}
		if sp.RequireTLS {
			cfg.TLS = &tls.Config{InsecureSkipVerify: true}
		}
		sc, err := pg.Dial(ctx, cfg)
		if err != nil {
			if strings.Contains(err.Error(), "28P01") || strings.Contains(err.Error(), "28000") {
				t.setHealth("UNAVAILABLE", "AUTH_FAILURE", err.Error())
			} else {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.setHealth("UNAVAILABLE", "UNREACHABLE", err.Error())
				} else {
					t.setHealth("UNAVAILABLE", "CONNECTION_FAILED", err.Error())
				}
			}
			return
		}
		sc.Conn.Write(pg.AppendEmpty(nil, pg.MsgTerminate))
		sc.Conn.Close()
		t.setHealth("AVAILABLE", "", "")
		return
	}
	if lastErr != "" {
		t.setHealth("UNAVAILABLE", "AUTH_FAILURE", lastErr)
	}
}

// scramCreds returns SCRAM stored credentials for password, derived once
// per distinct password (keyed by a keyed hash, never the password itself).
func (m *Manager) scramCreds(password string) (scram.StoredCredentials, error) {
	h := sha256.New()
	h.Write(m.scramKey)
	h.Write([]byte(password))
	var k [32]byte
	copy(k[:], h.Sum(nil))
	m.scramMu.Lock()
	c, ok := m.scramC[k]
	m.scramMu.Unlock()
	if ok {
		return c, nil
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	c, err := pg.SCRAMCredentials(password, salt)
	if err != nil {
		return c, err
	}
	m.scramMu.Lock()
	if len(m.scramC) > 4096 {
		clear(m.scramC)
	}
	m.scramC[k] = c
	m.scramMu.Unlock()
	return c, nil
}

// registerKey allocates a client-facing cancel key for s.
func (m *Manager) registerKey(s *session) {
	m.keysMu.Lock()
	defer m.keysMu.Unlock()
	for {
		var b [8]byte
		rand.Read(b[:])
		pid := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		pid &= 0x7fffffff
		if pid == 0 || m.keys[pid] != nil {
			continue
		}
		s.pid = pid
		copy(s.secret[:], b[4:])
		m.keys[pid] = s
		return
	}
}

func (m *Manager) unregisterKey(s *session) {
	m.keysMu.Lock()
	if m.keys[s.pid] == s {
		delete(m.keys, s.pid)
	}
	m.keysMu.Unlock()
}

func (m *Manager) lookupKey(pid uint32, secret []byte) *session {
	m.keysMu.Lock()
	s := m.keys[pid]
	m.keysMu.Unlock()
	if s == nil || len(secret) != 4 || string(secret) != string(s.secret[:]) {
		return nil
	}
	return s
}
