package acmcert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// testEndpoint is shaped like a real proxy endpoint: its own loopback address,
// its AWS DNS name and the wildcard of the proxy's DNS zone.
var testEndpoint = Endpoint{
	DNSNames: []string{
		"my-proxy.proxy-c0ffee123456.us-east-1.rds.amazonaws.com",
		"*.proxy-c0ffee123456.us-east-1.rds.amazonaws.com",
	},
	IPs: []net.IP{net.ParseIP("127.0.10.3")},
}

// sanCases are the names a client may put in ServerName, and whether the
// endpoint certificate must match them.
var sanCases = []struct {
	serverName string
	ok         bool
}{
	{"127.0.10.3", true},
	{"127.0.0.1", true},
	{"::1", true},
	{"localhost", true},
	{"my-proxy.proxy-c0ffee123456.us-east-1.rds.amazonaws.com", true},
	{"MY-PROXY.proxy-c0ffee123456.us-east-1.rds.amazonaws.com", true},
	{"reader-ep.proxy-c0ffee123456.us-east-1.rds.amazonaws.com", true},
	{"a.b.proxy-c0ffee123456.us-east-1.rds.amazonaws.com", false},
	{"my-proxy.proxy-other.us-east-1.rds.amazonaws.com", false},
	{"127.0.10.4", false},
	{"example.com", false},
}

func TestEndpointTLSClientVerifiesEverySAN(t *testing.T) {
	ca := newTestCA(t)
	ec, err := NewEndpointCerts(ca, EndpointCertsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srvCfg, err := ec.TLSConfig(testEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				s := tls.Server(c, srvCfg)
				if s.Handshake() == nil {
					s.Write([]byte{'x'})
				}
			})
		}
	})

	// Trust nothing but the PEM a client would be handed.
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("CertPEM() does not parse")
	}
	for _, tt := range sanCases {
		t.Run(tt.serverName, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d := tls.Dialer{Config: &tls.Config{RootCAs: roots, ServerName: tt.serverName}}
			c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
			if !tt.ok {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded, want a verification error")
				}
				if !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("err %v, want a certificate error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			b := make([]byte, 1)
			if _, err := c.Read(b); err != nil || b[0] != 'x' {
				t.Fatalf("read %q, %v", b, err)
			}
			peers := c.(*tls.Conn).ConnectionState().PeerCertificates
			if len(peers) != 2 {
				t.Errorf("server sent %d certificates, want leaf and root", len(peers))
			}
			if cn := peers[0].Subject.CommonName; cn != testEndpoint.DNSNames[0] {
				t.Errorf("CN %q, want the endpoint's DNS name", cn)
			}
		})
	}
}

func TestEndpointOpenSSLVerify(t *testing.T) {
	bin := openssl(t)
	ca := newTestCA(t)
	ec, err := NewEndpointCerts(ca, EndpointCertsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ec.Certificate(testEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeTemp(t, "ca.pem", ca.CertPEM())
	leafFile := writeTemp(t, "leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}))
	for _, tt := range sanCases {
		if strings.ToLower(tt.serverName) != tt.serverName {
			continue // openssl compares names case-insensitively too; one form is enough
		}
		t.Run(tt.serverName, func(t *testing.T) {
			args := []string{"verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", caFile}
			if net.ParseIP(tt.serverName) != nil {
				args = append(args, "-verify_ip", tt.serverName)
			} else {
				args = append(args, "-verify_hostname", tt.serverName)
			}
			out, err := exec.Command(bin, append(args, leafFile)...).CombinedOutput()
			ok := err == nil && strings.Contains(string(out), leafFile+": OK")
			if ok != tt.ok {
				t.Fatalf("openssl verify ok=%v, want %v: %v\n%s", ok, tt.ok, err, out)
			}
		})
	}
}

// fakeClock is an adjustable clock for EndpointCertsConfig.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func TestEndpointRenewal(t *testing.T) {
	ca := newTestCA(t)
	start := time.Now()
	clock := &fakeClock{t: start}
	ec, err := NewEndpointCerts(ca, EndpointCertsConfig{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ec.TLSConfig(testEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	get := func() *tls.Certificate {
		t.Helper()
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := get()
	if got, want := first.Leaf.NotAfter, start.Add(DefaultEndpointValidity); !got.Equal(want.Truncate(time.Second)) {
		t.Fatalf("NotAfter %v, want %v", got, want)
	}
	renewAt := first.Leaf.NotAfter.Add(-DefaultRenewBefore)

	steps := []struct {
		name  string
		at    time.Time
		fresh bool // a new certificate is expected
	}{
		{"same day", start.Add(time.Hour), false},
		{"one minute before the threshold", renewAt.Add(-time.Minute), false},
		{"at the threshold", renewAt, true},
		{"just after renewal", renewAt.Add(time.Hour), false},
	}
	prev := first
	for _, s := range steps {
		clock.Set(s.at)
		got := get()
		if fresh := got != prev; fresh != s.fresh {
			t.Fatalf("%s: new certificate %v, want %v", s.name, fresh, s.fresh)
		}
		if s.fresh {
			if got.Leaf.SerialNumber.Cmp(prev.Leaf.SerialNumber) == 0 {
				t.Fatalf("%s: renewed certificate reuses serial", s.name)
			}
			if want := s.at.Add(DefaultEndpointValidity).Truncate(time.Second); !got.Leaf.NotAfter.Equal(want) {
				t.Fatalf("%s: NotAfter %v, want %v", s.name, got.Leaf.NotAfter, want)
			}
		}
		prev = got
	}
}

func TestEndpointCacheKey(t *testing.T) {
	ca := newTestCA(t)
	ec, err := NewEndpointCerts(ca, EndpointCertsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ec.Certificate(testEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	// The same SANs in another order, case and with the implicit ones spelled
	// out share the certificate.
	same := Endpoint{
		DNSNames: []string{"localhost", "*.PROXY-c0ffee123456.us-east-1.rds.amazonaws.com",
			"my-proxy.proxy-c0ffee123456.us-east-1.rds.amazonaws.com."},
		IPs: []net.IP{net.ParseIP("::1"), net.ParseIP("127.0.10.3").To16(), net.ParseIP("127.0.0.1")},
	}
	if b, _ := ec.Certificate(same); b != a {
		t.Error("equivalent endpoint got a different certificate")
	}
	other := Endpoint{IPs: []net.IP{net.ParseIP("127.0.10.4")}}
	if b, _ := ec.Certificate(other); b == a {
		t.Error("different endpoint got the same certificate")
	}
	ec.Forget(same)
	if b, _ := ec.Certificate(testEndpoint); b == a {
		t.Error("Forget did not drop the certificate")
	}
}

func TestNewEndpointCertsConfig(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name string
		cfg  EndpointCertsConfig
		ok   bool
	}{
		{"defaults", EndpointCertsConfig{}, true},
		{"short", EndpointCertsConfig{Validity: time.Hour, RenewBefore: time.Minute}, true},
		{"renew before longer than validity", EndpointCertsConfig{Validity: time.Hour, RenewBefore: 2 * time.Hour}, false},
		{"default renew exceeds validity", EndpointCertsConfig{Validity: 24 * time.Hour}, false},
		{"negative", EndpointCertsConfig{Validity: -time.Hour}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewEndpointCerts(ca, tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
