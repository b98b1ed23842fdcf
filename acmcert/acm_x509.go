package acmcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// keyAlgorithmOf names the key of a certificate as ACM's KeyAlgorithm enum
// does, or "" for a key ACM does not support.
func keyAlgorithmOf(pub any) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 1024:
			return KeyAlgorithmRSA1024
		case 2048:
			return KeyAlgorithmRSA2048
		case 3072:
			return KeyAlgorithmRSA3072
		case 4096:
			return KeyAlgorithmRSA4096
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return KeyAlgorithmECPrime256v1
		case elliptic.P384():
			return KeyAlgorithmECSecp384r1
		case elliptic.P521():
			return KeyAlgorithmECSecp521r1
		}
	}
	return ""
}

// displayKeyAlgorithm is how DescribeCertificate and ListCertificates spell a
// key algorithm: ACM answers "RSA-2048" and "EC-prime256v1" although the
// request enum is RSA_2048 and EC_prime256v1.
func displayKeyAlgorithm(alg string) string { return strings.Replace(alg, "_", "-", 1) }

// signatureAlgorithmName is ACM's spelling of a signature algorithm
// (SHA256WITHRSA, SHA256WITHECDSA…).
func signatureAlgorithmName(a x509.SignatureAlgorithm) string {
	switch a {
	case x509.MD5WithRSA:
		return "MD5WITHRSA"
	case x509.SHA1WithRSA:
		return "SHA1WITHRSA"
	case x509.SHA256WithRSA:
		return "SHA256WITHRSA"
	case x509.SHA384WithRSA:
		return "SHA384WITHRSA"
	case x509.SHA512WithRSA:
		return "SHA512WITHRSA"
	case x509.SHA256WithRSAPSS:
		return "SHA256WITHRSAANDMGF1"
	case x509.SHA384WithRSAPSS:
		return "SHA384WITHRSAANDMGF1"
	case x509.SHA512WithRSAPSS:
		return "SHA512WITHRSAANDMGF1"
	case x509.ECDSAWithSHA1:
		return "SHA1WITHECDSA"
	case x509.ECDSAWithSHA256:
		return "SHA256WITHECDSA"
	case x509.ECDSAWithSHA384:
		return "SHA384WITHECDSA"
	case x509.ECDSAWithSHA512:
		return "SHA512WITHECDSA"
	case x509.PureEd25519:
		return "ED25519"
	}
	return strings.ToUpper(a.String())
}

// serialString renders a serial number as ACM does: lower-case hex bytes
// separated by colons (0f:ac:b0:…).
func serialString(c *x509.Certificate) string {
	b := c.SerialNumber.Bytes()
	if len(b) == 0 {
		b = []byte{0}
	}
	parts := make([]string, len(b))
	for i := range b {
		parts[i] = hex.EncodeToString(b[i : i+1])
	}
	return strings.Join(parts, ":")
}

// issuerName is CertificateDetail.Issuer: the issuer's common name (ACM shows
// "Amazon"; the local CA is "rdslocal Root CA"), else its organization, else
// its whole distinguished name.
func issuerName(c *x509.Certificate) string {
	switch {
	case c.Issuer.CommonName != "":
		return c.Issuer.CommonName
	case len(c.Issuer.Organization) > 0:
		return c.Issuer.Organization[0]
	}
	return c.Issuer.String()
}

// keyUsageNames lists the Key Usage bits of c with ACM's names, in bit order.
func keyUsageNames(c *x509.Certificate) []string {
	bits := []struct {
		bit  x509.KeyUsage
		name string
	}{
		{x509.KeyUsageDigitalSignature, "DIGITAL_SIGNATURE"},
		{x509.KeyUsageContentCommitment, "NON_REPUDIATION"},
		{x509.KeyUsageKeyEncipherment, "KEY_ENCIPHERMENT"},
		{x509.KeyUsageDataEncipherment, "DATA_ENCIPHERMENT"},
		{x509.KeyUsageKeyAgreement, "KEY_AGREEMENT"},
		{x509.KeyUsageCertSign, "CERTIFICATE_SIGNING"},
		{x509.KeyUsageCRLSign, "CRL_SIGNING"},
		{x509.KeyUsageEncipherOnly, "ENCIPHER_ONLY"},
		{x509.KeyUsageDecipherOnly, "DECIPHER_ONLY"},
	}
	names := []string{}
	for _, b := range bits {
		if c.KeyUsage&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	return names
}

// extKeyUsage is one Extended Key Usage with ACM's name and its OID.
type extKeyUsage struct {
	Name string `json:"Name"`
	OID  string `json:"OID"`
}

var extKeyUsageNames = map[x509.ExtKeyUsage]extKeyUsage{
	x509.ExtKeyUsageAny:             {"ANY", "2.5.29.37.0"},
	x509.ExtKeyUsageServerAuth:      {"TLS_WEB_SERVER_AUTHENTICATION", "1.3.6.1.5.5.7.3.1"},
	x509.ExtKeyUsageClientAuth:      {"TLS_WEB_CLIENT_AUTHENTICATION", "1.3.6.1.5.5.7.3.2"},
	x509.ExtKeyUsageCodeSigning:     {"CODE_SIGNING", "1.3.6.1.5.5.7.3.3"},
	x509.ExtKeyUsageEmailProtection: {"EMAIL_PROTECTION", "1.3.6.1.5.5.7.3.4"},
	x509.ExtKeyUsageIPSECEndSystem:  {"IPSEC_END_SYSTEM", "1.3.6.1.5.5.7.3.5"},
	x509.ExtKeyUsageIPSECTunnel:     {"IPSEC_TUNNEL", "1.3.6.1.5.5.7.3.6"},
	x509.ExtKeyUsageIPSECUser:       {"IPSEC_USER", "1.3.6.1.5.5.7.3.7"},
	x509.ExtKeyUsageTimeStamping:    {"TIME_STAMPING", "1.3.6.1.5.5.7.3.8"},
	x509.ExtKeyUsageOCSPSigning:     {"OCSP_SIGNING", "1.3.6.1.5.5.7.3.9"},
	// Usages ACM has no name for.
	x509.ExtKeyUsageMicrosoftServerGatedCrypto:     {"CUSTOM", "1.3.6.1.4.1.311.10.3.3"},
	x509.ExtKeyUsageNetscapeServerGatedCrypto:      {"CUSTOM", "2.16.840.1.113730.4.1"},
	x509.ExtKeyUsageMicrosoftCommercialCodeSigning: {"CUSTOM", "1.3.6.1.4.1.311.2.1.22"},
	x509.ExtKeyUsageMicrosoftKernelCodeSigning:     {"CUSTOM", "1.3.6.1.4.1.311.61.1.1"},
}

// extKeyUsages lists the Extended Key Usages of c; usages without an ACM name
// are CUSTOM with their OID.
func extKeyUsages(c *x509.Certificate) []extKeyUsage {
	out := []extKeyUsage{}
	for _, u := range c.ExtKeyUsage {
		if e, ok := extKeyUsageNames[u]; ok {
			out = append(out, e)
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		out = append(out, extKeyUsage{Name: "CUSTOM", OID: oid.String()})
	}
	return out
}

// summaryKeyUsages is CertificateSummary.KeyUsages: the Key Usage names, or
// ANY for a certificate without the extension (no restriction), as ACM lists
// it. ListCertificates' keyUsage filter matches against this list.
func summaryKeyUsages(c *x509.Certificate) []string {
	if names := keyUsageNames(c); len(names) > 0 {
		return names
	}
	return []string{"ANY"}
}

// summaryExtKeyUsages is CertificateSummary.ExtendedKeyUsages: the names, or
// NONE for a certificate without the extension, as ACM lists it.
func summaryExtKeyUsages(c *x509.Certificate) []string {
	var names []string
	for _, e := range extKeyUsages(c) {
		names = append(names, e.Name)
	}
	if len(names) == 0 {
		return []string{"NONE"}
	}
	return names
}

// certDomains returns the domain name and the subject alternative names of an
// imported certificate: the common name (else the first DNS name), and the
// DNS names (else the common name).
func certDomains(c *x509.Certificate) (domain string, sans []string) {
	domain = c.Subject.CommonName
	sans = append(sans, c.DNSNames...)
	if domain == "" && len(sans) > 0 {
		domain = sans[0]
	}
	if len(sans) == 0 && domain != "" {
		sans = []string{domain}
	}
	return domain, sans
}

// validDomainName implements the model's DomainNameString pattern: an
// optional "*." then two or more dot-separated labels of letters, digits and
// hyphens, none starting with a hyphen nor ending with one, at most 63
// characters each, the last at least two characters.
func validDomainName(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return false
	}
	for i, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		if i == len(labels)-1 && len(l) < 2 {
			return false
		}
		for j := 0; j < len(l); j++ {
			ch := l[j]
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}
