package acmcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"time"
)

// ACM key algorithm names, as RequestCertificate's KeyAlgorithm spells them.
const (
	KeyAlgorithmRSA1024      = "RSA_1024"
	KeyAlgorithmRSA2048      = "RSA_2048" // ACM's default
	KeyAlgorithmRSA3072      = "RSA_3072"
	KeyAlgorithmRSA4096      = "RSA_4096"
	KeyAlgorithmECPrime256v1 = "EC_prime256v1"
	KeyAlgorithmECSecp384r1  = "EC_secp384r1"
	KeyAlgorithmECSecp521r1  = "EC_secp521r1"
)

// ACMValidity is the lifetime of a certificate from [CA.IssueForDomains]:
// 395 days, the 13 months of an Amazon-issued ACM certificate.
const ACMValidity = 395 * 24 * time.Hour

// ErrUnsupportedKeyAlgorithm is returned by [CA.IssueForDomains] for a
// KeyAlgorithm it does not know.
var ErrUnsupportedKeyAlgorithm = errors.New("acmcert: unsupported key algorithm")

// backdate is how far before "now" a leaf becomes valid, so that a client
// whose clock is slightly behind still accepts it.
const backdate = 5 * time.Minute

// IssueServerCert signs a new ECDSA P-256 server certificate valid from now
// for validity, with a SAN for every name in names and every address in ips
// and the serverAuth extended key usage. The returned chain is the leaf then
// the root: clients verify against the root they trust, and the extra
// certificate lets those that want the whole chain build it.
func (ca *CA) IssueServerCert(names []string, ips []net.IP, validity time.Duration) (*tls.Certificate, error) {
	return ca.issueServerCert(names, ips, time.Now(), validity)
}

// issueServerCert is IssueServerCert with the clock made explicit.
func (ca *CA) issueServerCert(names []string, ips []net.IP, now time.Time, validity time.Duration) (*tls.Certificate, error) {
	if len(names) == 0 && len(ips) == 0 {
		return nil, errors.New("acmcert: server certificate needs at least one name or IP address")
	}
	if validity <= 0 {
		return nil, fmt.Errorf("acmcert: invalid validity %v", validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acmcert: generate key: %w", err)
	}
	cn := ""
	if len(names) > 0 {
		cn = names[0]
	} else {
		cn = ips[0].String()
	}
	leaf, err := ca.sign(key, cn, names, ips, now, validity, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{
		Certificate: [][]byte{leaf.Raw, ca.cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// IssueForDomains makes the certificate behind an ACM RequestCertificate:
// subject CN domain, a DNS SAN for domain and each of sans (duplicates
// dropped), serverAuth and clientAuth usages, valid for [ACMValidity] from
// now. keyAlgorithm is one of the KeyAlgorithm constants; "" means RSA_2048,
// as in ACM. It returns the leaf, the chain (the root) and the unencrypted
// PKCS#8 private key, each in PEM.
func (ca *CA) IssueForDomains(domain string, sans []string, keyAlgorithm string) (certPEM, chainPEM, keyPEM []byte, err error) {
	if domain == "" {
		return nil, nil, nil, errors.New("acmcert: empty domain name")
	}
	key, err := generateKey(keyAlgorithm)
	if err != nil {
		return nil, nil, nil, err
	}
	names := []string{domain}
	seen := map[string]bool{domain: true}
	for _, n := range sans {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	leaf, err := ca.sign(key, domain, names, nil, time.Now(), ACMValidity,
		x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return nil, nil, nil, err
	}
	keyPEM, err = marshalPrivateKeyPEM(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})
	return certPEM, ca.CertPEM(), keyPEM, nil
}

// generateKey makes a private key for an ACM key algorithm name.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "", KeyAlgorithmRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyAlgorithmRSA1024:
		return rsa.GenerateKey(rand.Reader, 1024)
	case KeyAlgorithmRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case KeyAlgorithmRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case KeyAlgorithmECPrime256v1:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyAlgorithmECSecp384r1:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case KeyAlgorithmECSecp521r1:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	}
	return nil, fmt.Errorf("%w %q", ErrUnsupportedKeyAlgorithm, alg)
}

// sign issues an end-entity certificate for key's public half, valid from
// backdate before now for validity. The common name is set only when it fits
// the 64 characters X.509 allows; the SANs carry the names either way.
func (ca *CA) sign(key crypto.Signer, cn string, names []string, ips []net.IP, now time.Time,
	validity time.Duration, usages ...x509.ExtKeyUsage) (*x509.Certificate, error) {
	if len(cn) > 64 {
		cn = ""
	}
	ku := x509.KeyUsageDigitalSignature
	if isRSA(key) {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              names,
		IPAddresses:           ips,
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              ku,
		ExtKeyUsage:           usages,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("acmcert: sign certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("acmcert: parse certificate: %w", err)
	}
	return leaf, nil
}
