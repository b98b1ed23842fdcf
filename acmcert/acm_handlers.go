package acmcert

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/rdslocal/rdslocal/api"
)

// maxDomainNames is ACM's default quota of domain names (the domain name and
// its subject alternative names) per certificate.
const maxDomainNames = 10

// maxTags is how many tags a certificate may carry.
const maxTags = 50

// tagInput is a Tag as a request carries it (Value is optional).
type tagInput struct {
	Key   string
	Value *string
}

// readTags checks tags as ACM does: the model's patterns (ValidationException)
// and no key in the reserved aws: namespace (InvalidTagException).
func readTags(in []tagInput) ([]certTag, error) {
	out := make([]certTag, 0, len(in))
	for i, t := range in {
		if !tagPattern.MatchString(t.Key) {
			return nil, errPattern(t.Key, fmt.Sprintf("tags.%d.member.key", i+1), tagPattern)
		}
		if t.Value != nil && !tagPattern.MatchString(*t.Value) {
			return nil, errPattern(*t.Value, fmt.Sprintf("tags.%d.member.value", i+1), tagPattern)
		}
		if strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
			return nil, acmError(codeInvalidTag, "Tag key %q is not valid: keys beginning with aws: are reserved for AWS use.", t.Key)
		}
		out = append(out, certTag(t))
	}
	return out, nil
}

// mergeTags sets each of add on tags, replacing the value of a present key.
func mergeTags(tags, add []certTag) []certTag {
	tags = slices.Clone(tags)
	for _, t := range add {
		if i := slices.IndexFunc(tags, func(x certTag) bool { return x.Key == t.Key }); i >= 0 {
			tags[i].Value = t.Value
		} else {
			tags = append(tags, t)
		}
	}
	return tags
}

func errTooManyTags() *api.Error {
	return acmError(codeTooManyTags, "The request contains too many tags. Try the request again with fewer tags.")
}

// --- RequestCertificate ---

type domainValidationOptionInput struct {
	DomainName       string
	ValidationDomain string
}

type requestCertificateInput struct {
	DomainName              string
	SubjectAlternativeNames []string
	ValidationMethod        *string
	DomainValidationOptions []domainValidationOptionInput
	IdempotencyToken        *string
	Options                 *struct {
		CertificateTransparencyLoggingPreference *string
		Export                                   *string
	}
	CertificateAuthorityArn *string
	KeyAlgorithm            *string
	ManagedBy               *string
	Tags                    []tagInput
}

type certificateARNOutput struct {
	CertificateArn string `json:"CertificateArn"`
}

// publicKeyAlgorithms are the key algorithms ACM issues public certificates
// with; private certificates may use these and RSA_3072, RSA_4096 and
// EC_secp521r1.
var (
	publicKeyAlgorithms  = []string{KeyAlgorithmRSA2048, KeyAlgorithmECPrime256v1, KeyAlgorithmECSecp384r1}
	privateKeyAlgorithms = []string{KeyAlgorithmRSA2048, KeyAlgorithmRSA3072, KeyAlgorithmRSA4096,
		KeyAlgorithmECPrime256v1, KeyAlgorithmECSecp384r1, KeyAlgorithmECSecp521r1}
)

// certificateNames returns the domain name followed by the subject alternative
// names, without case-insensitive duplicates, checking each against the
// model's DomainNameString pattern.
func certificateNames(domain string, sans []string) ([]string, error) {
	if !validDomainName(domain) {
		return nil, errDomainPattern(domain, "domainName")
	}
	names := []string{domain}
	for i, n := range sans {
		if !validDomainName(n) {
			return nil, errDomainPattern(n, fmt.Sprintf("subjectAlternativeNames.%d.member", i+1))
		}
		if !slices.ContainsFunc(names, func(x string) bool { return strings.EqualFold(x, n) }) {
			names = append(names, n)
		}
	}
	return names, nil
}

// baseDomain is a domain name without its wildcard label.
func baseDomain(d string) string { return strings.TrimPrefix(d, "*.") }

func (a *ACM) requestCertificate(c *api.Call) (any, error) {
	var in requestCertificateInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	names, err := certificateNames(in.DomainName, in.SubjectAlternativeNames)
	if err != nil {
		return nil, err
	}
	if len(names) > maxDomainNames {
		return nil, acmError(codeLimitExceeded, "An ACM limit has been exceeded. Need to request SAN limit to be raised")
	}
	token := deref(in.IdempotencyToken)
	if in.IdempotencyToken != nil && !tokenPattern.MatchString(token) {
		return nil, errPattern(token, "idempotencyToken", tokenPattern)
	}
	tags, err := readTags(in.Tags)
	if err != nil {
		return nil, err
	}
	if len(mergeTags(nil, tags)) > maxTags {
		return nil, errTooManyTags()
	}
	typ, pca := TypeAmazonIssued, deref(in.CertificateAuthorityArn)
	if in.CertificateAuthorityArn != nil {
		if !pcaARNPattern.MatchString(pca) {
			return nil, errPattern(pca, "certificateAuthorityArn", pcaARNPattern)
		}
		if !strings.Contains(pca, ":certificate-authority/") {
			return nil, acmError(codeInvalidARN, "String '%s' is not a valid private certificate authority ARN.", pca)
		}
		typ = TypePrivate
	}
	alg := KeyAlgorithmRSA2048
	if in.KeyAlgorithm != nil {
		alg = *in.KeyAlgorithm
	}
	allowed := publicKeyAlgorithms
	if typ == TypePrivate {
		allowed = privateKeyAlgorithms
	}
	if !slices.Contains(allowed, alg) {
		where := c.Region
		if alg == KeyAlgorithmRSA4096 && typ == TypeAmazonIssued {
			where = c.Account // ACM's own message names the account here
		}
		return nil, acmError(codeValidation, "Encryption Algorithm %s is not supported in %s region", alg, where)
	}
	method := ""
	validation := map[string]string{}
	if typ == TypeAmazonIssued {
		method = "EMAIL" // ACM's default when ValidationMethod is absent
		if in.ValidationMethod != nil {
			method = *in.ValidationMethod
		}
		for _, o := range in.DomainValidationOptions {
			i := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, o.DomainName) })
			if i < 0 {
				return nil, acmError(codeInvalidDomainOptions, "DomainValidationOptions names %s, which is not a domain name of the certificate.", o.DomainName)
			}
			base, vd := strings.ToLower(baseDomain(names[i])), strings.ToLower(o.ValidationDomain)
			if vd != base && !strings.HasSuffix(base, "."+vd) {
				return nil, acmError(codeInvalidDomainOptions, "ValidationDomain %s is neither %s nor a superdomain of it.", o.ValidationDomain, names[i])
			}
			validation[names[i]] = o.ValidationDomain
		}
	}
	ctLog, export := "ENABLED", "DISABLED"
	if o := in.Options; o != nil {
		if o.CertificateTransparencyLoggingPreference != nil {
			ctLog = *o.CertificateTransparencyLoggingPreference
		}
		if o.Export != nil {
			export = *o.Export
		}
	}

	if token != "" {
		a.mu.Lock()
		arn := a.region(c.Account, c.Region).byToken(token, in.DomainName, c.Now)
		a.mu.Unlock()
		if arn != "" {
			return certificateARNOutput{CertificateArn: arn}, nil
		}
	}
	// Key generation is slow (RSA): it runs without the lock.
	certPEM, chainPEM, keyPEM, err := a.ca.IssueForDomains(names[0], names[1:], alg)
	if err != nil {
		return nil, api.InternalFailure(err.Error())
	}
	leaf, err := parseLeaf(string(certPEM))
	if err != nil {
		return nil, api.InternalFailure(err.Error())
	}
	now := c.Now
	cert := &certificate{
		ARN:                     certificateARN(c.Account, c.Region, uuid.NewString()),
		Type:                    typ,
		DomainName:              names[0],
		SANs:                    names,
		KeyAlgorithm:            alg,
		CertPEM:                 string(certPEM),
		ChainPEM:                string(chainPEM),
		KeyPEM:                  string(keyPEM),
		Created:                 now,
		Issued:                  &now,
		ValidationMethod:        method,
		CTLogging:               ctLog,
		Export:                  export,
		CertificateAuthorityArn: pca,
		ManagedBy:               deref(in.ManagedBy),
		Tags:                    mergeTags(nil, tags),
		leaf:                    leaf,
	}
	if len(validation) > 0 {
		cert.ValidationDomains = validation
	}
	if token != "" {
		exp := now.Add(idempotencyWindow)
		cert.IdempotencyToken, cert.TokenExpires = token, &exp
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.region(c.Account, c.Region)
	if token != "" {
		// A concurrent request with the same token may have won the race.
		if arn := r.byToken(token, in.DomainName, c.Now); arn != "" {
			return certificateARNOutput{CertificateArn: arn}, nil
		}
	}
	r.certs[cert.ARN] = cert
	return certificateARNOutput{CertificateArn: cert.ARN}, nil
}

// byToken returns the ARN of the certificate a RequestCertificate with token
// and domain created less than an hour before now, or "".
func (r *acmRegion) byToken(token, domain string, now time.Time) string {
	for _, c := range r.certs {
		if c.IdempotencyToken == token && c.DomainName == domain && c.TokenExpires != nil && now.Before(*c.TokenExpires) {
			return c.ARN
		}
	}
	return ""
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// --- DescribeCertificate ---

type certificateARNInput struct {
	CertificateArn string
}

type resourceRecord struct {
	Name  string `json:"Name"`
	Type  string `json:"Type"`
	Value string `json:"Value"`
}

type httpRedirect struct {
	RedirectFrom string `json:"RedirectFrom"`
	RedirectTo   string `json:"RedirectTo"`
}

type domainValidation struct {
	DomainName       string          `json:"DomainName"`
	ValidationDomain string          `json:"ValidationDomain,omitempty"`
	ValidationStatus string          `json:"ValidationStatus,omitempty"`
	ValidationMethod string          `json:"ValidationMethod,omitempty"`
	ValidationEmails []string        `json:"ValidationEmails,omitempty"`
	ResourceRecord   *resourceRecord `json:"ResourceRecord,omitempty"`
	HttpRedirect     *httpRedirect   `json:"HttpRedirect,omitempty"`
}

type keyUsage struct {
	Name string `json:"Name"`
}

type certificateOptions struct {
	CertificateTransparencyLoggingPreference string `json:"CertificateTransparencyLoggingPreference,omitempty"`
	Export                                   string `json:"Export,omitempty"`
}

type certificateDetail struct {
	CertificateArn          string              `json:"CertificateArn"`
	CertificateAuthorityArn string              `json:"CertificateAuthorityArn,omitempty"`
	DomainName              string              `json:"DomainName"`
	SubjectAlternativeNames []string            `json:"SubjectAlternativeNames"`
	DomainValidationOptions []domainValidation  `json:"DomainValidationOptions,omitempty"`
	Serial                  string              `json:"Serial"`
	Subject                 string              `json:"Subject"`
	Issuer                  string              `json:"Issuer"`
	CreatedAt               *api.EpochTime      `json:"CreatedAt,omitempty"`
	IssuedAt                *api.EpochTime      `json:"IssuedAt,omitempty"`
	ImportedAt              *api.EpochTime      `json:"ImportedAt,omitempty"`
	Status                  string              `json:"Status"`
	NotBefore               *api.EpochTime      `json:"NotBefore"`
	NotAfter                *api.EpochTime      `json:"NotAfter"`
	KeyAlgorithm            string              `json:"KeyAlgorithm"`
	SignatureAlgorithm      string              `json:"SignatureAlgorithm"`
	InUseBy                 []string            `json:"InUseBy"`
	Type                    string              `json:"Type"`
	KeyUsages               []keyUsage          `json:"KeyUsages"`
	ExtendedKeyUsages       []extKeyUsage       `json:"ExtendedKeyUsages"`
	RenewalEligibility      string              `json:"RenewalEligibility"`
	Options                 *certificateOptions `json:"Options,omitempty"`
	ManagedBy               string              `json:"ManagedBy,omitempty"`
}

type describeCertificateOutput struct {
	Certificate certificateDetail `json:"Certificate"`
}

func epochPtr(t *time.Time) *api.EpochTime {
	if t == nil {
		return nil
	}
	return api.Epoch(*t)
}

// validationHash derives stable pseudo-random bytes for the DNS validation of
// domain in account: like ACM, every certificate of an account asks for the
// same CNAME for a given domain.
func validationHash(account, domain, purpose string) [32]byte {
	return sha256.Sum256([]byte(account + "\x00" + strings.ToLower(baseDomain(domain)) + "\x00" + purpose))
}

// validationRecord is the CNAME ACM asks to be created for DNS validation:
// _<32 hex>.<domain>. → _<32 hex>.<10 letters>.acm-validations.aws.
func validationRecord(account, domain string) *resourceRecord {
	name, value := validationHash(account, domain, "name"), validationHash(account, domain, "value")
	letters := make([]byte, 10)
	for i := range letters {
		letters[i] = 'a' + value[16+i]%26
	}
	return &resourceRecord{
		Name:  "_" + hex.EncodeToString(name[:16]) + "." + strings.ToLower(baseDomain(domain)) + ".",
		Type:  "CNAME",
		Value: "_" + hex.EncodeToString(value[:16]) + "." + string(letters) + ".acm-validations.aws.",
	}
}

// domainValidations reports the validation of every name of an Amazon-issued
// certificate as complete: rdslocal cannot check DNS or mail, so it issues at
// once and shows what ACM shows after a successful validation.
func (c *certificate) domainValidations(account string) []domainValidation {
	out := make([]domainValidation, 0, len(c.SANs))
	for _, n := range c.SANs {
		dv := domainValidation{DomainName: n, ValidationDomain: n, ValidationStatus: "SUCCESS", ValidationMethod: c.ValidationMethod}
		switch c.ValidationMethod {
		case "DNS":
			dv.ResourceRecord = validationRecord(account, n)
		case "HTTP":
			h := validationHash(account, n, "http")
			dv.HttpRedirect = &httpRedirect{
				RedirectFrom: "http://" + baseDomain(n) + "/.well-known/pki-validation/" + hex.EncodeToString(h[:16]) + ".txt",
				RedirectTo:   "http://" + hex.EncodeToString(h[16:]) + ".acm-validations.aws/" + hex.EncodeToString(h[:16]) + ".txt",
			}
		default: // EMAIL
			vd := baseDomain(n)
			if d, ok := c.ValidationDomains[n]; ok {
				vd = d
			}
			dv.ValidationDomain = vd
			for _, box := range []string{"admin", "administrator", "hostmaster", "postmaster", "webmaster"} {
				dv.ValidationEmails = append(dv.ValidationEmails, box+"@"+vd)
			}
		}
		out = append(out, dv)
	}
	return out
}

// detail renders c as DescribeCertificate does.
func (c *certificate) detail(now time.Time) certificateDetail {
	p, _ := parseCertificateARN(c.ARN)
	d := certificateDetail{
		CertificateArn:          c.ARN,
		CertificateAuthorityArn: c.CertificateAuthorityArn,
		DomainName:              c.DomainName,
		SubjectAlternativeNames: slices.Clone(c.SANs),
		Serial:                  serialString(c.leaf),
		Subject:                 c.leaf.Subject.String(),
		Issuer:                  issuerName(c.leaf),
		CreatedAt:               api.Epoch(c.Created),
		IssuedAt:                epochPtr(c.Issued),
		ImportedAt:              epochPtr(c.Imported),
		Status:                  c.status(now),
		NotBefore:               api.Epoch(c.leaf.NotBefore),
		NotAfter:                api.Epoch(c.leaf.NotAfter),
		KeyAlgorithm:            displayKeyAlgorithm(c.KeyAlgorithm),
		SignatureAlgorithm:      signatureAlgorithmName(c.leaf.SignatureAlgorithm),
		InUseBy:                 append([]string{}, c.InUseBy...),
		Type:                    c.Type,
		KeyUsages:               []keyUsage{},
		ExtendedKeyUsages:       extKeyUsages(c.leaf),
		RenewalEligibility:      c.renewalEligibility(),
		ManagedBy:               c.ManagedBy,
	}
	if d.SubjectAlternativeNames == nil {
		d.SubjectAlternativeNames = []string{}
	}
	for _, n := range keyUsageNames(c.leaf) {
		d.KeyUsages = append(d.KeyUsages, keyUsage{Name: n})
	}
	if c.Type == TypeAmazonIssued {
		d.DomainValidationOptions = c.domainValidations(p.account)
	}
	if c.Type != TypeImported {
		d.Options = &certificateOptions{CertificateTransparencyLoggingPreference: c.CTLogging, Export: c.Export}
	}
	return d
}

func (a *ACM) describeCertificate(c *api.Call) (any, error) {
	var in certificateARNInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cert, err := a.lookup(c.Account, c.Region, in.CertificateArn)
	if err != nil {
		return nil, err
	}
	return describeCertificateOutput{Certificate: cert.detail(c.Now)}, nil
}

// --- GetCertificate ---

type getCertificateOutput struct {
	Certificate      string `json:"Certificate"`
	CertificateChain string `json:"CertificateChain,omitempty"`
}

func (a *ACM) getCertificate(c *api.Call) (any, error) {
	var in certificateARNInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cert, err := a.lookup(c.Account, c.Region, in.CertificateArn)
	if err != nil {
		return nil, err
	}
	return getCertificateOutput{Certificate: cert.CertPEM, CertificateChain: cert.ChainPEM}, nil
}

// --- DeleteCertificate ---

func (a *ACM) deleteCertificate(c *api.Call) (any, error) {
	var in certificateARNInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cert, err := a.lookup(c.Account, c.Region, in.CertificateArn)
	if err != nil {
		return nil, err
	}
	if len(cert.InUseBy) > 0 {
		return nil, acmError(codeResourceInUse, "Certificate %s is in use by %s.", cert.ARN, strings.Join(cert.InUseBy, ", "))
	}
	delete(a.regions[acmRegionKey{c.Account, c.Region}].certs, cert.ARN)
	return nil, nil
}

// --- ImportCertificate ---

type importCertificateInput struct {
	Certificate      []byte
	PrivateKey       []byte
	CertificateChain []byte
	CertificateArn   *string
	Tags             []tagInput
}

func errImport(format string, args ...any) *api.Error {
	return acmError(codeValidation, format, args...)
}

// pemCertificates parses every CERTIFICATE block of data; ok is false when a
// block does not parse or there is none.
func pemCertificates(data []byte) (certs []*x509.Certificate, ok bool) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs, len(certs) > 0
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, false
		}
		certs = append(certs, c)
	}
}

// importedCertificate checks what ImportCertificate was given as ACM does and
// returns the parsed certificate and its key algorithm.
func importedCertificate(in *importCertificateInput, now time.Time) (*x509.Certificate, string, error) {
	certs, ok := pemCertificates(in.Certificate)
	switch {
	case !ok:
		return nil, "", errImport("Unable to parse certificate. Please ensure the certificate is in PEM format.")
	case len(certs) > 1:
		return nil, "", errImport("The certificate field contains more than one certificate. You can specify only one certificate in this field.")
	}
	leaf := certs[0]
	key, err := parsePrivateKeyPEM(in.PrivateKey)
	if err != nil {
		return nil, "", errImport("The private key is not PEM-encoded or is not valid. Provide an unencrypted private key in PEM format (PKCS#8, PKCS#1 or SEC 1).")
	}
	alg := keyAlgorithmOf(key.Public())
	if alg == "" {
		return nil, "", errImport("The private key is not supported. Only RSA 1024-bit, 2048-bit, 3072-bit and 4096-bit and EC prime256v1, secp384r1 and secp521r1 keys are allowed.")
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, "", errImport("The private key does not match the public key in the certificate.")
	}
	if now.Before(leaf.NotBefore) {
		return nil, "", errImport("The certificate is not in effect yet, is not valid.")
	}
	if now.After(leaf.NotAfter) {
		return nil, "", errImport("The certificate has expired, is not valid.")
	}
	if in.CertificateChain == nil {
		selfSigned := bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
			leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
		if !selfSigned {
			return nil, "", errImport("Provided certificate is not a valid self signed. Please provide either a valid self-signed certificate or certificate chain.")
		}
		return leaf, alg, nil
	}
	chain, ok := pemCertificates(in.CertificateChain)
	if !ok {
		return nil, "", errImport("Unable to parse certificate chain. Please ensure the certificate chain is in PEM format.")
	}
	pool := x509.NewCertPool()
	for _, c := range chain {
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, "", errImport("Could not validate the certificate with the certificate chain.")
	}
	return leaf, alg, nil
}

func (a *ACM) importCertificate(c *api.Call) (any, error) {
	var in importCertificateInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	leaf, alg, err := importedCertificate(&in, c.Now)
	if err != nil {
		return nil, err
	}
	tags, err := readTags(in.Tags)
	if err != nil {
		return nil, err
	}
	keyPEM, err := normalizeKeyPEM(in.PrivateKey)
	if err != nil {
		return nil, api.InternalFailure(err.Error())
	}
	domain, sans := certDomains(leaf)
	chainPEM := ""
	if in.CertificateChain != nil {
		chainPEM = string(in.CertificateChain)
	}
	now := c.Now
	a.mu.Lock()
	defer a.mu.Unlock()
	var cert *certificate
	if in.CertificateArn != nil {
		if cert, err = a.lookup(c.Account, c.Region, *in.CertificateArn); err != nil {
			return nil, err
		}
		if cert.Type != TypeImported {
			return nil, errImport("Certificate %s was issued by ACM; only an imported certificate can be reimported.", cert.ARN)
		}
		if len(tags) > 0 {
			return nil, errImport("Tags cannot be specified when you reimport a certificate.")
		}
	} else {
		if len(mergeTags(nil, tags)) > maxTags {
			return nil, errTooManyTags()
		}
		cert = &certificate{
			ARN:     certificateARN(c.Account, c.Region, uuid.NewString()),
			Type:    TypeImported,
			Created: now,
			Tags:    mergeTags(nil, tags),
		}
		a.region(c.Account, c.Region).certs[cert.ARN] = cert
	}
	cert.DomainName, cert.SANs, cert.KeyAlgorithm = domain, sans, alg
	cert.CertPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
	cert.ChainPEM, cert.KeyPEM = chainPEM, string(keyPEM)
	cert.Imported = &now
	cert.leaf, cert.tls = leaf, nil
	return certificateARNOutput{CertificateArn: cert.ARN}, nil
}

// normalizeKeyPEM re-encodes the first private key of data as unencrypted
// PKCS#8 PEM, the one form the state keeps.
func normalizeKeyPEM(data []byte) ([]byte, error) {
	key, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, err
	}
	return marshalPrivateKeyPEM(key)
}

// --- ExportCertificate ---

type exportCertificateInput struct {
	CertificateArn string
	Passphrase     []byte
}

type exportCertificateOutput struct {
	Certificate      string `json:"Certificate"`
	CertificateChain string `json:"CertificateChain,omitempty"`
	PrivateKey       string `json:"PrivateKey"`
}

// exportCertificate hands out the key of private certificates and of
// certificates requested with Options.Export ENABLED, encrypted under the
// passphrase as PKCS#8 (PBES2, AES-256-CBC). Imported certificates cannot be
// exported, as in ACM.
func (a *ACM) exportCertificate(c *api.Call) (any, error) {
	var in exportCertificateInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	for _, b := range in.Passphrase {
		if b < 0x20 || b > 0x7e || b == '#' || b == '$' || b == '%' {
			return nil, acmError(codeValidation, "The passphrase can contain only printable ASCII characters other than #, $ and %%.")
		}
	}
	a.mu.Lock()
	cert, err := a.lookup(c.Account, c.Region, in.CertificateArn)
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	if !cert.exportable() {
		a.mu.Unlock()
		return nil, acmError(codeValidation, "Certificate ARN: %s is not a private certificate and was not requested with export enabled.", cert.ARN)
	}
	out := exportCertificateOutput{Certificate: cert.CertPEM, CertificateChain: cert.ChainPEM}
	keyPEM := cert.KeyPEM
	a.mu.Unlock()

	// PBKDF2 is deliberately slow: it runs without the lock.
	enc, err := EncryptPrivateKeyPEM([]byte(keyPEM), in.Passphrase)
	if err != nil {
		return nil, api.InternalFailure(err.Error())
	}
	out.PrivateKey = string(enc)
	a.mu.Lock()
	cert.Exported = true
	a.mu.Unlock()
	return out, nil
}
