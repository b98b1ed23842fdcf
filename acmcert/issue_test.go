package acmcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueServerCert(t *testing.T) {
	ca := newTestCA(t)
	names := []string{"db.example.test"}
	ips := []net.IP{net.ParseIP("127.0.10.9")}
	c, err := ca.IssueServerCert(names, ips, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 2 || !bytes.Equal(c.Certificate[1], ca.Certificate().Raw) {
		t.Error("chain is not leaf then root")
	}
	leaf := c.Leaf
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
		t.Errorf("ExtKeyUsage %v IsCA %v", leaf.ExtKeyUsage, leaf.IsCA)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < time.Hour || life > time.Hour+backdate+time.Second {
		t.Errorf("lifetime %v", life)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.CertPool(), DNSName: "127.0.10.9"}); err != nil {
		t.Error(err)
	}
	if c.Leaf.Subject.CommonName != names[0] {
		t.Errorf("CN %q", c.Leaf.Subject.CommonName)
	}

	bad := []struct {
		name     string
		names    []string
		ips      []net.IP
		validity time.Duration
	}{
		{"no SANs", nil, nil, time.Hour},
		{"zero validity", names, nil, 0},
	}
	for _, tt := range bad {
		if _, err := ca.IssueServerCert(tt.names, tt.ips, tt.validity); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func TestIssueForDomains(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		alg     string
		rsaBits int            // 0 for EC
		curve   elliptic.Curve // nil for RSA
	}{
		{"", 2048, nil},
		{KeyAlgorithmRSA1024, 1024, nil},
		{KeyAlgorithmRSA2048, 2048, nil},
		{KeyAlgorithmRSA3072, 3072, nil},
		{KeyAlgorithmRSA4096, 4096, nil},
		{KeyAlgorithmECPrime256v1, 0, elliptic.P256()},
		{KeyAlgorithmECSecp384r1, 0, elliptic.P384()},
		{KeyAlgorithmECSecp521r1, 0, elliptic.P521()},
	}
	for _, tt := range tests {
		t.Run("alg="+tt.alg, func(t *testing.T) {
			t.Parallel()
			domain := "app.example.com"
			sans := []string{"*.example.com", "app.example.com", "", "api.example.com"}
			certPEM, chainPEM, keyPEM, err := ca.IssueForDomains(domain, sans, tt.alg)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(chainPEM, ca.CertPEM()) {
				t.Error("chain is not the root")
			}
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("certificate and key do not pair: %v", err)
			}
			leaf := pair.Leaf
			switch pub := leaf.PublicKey.(type) {
			case *rsa.PublicKey:
				if pub.N.BitLen() != tt.rsaBits {
					t.Errorf("RSA %d bits, want %d", pub.N.BitLen(), tt.rsaBits)
				}
				if leaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
					t.Error("RSA leaf lacks keyEncipherment")
				}
			case *ecdsa.PublicKey:
				if pub.Curve != tt.curve {
					t.Errorf("curve %v, want %v", pub.Curve.Params().Name, tt.curve)
				}
			}
			if want := []string{domain, "*.example.com", "api.example.com"}; !slices.Equal(leaf.DNSNames, want) {
				t.Errorf("DNSNames %v, want %v", leaf.DNSNames, want)
			}
			if leaf.Subject.CommonName != domain {
				t.Errorf("CN %q", leaf.Subject.CommonName)
			}
			if life := leaf.NotAfter.Sub(leaf.NotBefore); life < ACMValidity {
				t.Errorf("lifetime %v", life)
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(chainPEM)
			for _, name := range []string{domain, "www.example.com", "api.example.com"} {
				_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name,
					KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
				if err != nil {
					t.Errorf("verify %s: %v", name, err)
				}
			}
			if block, _ := pem.Decode(keyPEM); block == nil || block.Type != "PRIVATE KEY" {
				t.Error("key is not PKCS#8 PEM")
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		if _, _, _, err := ca.IssueForDomains("x.example.com", nil, "DSA_1024"); !errors.Is(err, ErrUnsupportedKeyAlgorithm) {
			t.Errorf("unknown algorithm: %v", err)
		}
		if _, _, _, err := ca.IssueForDomains("", nil, ""); err == nil {
			t.Error("empty domain: no error")
		}
	})
}

func TestIssueForDomainsOpenSSLVerify(t *testing.T) {
	bin := openssl(t)
	ca := newTestCA(t)
	for _, alg := range []string{KeyAlgorithmRSA2048, KeyAlgorithmECPrime256v1} {
		certPEM, chainPEM, _, err := ca.IssueForDomains("svc.example.com", nil, alg)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "verify", "-x509_strict", "-purpose", "sslserver",
			"-verify_hostname", "svc.example.com",
			"-CAfile", writeTemp(t, "chain.pem", chainPEM), writeTemp(t, "leaf.pem", certPEM)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), ": OK") {
			t.Errorf("%s: openssl verify: %v\n%s", alg, err, out)
		}
	}
}
