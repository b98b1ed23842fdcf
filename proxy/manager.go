package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// Manager runs the data plane of every proxy: listeners, client sessions
// (through the protocol of each proxy's engine family), pools and health
// probes.
//
// Concurrency: every method is safe for concurrent use. Apply and Close
// are serialised with each other. Status, TargetHealth and WriteMetrics
// take only a mutex that Apply holds while it changes the running state,
// never while it waits for the sessions of removed endpoints or proxies to
// end, so they answer promptly while an endpoint drains; they do no I/O.
// The Manager never calls back into its caller, so a caller may hold its
// own locks while calling Status or TargetHealth.
type Manager struct {
	cfg    ManagerConfig
	log    *slog.Logger
	protos map[string]Protocol // by engine family

	applyMu sync.Mutex // serialises Apply and Close

	mu      sync.Mutex // the running state: proxies and their endpoint and target maps
	proxies map[string]*proxyState
	closed  bool

	connSeq atomic.Int64 // dbConnection ids
}

// NewManager returns a Manager with no proxies. It panics if two
// protocols serve the same family.
func NewManager(cfg ManagerConfig) *Manager {
	cfg.Limits = cfg.Limits.withDefaults()
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{cfg: cfg, log: lg, protos: map[string]Protocol{}, proxies: map[string]*proxyState{}}
	for _, pr := range cfg.Protocols {
		if m.protos[pr.Family()] != nil {
			panic("proxy: two protocols for engine family " + pr.Family())
		}
		m.protos[pr.Family()] = pr
	}
	return m
}

// proxyState is one proxy's running state.
type proxyState struct {
	m     *Manager
	id    string
	proto Protocol
	cfg   atomic.Pointer[ProxySpec]
	rt    atomic.Pointer[routes]
	state local // the protocol's (Client.ProxyState)

	// under m.mu
	endpoints map[string]*endpoint
	listenErr map[string]error // endpoints that could not listen, retried every second
	targets   map[string]*target

	userMu  sync.Mutex
	userIdx map[string]int // login user → index in Auth (a cache; verified per login)

	stop    chan struct{}
	wake    chan struct{}
	probeWG sync.WaitGroup
}

func (p *proxyState) spec() *ProxySpec { return p.cfg.Load() }

// Apply reconciles the running proxies with specs, the desired state of
// every proxy: it opens listeners for new endpoints, closes removed
// endpoints (ending their sessions), makes changed settings apply to new
// sessions without disturbing existing ones, and re-points pools when the
// targets change (connections to a removed or moved target close as they
// come back). Specs of an engine family no protocol serves are ignored
// (Status then reports the proxy as not running). Errors (such as an
// address that cannot be bound) are joined; the rest of the specs are
// still applied.
//
// Apply returns once new listeners are open and the sessions of removed
// endpoints and proxies have ended. It holds the Manager's state mutex
// only while it changes the running state (listeners are opened under it;
// sessions are told to end under it and waited for after it), so Status,
// TargetHealth and WriteMetrics are not held up by a draining endpoint.
// Concurrent calls of Apply run one after the other.
func (m *Manager) Apply(specs []ProxySpec) error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("proxy: manager closed")
	}
	var errs []error
	var stopped []interface{ wait() }
	want := map[string]bool{}
	for i := range specs {
		sp := cloneSpec(specs[i])
		proto := m.protos[sp.EngineFamily]
		if proto == nil {
			continue
		}
		want[sp.ID] = true
		p := m.proxies[sp.ID]
		if p == nil {
			p = &proxyState{m: m, id: sp.ID, proto: proto, endpoints: map[string]*endpoint{}, listenErr: map[string]error{}, targets: map[string]*target{},
				userIdx: map[string]int{}, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
			m.proxies[sp.ID] = p
			p.cfg.Store(sp)
			p.probeWG.Add(1)
			go p.probeLoop()
		} else {
			p.cfg.Store(sp)
		}
		p.applyTargets(sp)
		eps, err := p.applyEndpoints(sp)
		errs = append(errs, err...)
		for _, ep := range eps {
			stopped = append(stopped, ep)
		}
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	for id, p := range m.proxies {
		if !want[id] {
			p.halt()
			delete(m.proxies, id)
			stopped = append(stopped, p)
		}
	}
	m.mu.Unlock()
	for _, s := range stopped {
		s.wait()
	}
	return errors.Join(errs...)
}

func cloneSpec(sp ProxySpec) *ProxySpec {
	c := sp
	c.Auth = slices.Clone(sp.Auth)
	c.Targets = slices.Clone(sp.Targets)
	c.Endpoints = slices.Clone(sp.Endpoints)
	c.Pool.SessionPinningFilters = slices.Clone(sp.Pool.SessionPinningFilters)
	return &c
}

// applyEndpoints reconciles the proxy's listeners with sp (under m.mu): an
// endpoint that left or changed address, names or role is stopped (and
// returned, for the caller to wait for once it has let go of m.mu), and
// new ones listen.
func (p *proxyState) applyEndpoints(sp *ProxySpec) (stopped []*endpoint, errs []error) {
	want := map[string]EndpointSpec{}
	for _, es := range sp.Endpoints {
		want[es.Name] = es
	}
	for name, ep := range p.endpoints {
		es, ok := want[name]
		if !ok || es.Listen != ep.spec.Listen || !slices.Equal(es.DNSNames, ep.spec.DNSNames) ||
			!slices.Equal(es.Advertised, ep.spec.Advertised) || es.TargetRole != ep.spec.TargetRole {
			ep.stop()
			delete(p.endpoints, name)
			stopped = append(stopped, ep)
		}
	}
	for name := range p.listenErr {
		if _, ok := want[name]; !ok {
			delete(p.listenErr, name)
		}
	}
	for _, es := range sp.Endpoints {
		if p.endpoints[es.Name] != nil {
			continue
		}
		if err := p.listenEndpoint(es); err != nil {
			errs = append(errs, fmt.Errorf("proxy %s endpoint %s: %w", sp.Name, es.Name, err))
		}
	}
	return stopped, errs
}

// listenEndpoint opens es's listener (under m.mu) and records the error
// when it cannot: Status reports it until a retry succeeds.
func (p *proxyState) listenEndpoint(es EndpointSpec) error {
	ep, err := p.listen(es)
	if err != nil {
		p.listenErr[es.Name] = err
		return err
	}
	delete(p.listenErr, es.Name)
	p.endpoints[es.Name] = ep
	return nil
}

// relisten retries the endpoints that could not listen (an address that
// another program held when the proxy was applied), so a proxy comes up
// once its address is free without another change to the state.
func (p *proxyState) relisten() {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	select {
	case <-p.stop:
		return
	default:
	}
	if len(p.listenErr) == 0 {
		return
	}
	for _, es := range p.spec().Endpoints {
		if p.endpoints[es.Name] == nil && p.listenErr[es.Name] != nil {
			if p.listenEndpoint(es) == nil {
				p.m.log.Info("proxy endpoint listening after a retry", "proxy", p.spec().Name, "endpoint", es.Name, "address", es.Listen)
			}
		}
	}
}

// halt stops a proxy (under m.mu): its listeners close and its sessions
// are told to end, its targets retire, its probes stop. wait waits for all
// of it.
func (p *proxyState) halt() {
	close(p.stop)
	for _, ep := range p.endpoints {
		ep.stop()
	}
	p.rt.Store(&routes{})
	for _, t := range p.targets {
		t.retire()
	}
}

func (p *proxyState) wait() {
	for _, ep := range p.endpoints {
		ep.wait()
	}
	p.probeWG.Wait()
}

// ErrNotRunning is what Status's error Is for a proxy the Manager does not
// run: unknown (not applied yet), or of an engine family no protocol serves.
var ErrNotRunning = errors.New("proxy: no running proxy")

// Status reports whether a proxy endpoint is listening: false with a nil
// error while it is being set up, false with the error when its address
// cannot be bound (retried every second), and ErrNotRunning if the proxy
// is not running. Like TargetHealth it does no I/O and never waits for
// Apply to drain sessions.
func (m *Manager) Status(proxyID, endpoint string) (listening bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.proxies[proxyID]
	if p == nil {
		return false, fmt.Errorf("%w: %s", ErrNotRunning, proxyID)
	}
	if p.endpoints[endpoint] != nil {
		return true, nil
	}
	return false, p.listenErr[endpoint]
}

// Close stops every proxy, closing listeners, sessions and database
// connections, and waits for all of their goroutines.
func (m *Manager) Close() error {
	m.applyMu.Lock()
	defer m.applyMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var stopped []*proxyState
	for id, p := range m.proxies {
		p.halt()
		delete(m.proxies, id)
		stopped = append(stopped, p)
	}
	m.mu.Unlock()
	for _, p := range stopped {
		p.wait()
	}
	return nil
}
