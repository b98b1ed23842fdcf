package acmcert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newTestCA returns an in-memory CA.
func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := LoadOrCreateCA("")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// openssl returns the path of the openssl binary or skips the test.
func openssl(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	return path
}

// writeTemp writes data to a new file in a test directory and returns its path.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInMemoryCA(t *testing.T) {
	ca := newTestCA(t)
	c := ca.Certificate()
	if c.Subject.CommonName != CASubject || !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("subject %q IsCA %v", c.Subject.CommonName, c.IsCA)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 9*365*24*time.Hour {
		t.Errorf("CA lifetime %v, want about 10 years", life)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA lacks keyCertSign")
	}
	if other := newTestCA(t); bytes.Equal(other.CertPEM(), ca.CertPEM()) {
		t.Error("two in-memory CAs are the same")
	}
}

func TestLoadOrCreateCAPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // does not exist yet
	first, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{CAKeyFile: 0o600, CACertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, first.CertPEM()) {
		t.Error("ca.pem differs from CertPEM()")
	}

	second, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.CertPEM(), second.CertPEM()) {
		t.Fatal("CA changed across LoadOrCreateCA calls")
	}
	// The reloaded key signs certificates that clients of the first CA trust.
	leaf, err := second.IssueServerCert([]string{"localhost"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: first.CertPool(), DNSName: "localhost"}); err != nil {
		t.Errorf("leaf from reloaded CA: %v", err)
	}

	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %v, want only %s and %s", names, CAKeyFile, CACertFile)
	}
}

func TestLoadOrCreateCAFromPartialOrBadDir(t *testing.T) {
	other := t.TempDir()
	if _, err := LoadOrCreateCA(other); err != nil {
		t.Fatal(err)
	}
	otherKey, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
	otherCert, _ := os.ReadFile(filepath.Join(other, CACertFile))
	mismatchDir := t.TempDir()
	if _, err := LoadOrCreateCA(mismatchDir); err != nil {
		t.Fatal(err)
	}
	mismatchedKey, _ := os.ReadFile(filepath.Join(mismatchDir, CAKeyFile))

	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr string // "" means success
	}{
		{"key without certificate", map[string][]byte{CAKeyFile: otherKey}, ""},
		{"certificate without key", map[string][]byte{CACertFile: otherCert}, "does not"},
		{"mismatched pair", map[string][]byte{CAKeyFile: mismatchedKey, CACertFile: otherCert}, "does not match"},
		{"garbage certificate", map[string][]byte{CAKeyFile: otherKey, CACertFile: []byte("nope")}, "no CERTIFICATE"},
		{"garbage key", map[string][]byte{CAKeyFile: []byte("nope"), CACertFile: otherCert}, "no private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			ca, err := LoadOrCreateCA(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The recovered CA keeps the surviving key and is stable from now on.
			key, err := parsePrivateKeyPEM(otherKey)
			if err != nil {
				t.Fatal(err)
			}
			if !key.Public().(*ecdsa.PublicKey).Equal(ca.Certificate().PublicKey) {
				t.Error("recovered CA does not use the key on disk")
			}
			again, err := LoadOrCreateCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.CertPEM(), ca.CertPEM()) {
				t.Error("recovered CA changed on reload")
			}
		})
	}
}

func TestCAOpenSSLAcceptsRoot(t *testing.T) {
	bin := openssl(t)
	ca := newTestCA(t)
	caFile := writeTemp(t, "ca.pem", ca.CertPEM())
	out, err := exec.Command(bin, "verify", "-x509_strict", "-CAfile", caFile, caFile).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify of root: %v\n%s", err, out)
	}
}
