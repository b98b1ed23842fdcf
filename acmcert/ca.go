package acmcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names of the persisted CA inside the directory given to
// [LoadOrCreateCA].
const (
	CAKeyFile  = "ca.key" // PKCS#8 private key, mode 0600
	CACertFile = "ca.pem" // self-signed root certificate, mode 0644
)

// CASubject is the common name of a CA that [LoadOrCreateCA] creates.
const CASubject = "rdslocal Root CA"

// caValidity is the lifetime of a newly created root.
const caValidity = 10 * 365 * 24 * time.Hour

// CA is the emulator's root certificate authority. It is immutable after
// creation and safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

// LoadOrCreateCA returns the root CA kept in dir, creating it on first use.
//
// With dir empty, a new CA is generated and lives only in memory. Otherwise dir
// is created if needed and holds [CAKeyFile] and [CACertFile]; both are
// written atomically (temporary file, fsync, rename, fsync of dir), and a later
// call loads them, so clients that trust the CA keep working across restarts.
// A key without a certificate (a start that stopped between the two writes)
// gets a new certificate; a certificate without a key is an error. A CA placed
// in dir by hand may use any key type the standard library can sign with.
//
// One process at a time should own dir: two processes creating a CA in the
// same empty dir at once may leave a key and certificate that do not match,
// which the next load reports as an error.
func LoadOrCreateCA(dir string) (*CA, error) {
	now := time.Now()
	if dir == "" {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("acmcert: generate CA key: %w", err)
		}
		return selfSign(key, now)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("acmcert: %w", err)
	}
	keyPath, certPath := filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile)
	keyPEM, keyErr := os.ReadFile(keyPath)
	certPEM, certErr := os.ReadFile(certPath)
	switch {
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return nil, fmt.Errorf("acmcert: %w", keyErr)
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return nil, fmt.Errorf("acmcert: %w", certErr)
	case keyErr == nil && certErr == nil:
		ca, err := parseCA(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("acmcert: load CA from %s: %w", dir, err)
		}
		if now.After(ca.cert.NotAfter) {
			return nil, fmt.Errorf("acmcert: CA in %s expired on %s; remove %s and %s to create a new one",
				dir, ca.cert.NotAfter.Format(time.DateOnly), CAKeyFile, CACertFile)
		}
		return ca, nil
	case certErr == nil: // certificate without its key
		return nil, fmt.Errorf("acmcert: %s exists but %s does not; remove it to create a new CA", certPath, keyPath)
	case keyErr == nil: // key without its certificate
		key, err := parsePrivateKeyPEM(keyPEM)
		if err != nil {
			return nil, fmt.Errorf("acmcert: %s: %w", keyPath, err)
		}
		ca, err := selfSign(key, now)
		if err != nil {
			return nil, err
		}
		return ca, writeFileAtomic(dir, CACertFile, ca.certPEM, 0o644)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acmcert: generate CA key: %w", err)
	}
	ca, err := selfSign(key, now)
	if err != nil {
		return nil, err
	}
	keyPEM, err = marshalPrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	// The key goes first: a crash between the writes leaves a key alone,
	// which the next start completes.
	if err := writeFileAtomic(dir, CAKeyFile, keyPEM, 0o600); err != nil {
		return nil, err
	}
	return ca, writeFileAtomic(dir, CACertFile, ca.certPEM, 0o644)
}

// CertPEM returns the root certificate in PEM form: the bundle clients
// install to trust the emulator. The caller must not modify it.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Certificate returns the parsed root certificate. The caller must not
// modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPool returns a new pool holding only the root certificate, for Go
// clients (tests, the server's own health checks) that should trust it.
func (ca *CA) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// selfSign makes a root certificate for key, valid from an hour before now
// (to tolerate clock skew) for caValidity.
func selfSign(key crypto.Signer, now time.Time) (*CA, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: CASubject, Organization: []string{"rdslocal"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // signs leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("acmcert: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("acmcert: parse CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// parseCA checks that certPEM holds a CA certificate whose public key belongs
// to the private key in keyPEM.
func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no CERTIFICATE block", CACertFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CACertFile, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", CACertFile)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CAKeyFile, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match %s", CAKeyFile, CACertFile)
	}
	return &CA{cert: cert, key: key, certPEM: pem.EncodeToMemory(block)}, nil
}

// parsePrivateKeyPEM reads the first private key block of data: PKCS#8
// ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY").
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no private key PEM block")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue // e.g. EC PARAMETERS before the key
		}
		if err != nil {
			return nil, err
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
		return s, nil
	}
}

// marshalPrivateKeyPEM encodes key as unencrypted PKCS#8 PEM.
func marshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("acmcert: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFileAtomic replaces dir/name with data so that a reader sees either the
// old file or the whole new one, and the new one survives a crash once this
// returns: it writes a temporary file in dir, fsyncs it, renames it over name
// and fsyncs dir.
func writeFileAtomic(dir, name string, data []byte, perm fs.FileMode) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("acmcert: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("acmcert: write %s: %w", filepath.Join(dir, name), err)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// isRSA reports whether key is an RSA key, which also needs the
// keyEncipherment key usage.
func isRSA(key crypto.Signer) bool {
	_, ok := key.Public().(*rsa.PublicKey)
	return ok
}
