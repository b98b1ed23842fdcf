package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"time"
)

// endpoint is one listener of a proxy and the clients it accepted.
type endpoint struct {
	p       *proxyState
	spec    EndpointSpec
	role    string // TargetRole; READ_WRITE when empty
	ln      net.Listener
	tlsConf *tls.Config // nil: no TLS offered
	addrs   []string    // addresses IAM tokens may name

	mu      sync.Mutex
	clients map[*Client]struct{}
	closed  bool
	wg      sync.WaitGroup // the accept loop and every client
	metrics EndpointMetrics
}

// listen opens an endpoint's listener and starts accepting.
func (p *proxyState) listen(es EndpointSpec) (*endpoint, error) {
	ln, err := net.Listen("tcp", es.Listen)
	if err != nil {
		return nil, err
	}
	ep := &endpoint{p: p, spec: es, role: es.TargetRole, ln: ln, clients: map[*Client]struct{}{}}
	if ep.role == "" {
		ep.role = RoleReadWrite
	}
	ep.addrs = slices.Clone(es.Advertised)
	if len(ep.addrs) == 0 {
		ep.addrs = []string{ln.Addr().String()}
	}
	if p.m.cfg.Certs != nil {
		dnsNames := slices.Clone(es.DNSNames)
		var ips []net.IP
		for _, a := range append([]string{ln.Addr().String()}, ep.addrs...) {
			if h, _, err := net.SplitHostPort(a); err == nil {
				if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
					ips = append(ips, ip)
				} else if ip == nil && !slices.Contains(dnsNames, h) {
					dnsNames = append(dnsNames, h)
				}
			}
		}
		conf, err := p.m.cfg.Certs.TLSConfig(dnsNames, ips)
		if err != nil {
			ln.Close()
			return nil, err
		}
		conf = conf.Clone()
		// Classical key exchange only: the hybrid ML-KEM share Go prefers
		// costs about a third more CPU per login, and database clients
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

// acceptLoop starts a client goroutine for every accepted connection.
func (ep *endpoint) acceptLoop() {
	defer ep.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		nc, err := ep.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(backoff)
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		c := newClient(ep, nc)
		ep.mu.Lock()
		if ep.closed {
			ep.mu.Unlock()
			nc.Close()
			return
		}
		ep.clients[c] = struct{}{}
		ep.wg.Add(1)
		ep.mu.Unlock()
		go c.run()
	}
}

// stop closes the listener and tells every client to end; it does not
// wait for them (wait does).
func (ep *endpoint) stop() {
	ep.mu.Lock()
	ep.closed = true
	cs := make([]*Client, 0, len(ep.clients))
	for c := range ep.clients {
		cs = append(cs, c)
	}
	ep.mu.Unlock()
	ep.ln.Close()
	for _, c := range cs {
		c.kill()
	}
}

// wait waits for the accept loop and every client of a stopped endpoint
// to end (each session returns or closes its server connection first).
func (ep *endpoint) wait() { ep.wg.Wait() }

// forget removes an ended client.
func (ep *endpoint) forget(c *Client) {
	ep.mu.Lock()
	delete(ep.clients, c)
	ep.mu.Unlock()
	ep.wg.Done()
}
