package acmcert

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults for [EndpointCertsConfig].
const (
	DefaultEndpointValidity = 365 * 24 * time.Hour
	DefaultRenewBefore      = 30 * 24 * time.Hour
)

// Endpoint names what one proxy endpoint's certificate must cover. Every
// endpoint certificate also covers localhost, 127.0.0.1 and ::1.
type Endpoint struct {
	// DNSNames are the endpoint's AWS-style name, such as
	// my-proxy.proxy-c0ffee.us-east-1.rds.amazonaws.com, and any wildcard
	// names such as *.proxy-c0ffee.us-east-1.rds.amazonaws.com.
	DNSNames []string
	// IPs are the addresses the endpoint listens on, such as its own
	// loopback address 127.0.10.3.
	IPs []net.IP
}

// canonical returns ep's full SAN set without duplicates and a string that
// identifies the set whatever its order. The caller's names come first, so the
// first DNS name given becomes the certificate's common name.
func (ep Endpoint) canonical() (names []string, ips []net.IP, key string) {
	for _, n := range append(slices.Clone(ep.DNSNames), "localhost") {
		if n = strings.ToLower(strings.TrimSuffix(n, ".")); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, ip := range append(slices.Clone(ep.IPs), net.IPv4(127, 0, 0, 1), net.IPv6loopback) {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		if (len(ip) == net.IPv4len || len(ip) == net.IPv6len) && !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}
	parts := slices.Clone(names)
	for _, ip := range ips {
		parts = append(parts, ip.String())
	}
	slices.Sort(parts)
	return names, ips, strings.Join(parts, ",")
}

// EndpointCertsConfig tunes an [EndpointCerts]. Zero fields take defaults.
type EndpointCertsConfig struct {
	// Validity is the lifetime of each certificate; default
	// DefaultEndpointValidity.
	Validity time.Duration
	// RenewBefore is how long before expiry a certificate is replaced;
	// default DefaultRenewBefore. It must be less than Validity.
	RenewBefore time.Duration
	// Now is the clock; default time.Now. Tests inject their own.
	Now func() time.Time
}

// EndpointCerts issues and caches the server certificates of proxy
// endpoints, one per distinct SAN set, and renews each when it nears expiry.
// It is safe for concurrent use.
type EndpointCerts struct {
	ca  *CA
	cfg EndpointCertsConfig

	mu    sync.Mutex
	certs map[string]*tls.Certificate // by Endpoint.canonical key
}

// NewEndpointCerts returns an empty cache whose certificates ca signs.
func NewEndpointCerts(ca *CA, cfg EndpointCertsConfig) (*EndpointCerts, error) {
	if cfg.Validity == 0 {
		cfg.Validity = DefaultEndpointValidity
	}
	if cfg.RenewBefore == 0 {
		cfg.RenewBefore = DefaultRenewBefore
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Validity < 0 || cfg.RenewBefore < 0 || cfg.RenewBefore >= cfg.Validity {
		return nil, errors.New("acmcert: endpoint certificates need 0 <= RenewBefore < Validity")
	}
	return &EndpointCerts{ca: ca, cfg: cfg, certs: make(map[string]*tls.Certificate)}, nil
}

// Certificate returns the certificate for ep, issuing it if the cache has
// none or the cached one has less than RenewBefore left.
func (ec *EndpointCerts) Certificate(ep Endpoint) (*tls.Certificate, error) {
	names, ips, key := ep.canonical()
	return ec.get(names, ips, key)
}

func (ec *EndpointCerts) get(names []string, ips []net.IP, key string) (*tls.Certificate, error) {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	now := ec.cfg.Now()
	if c := ec.certs[key]; c != nil && now.Before(c.Leaf.NotAfter.Add(-ec.cfg.RenewBefore)) {
		return c, nil
	}
	c, err := ec.ca.issueServerCert(names, ips, now, ec.cfg.Validity)
	if err != nil {
		return nil, err
	}
	ec.certs[key] = c
	return c, nil
}

// TLSConfig returns a server TLS configuration for a listener of ep. Its
// GetCertificate callback asks the cache on every handshake, so a renewed
// certificate is picked up without rebuilding the listener. The first
// certificate is issued now, so a failure shows here rather than in a
// handshake. Clients may use TLS 1.2 (what RDS Proxy documents) or 1.3.
func (ec *EndpointCerts) TLSConfig(ep Endpoint) (*tls.Config, error) {
	names, ips, key := ep.canonical()
	if _, err := ec.get(names, ips, key); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return ec.get(names, ips, key)
		},
	}, nil
}

// Forget drops the cached certificate for ep, for when its endpoint is
// deleted. Listeners still configured for ep get a fresh certificate on their
// next handshake.
func (ec *EndpointCerts) Forget(ep Endpoint) {
	_, _, key := ep.canonical()
	ec.mu.Lock()
	delete(ec.certs, key)
	ec.mu.Unlock()
}
