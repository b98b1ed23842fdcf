package acmcert

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdslocal/rdslocal/api"
)

// ACM certificate types, as CertificateDetail.Type spells them.
const (
	TypeAmazonIssued = "AMAZON_ISSUED"
	TypeImported     = "IMPORTED"
	TypePrivate      = "PRIVATE"
)

// ACM certificate statuses rdslocal reports. Requests are issued at once, so
// a certificate is ISSUED until its NotAfter passes.
const (
	StatusIssued  = "ISSUED"
	StatusExpired = "EXPIRED"
)

// idempotencyWindow is how long RequestCertificate's IdempotencyToken maps to
// the certificate it first created.
const idempotencyWindow = time.Hour

// acmSnapshotVersion is the format version of ACM.Snapshot's JSON.
const acmSnapshotVersion = 1

// ACM is the Certificate Manager API over the local CA: the certificates of
// every account and region, their keys, tags and users. It is safe for
// concurrent use.
type ACM struct {
	ca *CA

	mu      sync.Mutex
	regions map[acmRegionKey]*acmRegion
}

// NewACM returns an ACM with no certificates whose requested certificates ca
// signs.
func NewACM(ca *CA) *ACM { return &ACM{ca: ca, regions: map[acmRegionKey]*acmRegion{}} }

type acmRegionKey struct{ account, region string }

// acmRegion is the certificates of one account in one region, by ARN.
type acmRegion struct {
	certs map[string]*certificate
}

// certificate is one ACM certificate. Its exported fields exist for the
// snapshot's JSON only; everything the API reports about the X.509
// certificate itself (subject, serial, validity, usages…) is read from leaf.
type certificate struct {
	ARN        string   `json:"arn"`
	Type       string   `json:"type"`
	DomainName string   `json:"domainName"`
	SANs       []string `json:"sans,omitempty"`
	// KeyAlgorithm is the model's enum spelling (RSA_2048, EC_prime256v1).
	KeyAlgorithm string `json:"keyAlgorithm"`
	CertPEM      string `json:"certPem"`
	ChainPEM     string `json:"chainPem,omitempty"`
	KeyPEM       string `json:"keyPem"` // unencrypted PKCS#8

	Created  time.Time  `json:"created"`
	Issued   *time.Time `json:"issued,omitempty"`   // AMAZON_ISSUED and PRIVATE
	Imported *time.Time `json:"imported,omitempty"` // IMPORTED

	// ValidationMethod and ValidationDomains describe the domain validation
	// of an AMAZON_ISSUED certificate (ValidationDomains by domain name,
	// only where the request named one).
	ValidationMethod  string            `json:"validationMethod,omitempty"`
	ValidationDomains map[string]string `json:"validationDomains,omitempty"`

	CTLogging               string `json:"ctLogging,omitempty"` // ENABLED or DISABLED
	Export                  string `json:"export,omitempty"`    // ENABLED or DISABLED
	Exported                bool   `json:"exported,omitempty"`
	CertificateAuthorityArn string `json:"certificateAuthorityArn,omitempty"`
	ManagedBy               string `json:"managedBy,omitempty"`

	Tags    []certTag `json:"tags,omitempty"`
	InUseBy []string  `json:"inUseBy,omitempty"`

	// IdempotencyToken and TokenExpires let a repeated RequestCertificate
	// return this certificate.
	IdempotencyToken string     `json:"idempotencyToken,omitempty"`
	TokenExpires     *time.Time `json:"tokenExpires,omitempty"`

	leaf *x509.Certificate
	tls  *tls.Certificate // built on first TLSCertificate call
}

// certTag is a certificate's tag. Value is optional in ACM: a tag without one
// is listed without it.
type certTag struct {
	Key   string  `json:"Key"`
	Value *string `json:"Value,omitempty"`
}

// Service returns the ACM API for the gateway.
func (a *ACM) Service() *api.Service {
	return &api.Service{
		Model: api.MustLoadModel("acm"),
		Handlers: map[string]api.Handler{
			"RequestCertificate":        a.requestCertificate,
			"DescribeCertificate":       a.describeCertificate,
			"GetCertificate":            a.getCertificate,
			"ListCertificates":          a.listCertificates,
			"DeleteCertificate":         a.deleteCertificate,
			"ImportCertificate":         a.importCertificate,
			"ExportCertificate":         a.exportCertificate,
			"AddTagsToCertificate":      a.addTagsToCertificate,
			"ListTagsForCertificate":    a.listTagsForCertificate,
			"RemoveTagsFromCertificate": a.removeTagsFromCertificate,
		},
		State: a,
	}
}

// region returns the state of (account, region), creating it. The caller
// holds a.mu.
func (a *ACM) region(account, region string) *acmRegion {
	k := acmRegionKey{account, region}
	r := a.regions[k]
	if r == nil {
		r = &acmRegion{certs: map[string]*certificate{}}
		a.regions[k] = r
	}
	return r
}

// lookup finds the certificate arn names in the caller's account and region.
// The caller holds a.mu.
func (a *ACM) lookup(account, region, arn string) (*certificate, error) {
	p, err := checkCertificateARN(arn)
	if err != nil {
		return nil, err
	}
	if p.account != account || p.region != region {
		return nil, errCertNotFound(arn)
	}
	r := a.regions[acmRegionKey{account, region}]
	if r == nil || r.certs[arn] == nil {
		return nil, errCertNotFound(arn)
	}
	return r.certs[arn], nil
}

// certARN is the parts of arn:<partition>:acm:<region>:<account>:certificate/<id>.
type certARN struct {
	partition, region, account, id string
}

// parseCertificateARN splits a certificate ARN; ok is false for anything else.
func parseCertificateARN(s string) (certARN, bool) {
	p := strings.SplitN(s, ":", 6)
	if len(p) != 6 || p[0] != "arn" || p[2] != "acm" || p[3] == "" {
		return certARN{}, false
	}
	switch p[1] {
	case "aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc":
	default:
		return certARN{}, false
	}
	if len(p[4]) != 12 || strings.Trim(p[4], "0123456789") != "" {
		return certARN{}, false
	}
	id, ok := strings.CutPrefix(p[5], "certificate/")
	if !ok || id == "" || strings.Contains(id, "/") {
		return certARN{}, false
	}
	return certARN{partition: p[1], region: p[3], account: p[4], id: id}, true
}

// checkCertificateARN validates a CertificateArn member: one that does not
// fit the model's pattern is a ValidationException, as ACM's request
// validation reports it; one that fits but is no ACM certificate ARN is an
// InvalidArnException.
func checkCertificateARN(arn string) (certARN, error) {
	if !arnPattern.MatchString(arn) {
		return certARN{}, errPattern(arn, "certificateArn", arnPattern)
	}
	p, ok := parseCertificateARN(arn)
	if !ok {
		return certARN{}, errInvalidARN(arn)
	}
	return p, nil
}

// partition returns the ARN partition of region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	}
	return "aws"
}

func certificateARN(account, region, id string) string {
	return fmt.Sprintf("arn:%s:acm:%s:%s:certificate/%s", partition(region), region, account, id)
}

// status is the certificate's status at now.
func (c *certificate) status(now time.Time) string {
	if now.After(c.leaf.NotAfter) {
		return StatusExpired
	}
	return StatusIssued
}

// exportable reports whether ExportCertificate may hand out the key: private
// certificates and those requested with Options.Export ENABLED, as in ACM.
// Imported certificates are not: their owner already holds the key.
func (c *certificate) exportable() bool {
	return c.Type == TypePrivate || (c.Type == TypeAmazonIssued && c.Export == "ENABLED")
}

// renewalEligibility follows ACM: a private certificate can be renewed; an
// Amazon-issued one once it is in use (or was exported); an imported one
// never.
func (c *certificate) renewalEligibility() string {
	switch {
	case c.Type == TypePrivate:
		return "ELIGIBLE"
	case c.Type == TypeAmazonIssued && (len(c.InUseBy) > 0 || c.Exported):
		return "ELIGIBLE"
	}
	return "INELIGIBLE"
}

// parseLeaf reads the first CERTIFICATE block of certPEM.
func parseLeaf(certPEM string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// SetInUse records which AWS resources (DB proxies, load balancers…) use the
// certificate arn, replacing the previous list; nil or empty marks it unused.
// DescribeCertificate reports them in InUseBy, ListCertificates in InUse, and
// DeleteCertificate refuses a certificate in use. The ARN names its own
// account and region. The error is an *api.Error with ACM's code
// (ResourceNotFoundException, InvalidArnException, ValidationException).
//
// Certificate users are part of the saved state, but the server saves ACM
// state only after ACM actions: a caller outside the ACM API should
// re-assert its users after a restart.
func (a *ACM) SetInUse(arn string, users []string) error {
	return a.updateInUse(arn, func([]string) []string { return users })
}

// AddInUse adds user to the resources using the certificate arn.
func (a *ACM) AddInUse(arn, user string) error {
	return a.updateInUse(arn, func(cur []string) []string { return append(cur, user) })
}

// RemoveInUse removes user from the resources using the certificate arn. A
// certificate that no longer exists is not an error.
func (a *ACM) RemoveInUse(arn, user string) error {
	err := a.updateInUse(arn, func(cur []string) []string {
		return slices.DeleteFunc(cur, func(u string) bool { return u == user })
	})
	var e *api.Error
	if errors.As(err, &e) && e.Code == codeResourceNotFound {
		return nil
	}
	return err
}

func (a *ACM) updateInUse(arn string, f func([]string) []string) error {
	p, err := checkCertificateARN(arn)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.lookup(p.account, p.region, arn)
	if err != nil {
		return err
	}
	users := slices.Clone(f(slices.Clone(c.InUseBy))) // never sort the caller's slice
	users = slices.DeleteFunc(users, func(u string) bool { return u == "" })
	slices.Sort(users)
	c.InUseBy = slices.Compact(users)
	if len(c.InUseBy) == 0 {
		c.InUseBy = nil
	}
	return nil
}

// TLSCertificate returns the certificate arn of (account, region) with its
// private key, for a TLS server: the chain is the leaf followed by the
// certificate chain (for certificates the local CA issued, its root). The
// error is an *api.Error with ACM's code; an ARN of another account or region
// is ResourceNotFoundException.
func (a *ACM) TLSCertificate(account, region, arn string) (*tls.Certificate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.lookup(account, region, arn)
	if err != nil {
		return nil, err
	}
	if c.tls == nil {
		pair, err := tls.X509KeyPair([]byte(c.CertPEM+"\n"+c.ChainPEM), []byte(c.KeyPEM))
		if err != nil {
			return nil, api.InternalFailure("certificate " + arn + ": " + err.Error())
		}
		pair.Leaf = c.leaf
		c.tls = &pair
	}
	return c.tls, nil
}

// acmSnapshot is Snapshot's JSON.
type acmSnapshot struct {
	Version int                 `json:"version"`
	Regions []acmSnapshotRegion `json:"regions"`
}

type acmSnapshotRegion struct {
	Account      string         `json:"account"`
	Region       string         `json:"region"`
	Certificates []*certificate `json:"certificates"`
}

// Snapshot returns the whole state as JSON, private keys included (the server
// writes it with mode 0600).
func (a *ACM) Snapshot() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	snap := acmSnapshot{Version: acmSnapshotVersion, Regions: []acmSnapshotRegion{}}
	for k, r := range a.regions {
		if len(r.certs) == 0 {
			continue
		}
		sr := acmSnapshotRegion{Account: k.account, Region: k.region}
		for _, c := range r.certs {
			sr.Certificates = append(sr.Certificates, c)
		}
		sort.Slice(sr.Certificates, func(i, j int) bool { return sr.Certificates[i].ARN < sr.Certificates[j].ARN })
		snap.Regions = append(snap.Regions, sr)
	}
	sort.Slice(snap.Regions, func(i, j int) bool {
		x, y := snap.Regions[i], snap.Regions[j]
		if x.Account != y.Account {
			return x.Account < y.Account
		}
		return x.Region < y.Region
	})
	return json.Marshal(snap)
}

// Restore replaces the whole state with a snapshot taken by Snapshot. Every
// certificate must parse and sit under the account and region its ARN names.
func (a *ACM) Restore(data []byte) error {
	var snap acmSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("acm snapshot: %w", err)
	}
	if snap.Version != acmSnapshotVersion {
		return fmt.Errorf("acm snapshot: unsupported format version %d", snap.Version)
	}
	regions := map[acmRegionKey]*acmRegion{}
	for _, sr := range snap.Regions {
		k := acmRegionKey{sr.Account, sr.Region}
		r := regions[k]
		if r == nil {
			r = &acmRegion{certs: map[string]*certificate{}}
			regions[k] = r
		}
		for _, c := range sr.Certificates {
			if c == nil {
				continue
			}
			p, ok := parseCertificateARN(c.ARN)
			if !ok || p.account != sr.Account || p.region != sr.Region {
				return fmt.Errorf("acm snapshot: certificate %q does not belong to %s/%s", c.ARN, sr.Account, sr.Region)
			}
			if r.certs[c.ARN] != nil {
				return fmt.Errorf("acm snapshot: certificate %q appears twice", c.ARN)
			}
			leaf, err := parseLeaf(c.CertPEM)
			if err != nil {
				return fmt.Errorf("acm snapshot: certificate %s: %w", c.ARN, err)
			}
			if _, err := parsePrivateKeyPEM([]byte(c.KeyPEM)); err != nil {
				return fmt.Errorf("acm snapshot: key of certificate %s: %w", c.ARN, err)
			}
			c.leaf = leaf
			r.certs[c.ARN] = c
		}
	}
	a.mu.Lock()
	a.regions = regions
	a.mu.Unlock()
	return nil
}

// Reset forgets every certificate.
func (a *ACM) Reset() {
	a.mu.Lock()
	a.regions = map[acmRegionKey]*acmRegion{}
	a.mu.Unlock()
}
