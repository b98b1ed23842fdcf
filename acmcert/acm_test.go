package acmcert_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/acm"
	"github.com/aws/aws-sdk-go-v2/service/acm/types"
	"github.com/aws/smithy-go"

	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/api"
	"github.com/rdslocal/rdslocal/testsuite"
)

const (
	region  = "us-east-1"
	account = "000000000000"
	pcaARN  = "arn:aws:acm-pca:us-east-1:000000000000:certificate-authority/12345678-1234-1234-1234-123456789012"
)

var arnRE = regexp.MustCompile(`^arn:aws:acm:us-east-1:000000000000:certificate/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// newClient starts an emulator and returns an ACM client of the real SDK for
// it.
func newClient(t *testing.T, opts ...testsuite.Option) (*acm.Client, *testsuite.Emulator) {
	t.Helper()
	// ACM needs no database servers.
	emu := testsuite.Start(t, append([]testsuite.Option{testsuite.WithDBBackend("none")}, opts...)...)
	return clientFor(emu.AWSConfig), emu
}

func clientFor(cfg aws.Config) *acm.Client {
	return acm.NewFromConfig(cfg, func(o *acm.Options) { o.RetryMaxAttempts = 1 })
}

// standalone serves a on its own, as the gateway would for account and
// region, so a test can reach the ACM value itself (SetInUse,
// TLSCertificate, Snapshot) while driving it with the SDK.
func standalone(t *testing.T, a *acmcert.ACM) *acm.Client {
	t.Helper()
	svc := a.Service()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "CertificateManager.")
		in, err := svc.Model.DecodeJSON(action, body)
		if err == nil {
			c := api.NewCall(r.Context(), in)
			c.Service, c.Action, c.Account, c.Region, c.RequestID = "acm", action, account, region, "req-1"
			var out any
			if out, err = svc.Handlers[action](c); err == nil {
				api.WriteJSONResult(w, "req-1", out)
				return
			}
		}
		api.WriteJSONError(w, "req-1", api.AsError(err))
	}))
	t.Cleanup(ts.Close)
	return clientFor(testsuite.Config(ts.URL, "test", "test"))
}

func newCA(t *testing.T) *acmcert.CA {
	t.Helper()
	ca, err := acmcert.LoadOrCreateCA("")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// wantErr checks that err is the SDK's typed error E, HTTP 400, whose
// message contains msg.
func wantErr[E smithy.APIError](t *testing.T, err error, msg string) E {
	t.Helper()
	var e E
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want %T", err, e)
	}
	if !strings.Contains(e.ErrorMessage(), msg) {
		t.Fatalf("message = %q, want it to contain %q", e.ErrorMessage(), msg)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Fatalf("error %v: want HTTP 400", err)
	}
	return e
}

// checkErr dispatches on an error code to wantErr with the SDK's type.
func checkErr(t *testing.T, err error, code, msg string) {
	t.Helper()
	switch code {
	case "ResourceNotFoundException":
		wantErr[*types.ResourceNotFoundException](t, err, msg)
	case "InvalidArnException":
		wantErr[*types.InvalidArnException](t, err, msg)
	case "ValidationException":
		wantErr[*types.ValidationException](t, err, msg)
	case "InvalidParameterException":
		wantErr[*types.InvalidParameterException](t, err, msg)
	case "InvalidArgsException":
		wantErr[*types.InvalidArgsException](t, err, msg)
	case "ResourceInUseException":
		wantErr[*types.ResourceInUseException](t, err, msg)
	case "InvalidTagException":
		wantErr[*types.InvalidTagException](t, err, msg)
	case "TooManyTagsException":
		wantErr[*types.TooManyTagsException](t, err, msg)
	case "LimitExceededException":
		wantErr[*types.LimitExceededException](t, err, msg)
	case "InvalidDomainValidationOptionsException":
		wantErr[*types.InvalidDomainValidationOptionsException](t, err, msg)
	default:
		t.Fatalf("checkErr: no case for %s", code)
	}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// request asks for a certificate (EC_prime256v1 unless opts say otherwise:
// RSA keys are slow to generate under -race) and returns its ARN.
func request(t *testing.T, c *acm.Client, domain string, opts ...func(*acm.RequestCertificateInput)) string {
	t.Helper()
	in := &acm.RequestCertificateInput{DomainName: aws.String(domain), KeyAlgorithm: types.KeyAlgorithmEcPrime256v1}
	for _, o := range opts {
		o(in)
	}
	out, err := c.RequestCertificate(context.Background(), in)
	if err != nil {
		t.Fatalf("RequestCertificate %s: %v", domain, err)
	}
	return aws.ToString(out.CertificateArn)
}

func describe(t *testing.T, c *acm.Client, arn string) *types.CertificateDetail {
	t.Helper()
	out, err := c.DescribeCertificate(context.Background(), &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	if err != nil {
		t.Fatalf("DescribeCertificate %s: %v", arn, err)
	}
	return out.Certificate
}

func parsePEMCert(t *testing.T, s string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", s)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certSpec describes a certificate made by the tests for ImportCertificate.
type certSpec struct {
	cn        string
	dns       []string
	notBefore time.Time
	notAfter  time.Time
	isCA      bool
	eku       []x509.ExtKeyUsage
	ku        x509.KeyUsage
	key       crypto.Signer     // default: a new EC P-256 key
	parent    *x509.Certificate // default: self-signed
	parentKey crypto.Signer
}

type madeCert struct {
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
	key     crypto.Signer
}

func makeCert(t *testing.T, s certSpec) madeCert {
	t.Helper()
	if s.key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.key = k
	}
	if s.notBefore.IsZero() {
		s.notBefore = time.Now().Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.cn, Organization: []string{"Test Org"}},
		DNSNames:              s.dns,
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              s.ku,
		ExtKeyUsage:           s.eku,
		BasicConstraintsValid: s.isCA,
		IsCA:                  s.isCA,
	}
	parent, parentKey := tmpl, s.key
	if s.parent != nil {
		parent, parentKey = s.parent, s.parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, s.key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return madeCert{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		key:     s.key,
	}
}

func importCert(t *testing.T, c *acm.Client, m madeCert, opts ...func(*acm.ImportCertificateInput)) string {
	t.Helper()
	in := &acm.ImportCertificateInput{Certificate: m.certPEM, PrivateKey: m.keyPEM}
	for _, o := range opts {
		o(in)
	}
	out, err := c.ImportCertificate(context.Background(), in)
	if err != nil {
		t.Fatalf("ImportCertificate: %v", err)
	}
	return aws.ToString(out.CertificateArn)
}

// decryptWithOpenSSL decrypts an exported key with `openssl pkcs8`, skipping
// the test without openssl.
func decryptWithOpenSSL(t *testing.T, encPEM, passphrase string) crypto.Signer {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed: skipping the decryption check")
	}
	in := filepath.Join(t.TempDir(), "enc.pem")
	if err := os.WriteFile(in, []byte(encPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "pkcs8", "-in", in, "-passin", "pass:"+passphrase).Output()
	if err != nil {
		t.Fatalf("openssl pkcs8: %v", err)
	}
	block, _ := pem.Decode(out)
	if block == nil {
		t.Fatalf("openssl pkcs8 printed no PEM: %s", out)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("decrypted key: %v", err)
	}
	return key.(crypto.Signer)
}

func samePublicKey(t *testing.T, key crypto.Signer, cert *x509.Certificate) {
	t.Helper()
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		t.Fatal("private key does not belong to the certificate")
	}
}

func TestRequestCertificate(t *testing.T) {
	ctx := context.Background()
	c, emu := newClient(t)
	roots := emu.Server.CA().CertPool()
	tests := []struct {
		name     string
		in       acm.RequestCertificateInput
		keyAlg   string // as DescribeCertificate spells it
		pubCheck func(pub any) bool
		method   types.ValidationMethod
	}{
		{
			name: "default RSA_2048, email validation",
			in: acm.RequestCertificateInput{DomainName: aws.String("www.example.com"),
				SubjectAlternativeNames: []string{"example.com", "WWW.example.com"}},
			keyAlg:   "RSA-2048",
			pubCheck: func(p any) bool { k, ok := p.(*rsa.PublicKey); return ok && k.N.BitLen() == 2048 },
			method:   types.ValidationMethodEmail,
		},
		{
			name: "EC_prime256v1, DNS validation, wildcard",
			in: acm.RequestCertificateInput{DomainName: aws.String("*.db.example.org"), KeyAlgorithm: types.KeyAlgorithmEcPrime256v1,
				ValidationMethod: types.ValidationMethodDns, SubjectAlternativeNames: []string{"db.example.org"}},
			keyAlg:   "EC-prime256v1",
			pubCheck: func(p any) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P256() },
			method:   types.ValidationMethodDns,
		},
		{
			name:     "EC_secp384r1",
			in:       acm.RequestCertificateInput{DomainName: aws.String("p384.example.net"), KeyAlgorithm: types.KeyAlgorithmEcSecp384r1, ValidationMethod: types.ValidationMethodDns},
			keyAlg:   "EC-secp384r1",
			pubCheck: func(p any) bool { k, ok := p.(*ecdsa.PublicKey); return ok && k.Curve == elliptic.P384() },
			method:   types.ValidationMethodDns,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().Add(-time.Second)
			out := must[*acm.RequestCertificateOutput](t)(c.RequestCertificate(ctx, &tt.in))
			arn := aws.ToString(out.CertificateArn)
			if !arnRE.MatchString(arn) {
				t.Fatalf("ARN %q", arn)
			}
			d := describe(t, c, arn)
			domain := aws.ToString(tt.in.DomainName)
			wantSANs := []string{domain}
			for _, s := range tt.in.SubjectAlternativeNames {
				if !slices.ContainsFunc(wantSANs, func(x string) bool { return strings.EqualFold(x, s) }) {
					wantSANs = append(wantSANs, s)
				}
			}
			if aws.ToString(d.CertificateArn) != arn || aws.ToString(d.DomainName) != domain || !slices.Equal(d.SubjectAlternativeNames, wantSANs) {
				t.Errorf("ARN %q DomainName %q SANs %v, want %v", aws.ToString(d.CertificateArn), aws.ToString(d.DomainName), d.SubjectAlternativeNames, wantSANs)
			}
			if d.Status != types.CertificateStatusIssued || d.Type != types.CertificateTypeAmazonIssued || string(d.KeyAlgorithm) != tt.keyAlg {
				t.Errorf("Status %s Type %s KeyAlgorithm %s", d.Status, d.Type, d.KeyAlgorithm)
			}
			if aws.ToString(d.Issuer) != acmcert.CASubject || aws.ToString(d.SignatureAlgorithm) != "SHA256WITHECDSA" ||
				aws.ToString(d.Subject) != "CN="+domain || !regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2})+$`).MatchString(aws.ToString(d.Serial)) {
				t.Errorf("Issuer %q SignatureAlgorithm %q Subject %q Serial %q", aws.ToString(d.Issuer), aws.ToString(d.SignatureAlgorithm), aws.ToString(d.Subject), aws.ToString(d.Serial))
			}
			if d.CreatedAt == nil || d.CreatedAt.Before(before) || d.IssuedAt == nil || d.ImportedAt != nil {
				t.Errorf("CreatedAt %v IssuedAt %v ImportedAt %v", d.CreatedAt, d.IssuedAt, d.ImportedAt)
			}
			if d.NotBefore == nil || d.NotAfter == nil || d.NotAfter.Sub(*d.NotBefore) < 395*24*time.Hour {
				t.Errorf("NotBefore %v NotAfter %v", d.NotBefore, d.NotAfter)
			}
			if d.InUseBy == nil || len(d.InUseBy) != 0 || d.RenewalEligibility != types.RenewalEligibilityIneligible {
				t.Errorf("InUseBy %v RenewalEligibility %s", d.InUseBy, d.RenewalEligibility)
			}
			var ekus []string
			for _, e := range d.ExtendedKeyUsages {
				ekus = append(ekus, string(e.Name)+"="+aws.ToString(e.OID))
			}
			if !slices.Equal(ekus, []string{"TLS_WEB_SERVER_AUTHENTICATION=1.3.6.1.5.5.7.3.1", "TLS_WEB_CLIENT_AUTHENTICATION=1.3.6.1.5.5.7.3.2"}) {
				t.Errorf("ExtendedKeyUsages %v", ekus)
			}
			if len(d.KeyUsages) == 0 || d.KeyUsages[0].Name != types.KeyUsageNameDigitalSignature {
				t.Errorf("KeyUsages %v", d.KeyUsages)
			}
			if d.Options == nil || d.Options.Export != types.CertificateExportDisabled {
				t.Errorf("Options %+v", d.Options)
			}
			if len(d.DomainValidationOptions) != len(wantSANs) {
				t.Fatalf("DomainValidationOptions %+v", d.DomainValidationOptions)
			}
			for i, dv := range d.DomainValidationOptions {
				if aws.ToString(dv.DomainName) != wantSANs[i] || dv.ValidationStatus != types.DomainStatusSuccess || dv.ValidationMethod != tt.method {
					t.Errorf("validation %d: %+v", i, dv)
				}
				base := strings.TrimPrefix(wantSANs[i], "*.")
				switch tt.method {
				case types.ValidationMethodDns:
					rr := dv.ResourceRecord
					if rr == nil || rr.Type != types.RecordTypeCname ||
						!regexp.MustCompile(`^_[0-9a-f]{32}\.`+regexp.QuoteMeta(strings.ToLower(base))+`\.$`).MatchString(aws.ToString(rr.Name)) ||
						!regexp.MustCompile(`^_[0-9a-f]{32}\.[a-z]{10}\.acm-validations\.aws\.$`).MatchString(aws.ToString(rr.Value)) {
						t.Errorf("ResourceRecord %+v", rr)
					}
				case types.ValidationMethodEmail:
					if aws.ToString(dv.ValidationDomain) != base || !slices.Contains(dv.ValidationEmails, "admin@"+base) {
						t.Errorf("ValidationDomain %q ValidationEmails %v", aws.ToString(dv.ValidationDomain), dv.ValidationEmails)
					}
				}
			}
			// The SDK's waiter sees a validated certificate at once.
			if err := acm.NewCertificateValidatedWaiter(c).Wait(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)}, time.Minute); err != nil {
				t.Errorf("CertificateValidated waiter: %v", err)
			}

			got := must[*acm.GetCertificateOutput](t)(c.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(arn)}))
			if aws.ToString(got.CertificateChain) != string(emu.Server.CA().CertPEM()) {
				t.Errorf("CertificateChain is not the CA certificate")
			}
			leaf := parsePEMCert(t, aws.ToString(got.Certificate))
			if !tt.pubCheck(leaf.PublicKey) {
				t.Errorf("public key %T does not fit %s", leaf.PublicKey, tt.keyAlg)
			}
			for _, name := range append(wantSANs, "other.example.com") {
				host := strings.Replace(name, "*", "anything", 1)
				_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host})
				if wantOK := name != "other.example.com"; (err == nil) != wantOK {
					t.Errorf("Verify(%s) = %v, want ok=%v", host, err, wantOK)
				}
			}
		})
	}
}

func TestRequestCertificateIdempotency(t *testing.T) {
	c, _ := newClient(t)
	first := request(t, c, "idem.example.com", func(in *acm.RequestCertificateInput) { in.IdempotencyToken = aws.String("tok1") })
	again := request(t, c, "idem.example.com", func(in *acm.RequestCertificateInput) { in.IdempotencyToken = aws.String("tok1") })
	if again != first {
		t.Fatalf("same token and domain: %s, want %s", again, first)
	}
	other := request(t, c, "other.example.com", func(in *acm.RequestCertificateInput) { in.IdempotencyToken = aws.String("tok1") })
	noToken := request(t, c, "idem.example.com")
	tok2 := request(t, c, "idem.example.com", func(in *acm.RequestCertificateInput) { in.IdempotencyToken = aws.String("tok2") })
	if len(slices.Compact(slices.Sorted(slices.Values([]string{first, other, noToken, tok2})))) != 4 {
		t.Fatalf("distinct requests share ARNs: %s %s %s %s", first, other, noToken, tok2)
	}
}

func TestRequestCertificateErrors(t *testing.T) {
	c, _ := newClient(t)
	many := make([]string, 10)
	for i := range many {
		many[i] = fmt.Sprintf("san%d.example.com", i)
	}
	tests := []struct {
		name string
		in   acm.RequestCertificateInput
		code string
		msg  string
	}{
		{"single-label domain", acm.RequestCertificateInput{DomainName: aws.String("localhost")}, "ValidationException", "at 'domainName' failed to satisfy constraint: Member must satisfy regular expression pattern"},
		{"label starts with hyphen", acm.RequestCertificateInput{DomainName: aws.String("-bad.example.com")}, "ValidationException", "Value '-bad.example.com' at 'domainName'"},
		{"IP address", acm.RequestCertificateInput{DomainName: aws.String("127.0.0.1")}, "ValidationException", "domainName"},
		{"bad SAN", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), SubjectAlternativeNames: []string{"fine.example.com", "bad_name.example.com"}}, "ValidationException", "at 'subjectAlternativeNames.2.member'"},
		{"too many names", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), SubjectAlternativeNames: many}, "LimitExceededException", "An ACM limit has been exceeded"},
		{"RSA_4096 public", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), KeyAlgorithm: types.KeyAlgorithmRsa4096}, "ValidationException", "Encryption Algorithm RSA_4096 is not supported in 000000000000 region"},
		{"EC_secp521r1 public", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), KeyAlgorithm: types.KeyAlgorithmEcSecp521r1}, "ValidationException", "Encryption Algorithm EC_secp521r1 is not supported in us-east-1 region"},
		{"RSA_1024 private", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), KeyAlgorithm: types.KeyAlgorithmRsa1024, CertificateAuthorityArn: aws.String(pcaARN)}, "ValidationException", "Encryption Algorithm RSA_1024 is not supported"},
		{"token with a hyphen", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), IdempotencyToken: aws.String("not-word")}, "ValidationException", "at 'idempotencyToken'"},
		{"reserved tag key", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), Tags: []types.Tag{{Key: aws.String("aws:owner"), Value: aws.String("x")}}}, "InvalidTagException", "aws:"},
		{"tag key pattern", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), Tags: []types.Tag{{Key: aws.String("bad*key")}}}, "ValidationException", "at 'tags.1.member.key'"},
		{"validation option for another domain", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"),
			DomainValidationOptions: []types.DomainValidationOption{{DomainName: aws.String("else.example.com"), ValidationDomain: aws.String("example.com")}}}, "InvalidDomainValidationOptionsException", "else.example.com"},
		{"validation domain not a superdomain", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"),
			DomainValidationOptions: []types.DomainValidationOption{{DomainName: aws.String("ok.example.com"), ValidationDomain: aws.String("example.org")}}}, "InvalidDomainValidationOptionsException", "example.org"},
		{"CA ARN of another service", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), CertificateAuthorityArn: aws.String("arn:aws:acm:us-east-1:000000000000:certificate/abc")}, "ValidationException", "certificateAuthorityArn"},
		{"CA ARN without a CA", acm.RequestCertificateInput{DomainName: aws.String("ok.example.com"), CertificateAuthorityArn: aws.String("arn:aws:acm-pca:us-east-1:000000000000:template/x")}, "InvalidArnException", "template/x"},
		{"missing domain", acm.RequestCertificateInput{DomainName: aws.String("")}, "ValidationException", "domainName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.RequestCertificate(context.Background(), &tt.in)
			checkErr(t, err, tt.code, tt.msg)
		})
	}
	// Nothing was created.
	out := must[*acm.ListCertificatesOutput](t)(c.ListCertificates(context.Background(), &acm.ListCertificatesInput{
		Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{types.KeyAlgorithmRsa2048, types.KeyAlgorithmEcPrime256v1, types.KeyAlgorithmRsa1024}}}))
	if len(out.CertificateSummaryList) != 0 {
		t.Fatalf("failed requests left %d certificates", len(out.CertificateSummaryList))
	}
}

func TestPrivateCertificateExport(t *testing.T) {
	ctx := context.Background()
	c, emu := newClient(t)
	arn := request(t, c, "internal.corp.example", func(in *acm.RequestCertificateInput) {
		in.CertificateAuthorityArn = aws.String(pcaARN)
		in.KeyAlgorithm = types.KeyAlgorithmEcSecp521r1 // allowed for private certificates
	})
	d := describe(t, c, arn)
	if d.Type != types.CertificateTypePrivate || aws.ToString(d.CertificateAuthorityArn) != pcaARN ||
		d.DomainValidationOptions != nil || d.RenewalEligibility != types.RenewalEligibilityEligible || d.KeyAlgorithm != "EC-secp521r1" {
		t.Fatalf("private certificate: %+v", d)
	}
	const pass = "correct horse battery staple"
	out := must[*acm.ExportCertificateOutput](t)(c.ExportCertificate(ctx, &acm.ExportCertificateInput{CertificateArn: aws.String(arn), Passphrase: []byte(pass)}))
	if !strings.HasPrefix(aws.ToString(out.PrivateKey), "-----BEGIN ENCRYPTED PRIVATE KEY-----") ||
		aws.ToString(out.CertificateChain) != string(emu.Server.CA().CertPEM()) {
		t.Fatalf("ExportCertificate: %+v", out)
	}
	leaf := parsePEMCert(t, aws.ToString(out.Certificate))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: emu.Server.CA().CertPool(), DNSName: "internal.corp.example"}); err != nil {
		t.Fatal(err)
	}
	samePublicKey(t, decryptWithOpenSSL(t, aws.ToString(out.PrivateKey), pass), leaf)
}

func TestImportAndExport(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)

	// A self-signed certificate: no chain.
	self := makeCert(t, certSpec{cn: "self.example.com", dns: []string{"self.example.com", "alt.example.com"},
		ku: x509.KeyUsageDigitalSignature, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	before := time.Now().Add(-time.Second)
	arn := importCert(t, c, self, func(in *acm.ImportCertificateInput) {
		in.Tags = []types.Tag{{Key: aws.String("team"), Value: aws.String("db")}}
	})
	if !arnRE.MatchString(arn) {
		t.Fatalf("ARN %q", arn)
	}
	d := describe(t, c, arn)
	if d.Type != types.CertificateTypeImported || d.Status != types.CertificateStatusIssued || aws.ToString(d.DomainName) != "self.example.com" ||
		!slices.Equal(d.SubjectAlternativeNames, []string{"self.example.com", "alt.example.com"}) || d.KeyAlgorithm != "EC-prime256v1" ||
		aws.ToString(d.Issuer) != "self.example.com" || d.ImportedAt == nil || d.ImportedAt.Before(before) || d.IssuedAt != nil ||
		d.DomainValidationOptions != nil || d.RenewalEligibility != types.RenewalEligibilityIneligible {
		t.Fatalf("imported certificate: %+v", d)
	}
	if !d.NotAfter.Equal(self.cert.NotAfter) || aws.ToString(d.Subject) != "CN=self.example.com,O=Test Org" {
		t.Fatalf("NotAfter %v Subject %q", d.NotAfter, aws.ToString(d.Subject))
	}
	got := must[*acm.GetCertificateOutput](t)(c.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(arn)}))
	if aws.ToString(got.Certificate) != string(self.certPEM) || got.CertificateChain != nil {
		t.Fatalf("GetCertificate of a certificate imported without chain: %+v", got)
	}
	// Imported certificates cannot be exported, as in ACM.
	_, err := c.ExportCertificate(ctx, &acm.ExportCertificateInput{CertificateArn: aws.String(arn), Passphrase: []byte("passphrase")})
	wantErr[*types.ValidationException](t, err, "is not a private certificate")

	// A leaf signed by a CA, imported with its chain.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := makeCert(t, certSpec{cn: "Test Root", isCA: true, key: caKey, ku: x509.KeyUsageCertSign})
	leaf := makeCert(t, certSpec{cn: "chained.example.com", dns: []string{"chained.example.com"}, parent: root.cert, parentKey: caKey})
	carn := importCert(t, c, leaf, func(in *acm.ImportCertificateInput) { in.CertificateChain = root.certPEM })
	got = must[*acm.GetCertificateOutput](t)(c.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(carn)}))
	if aws.ToString(got.CertificateChain) != string(root.certPEM) || aws.ToString(describe(t, c, carn).Issuer) != "Test Root" {
		t.Fatalf("chain %q", aws.ToString(got.CertificateChain))
	}

	// Reimport onto the first ARN: same ARN, new certificate, tags kept.
	renewed := makeCert(t, certSpec{cn: "self.example.com", dns: []string{"self.example.com"}})
	if again := importCert(t, c, renewed, func(in *acm.ImportCertificateInput) { in.CertificateArn = aws.String(arn) }); again != arn {
		t.Fatalf("reimport ARN %s, want %s", again, arn)
	}
	d2 := describe(t, c, arn)
	if aws.ToString(d2.Serial) == aws.ToString(d.Serial) || !slices.Equal(d2.SubjectAlternativeNames, []string{"self.example.com"}) || !d2.CreatedAt.Equal(*d.CreatedAt) {
		t.Fatalf("after reimport: Serial %q SANs %v CreatedAt %v", aws.ToString(d2.Serial), d2.SubjectAlternativeNames, d2.CreatedAt)
	}
	tags := must[*acm.ListTagsForCertificateOutput](t)(c.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)}))
	if len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" {
		t.Fatalf("tags after reimport: %+v", tags.Tags)
	}

	// An Amazon-issued certificate requested with export enabled exports;
	// the key decrypts with openssl and belongs to the certificate.
	earn := request(t, c, "export.example.com", func(in *acm.RequestCertificateInput) {
		in.Options = &types.CertificateOptions{Export: types.CertificateExportEnabled}
	})
	const pass = "s3cret-pass!"
	out := must[*acm.ExportCertificateOutput](t)(c.ExportCertificate(ctx, &acm.ExportCertificateInput{CertificateArn: aws.String(earn), Passphrase: []byte(pass)}))
	if ed := describe(t, c, earn); ed.RenewalEligibility != types.RenewalEligibilityEligible || ed.Options.Export != types.CertificateExportEnabled {
		t.Fatalf("after export: RenewalEligibility %s Options %+v", ed.RenewalEligibility, ed.Options)
	}
	exported := parsePEMCert(t, aws.ToString(out.Certificate))

	// Import what was exported (the round trip): the decrypted key matches.
	key := decryptWithOpenSSL(t, aws.ToString(out.PrivateKey), pass)
	samePublicKey(t, key, exported)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	rarn := importCert(t, c, madeCert{certPEM: []byte(aws.ToString(out.Certificate)), keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
		func(in *acm.ImportCertificateInput) { in.CertificateChain = []byte(aws.ToString(out.CertificateChain)) })
	if rd := describe(t, c, rarn); aws.ToString(rd.Serial) != aws.ToString(describe(t, c, earn).Serial) || rd.Type != types.CertificateTypeImported {
		t.Fatalf("re-imported export: %+v", rd)
	}
}

func TestImportCertificateErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	good := makeCert(t, certSpec{cn: "good.example.com", dns: []string{"good.example.com"}})
	other := makeCert(t, certSpec{cn: "other.example.com"})
	expired := makeCert(t, certSpec{cn: "old.example.com", notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)})
	future := makeCert(t, certSpec{cn: "new.example.com", notBefore: time.Now().Add(24 * time.Hour)})
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := makeCert(t, certSpec{cn: "Root", isCA: true, key: caKey, ku: x509.KeyUsageCertSign})
	signed := makeCert(t, certSpec{cn: "signed.example.com", parent: root.cert, parentKey: caKey})
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ed := makeCert(t, certSpec{cn: "ed.example.com", key: edKey})
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})
	issued := request(t, c, "issued.example.com")

	tests := []struct {
		name string
		in   acm.ImportCertificateInput
		code string
		msg  string
	}{
		{"certificate not PEM", acm.ImportCertificateInput{Certificate: []byte("garbage"), PrivateKey: good.keyPEM}, "ValidationException", "Unable to parse certificate"},
		{"two certificates", acm.ImportCertificateInput{Certificate: append(slices.Clone(good.certPEM), other.certPEM...), PrivateKey: good.keyPEM}, "ValidationException", "more than one certificate"},
		{"key not PEM", acm.ImportCertificateInput{Certificate: good.certPEM, PrivateKey: []byte("garbage")}, "ValidationException", "private key is not PEM-encoded"},
		{"encrypted key", acm.ImportCertificateInput{Certificate: good.certPEM, PrivateKey: encrypted}, "ValidationException", "private key is not PEM-encoded"},
		{"key of another certificate", acm.ImportCertificateInput{Certificate: good.certPEM, PrivateKey: other.keyPEM}, "ValidationException", "does not match"},
		{"Ed25519 key", acm.ImportCertificateInput{Certificate: ed.certPEM, PrivateKey: ed.keyPEM}, "ValidationException", "private key is not supported"},
		{"expired", acm.ImportCertificateInput{Certificate: expired.certPEM, PrivateKey: expired.keyPEM}, "ValidationException", "expired"},
		{"not yet valid", acm.ImportCertificateInput{Certificate: future.certPEM, PrivateKey: future.keyPEM}, "ValidationException", "not in effect yet"},
		{"not self-signed, no chain", acm.ImportCertificateInput{Certificate: signed.certPEM, PrivateKey: signed.keyPEM}, "ValidationException", "not a valid self signed"},
		{"chain that does not sign it", acm.ImportCertificateInput{Certificate: signed.certPEM, PrivateKey: signed.keyPEM, CertificateChain: other.certPEM}, "ValidationException", "Could not validate the certificate with the certificate chain"},
		{"chain not PEM", acm.ImportCertificateInput{Certificate: signed.certPEM, PrivateKey: signed.keyPEM, CertificateChain: []byte("garbage")}, "ValidationException", "certificate chain"},
		{"reimport onto a missing ARN", acm.ImportCertificateInput{Certificate: good.certPEM, PrivateKey: good.keyPEM,
			CertificateArn: aws.String("arn:aws:acm:us-east-1:000000000000:certificate/00000000-0000-0000-0000-000000000000")}, "ResourceNotFoundException", "Could not find certificate"},
		{"reimport onto an issued certificate", acm.ImportCertificateInput{Certificate: good.certPEM, PrivateKey: good.keyPEM, CertificateArn: aws.String(issued)}, "ValidationException", "only an imported certificate can be reimported"},
		{"reserved tag", acm.ImportCertificateInput{Certificate: good.certPEM, PrivateKey: good.keyPEM, Tags: []types.Tag{{Key: aws.String("aws:x")}}}, "InvalidTagException", "aws:"},
		{"empty certificate", acm.ImportCertificateInput{Certificate: []byte{}, PrivateKey: good.keyPEM}, "ValidationException", "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ImportCertificate(ctx, &tt.in)
			checkErr(t, err, tt.code, tt.msg)
		})
	}
	// Reimport cannot carry tags.
	arn := importCert(t, c, good)
	_, err := c.ImportCertificate(ctx, &acm.ImportCertificateInput{Certificate: good.certPEM, PrivateKey: good.keyPEM, CertificateArn: aws.String(arn),
		Tags: []types.Tag{{Key: aws.String("k")}}})
	wantErr[*types.ValidationException](t, err, "Tags cannot be specified")
}

func TestExportCertificateErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	plain := request(t, c, "plain.example.com")
	exportable := request(t, c, "exp.example.com", func(in *acm.RequestCertificateInput) {
		in.Options = &types.CertificateOptions{Export: types.CertificateExportEnabled}
	})
	tests := []struct {
		name string
		arn  string
		pass []byte
		code string
		msg  string
	}{
		{"export not enabled", plain, []byte("passphrase"), "ValidationException", "is not a private certificate"},
		{"passphrase too short", exportable, []byte("abc"), "ValidationException", "Member must have length greater than or equal to 4"},
		{"passphrase too long", exportable, bytes.Repeat([]byte("a"), 129), "ValidationException", "less than or equal to 128"},
		{"passphrase with #", exportable, []byte("pass#word"), "ValidationException", "other than #, $ and %"},
		{"passphrase with a newline", exportable, []byte("pass\nword"), "ValidationException", "printable ASCII"},
		{"missing certificate", "arn:aws:acm:us-east-1:000000000000:certificate/00000000-0000-0000-0000-000000000000", []byte("passphrase"), "ResourceNotFoundException", "Could not find certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ExportCertificate(ctx, &acm.ExportCertificateInput{CertificateArn: aws.String(tt.arn), Passphrase: tt.pass})
			checkErr(t, err, tt.code, tt.msg)
		})
	}
}

func TestARNErrors(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	arn := request(t, c, "arn.example.com")
	missing := "arn:aws:acm:us-east-1:000000000000:certificate/00000000-0000-0000-0000-000000000000"
	actions := map[string]func(arn string) error{
		"DescribeCertificate": func(a string) error {
			_, err := c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(a)})
			return err
		},
		"GetCertificate": func(a string) error {
			_, err := c.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(a)})
			return err
		},
		"DeleteCertificate": func(a string) error {
			_, err := c.DeleteCertificate(ctx, &acm.DeleteCertificateInput{CertificateArn: aws.String(a)})
			return err
		},
		"ListTagsForCertificate": func(a string) error {
			_, err := c.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(a)})
			return err
		},
		"AddTagsToCertificate": func(a string) error {
			_, err := c.AddTagsToCertificate(ctx, &acm.AddTagsToCertificateInput{CertificateArn: aws.String(a), Tags: []types.Tag{{Key: aws.String("k")}}})
			return err
		},
		"RemoveTagsFromCertificate": func(a string) error {
			_, err := c.RemoveTagsFromCertificate(ctx, &acm.RemoveTagsFromCertificateInput{CertificateArn: aws.String(a), Tags: []types.Tag{{Key: aws.String("k")}}})
			return err
		},
		"ExportCertificate": func(a string) error {
			_, err := c.ExportCertificate(ctx, &acm.ExportCertificateInput{CertificateArn: aws.String(a), Passphrase: []byte("passphrase")})
			return err
		},
	}
	cases := []struct {
		name string
		arn  string
		code string
		msg  string
	}{
		{"not an ARN", "this-is-not-an-arn-at-all", "ValidationException", "Member must satisfy regular expression pattern"},
		{"ARN of another service", "arn:aws:rds:us-east-1:000000000000:db:mydb", "ValidationException", "certificateArn"},
		{"not a certificate", "arn:aws:acm:us-east-1:000000000000:key/abc", "InvalidArnException", "is not a valid certificate ARN"},
		{"short account", "arn:aws:acm:us-east-1:1234:certificate/abc", "InvalidArnException", "is not a valid certificate ARN"},
		{"unknown partition", "arn:nope:acm:us-east-1:000000000000:certificate/abc", "InvalidArnException", "is not a valid certificate ARN"},
		{"missing", missing, "ResourceNotFoundException", "Could not find certificate with arn " + missing},
		{"other region", strings.Replace(arn, region, "eu-west-1", 1), "ResourceNotFoundException", "Could not find certificate"},
		{"other account", strings.Replace(arn, account, "111111111111", 1), "ResourceNotFoundException", "Could not find certificate"},
	}
	for name, call := range actions {
		for _, tt := range cases {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				checkErr(t, call(tt.arn), tt.code, tt.msg)
			})
		}
	}
}

func TestDeleteCertificateInUse(t *testing.T) {
	ctx := context.Background()
	a := acmcert.NewACM(newCA(t))
	c := standalone(t, a)
	arn := request(t, c, "inuse.example.com")
	users := []string{"arn:aws:rds:us-east-1:000000000000:db-proxy:prx-0123456789abcdef0", "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/x/1"}
	if err := a.SetInUse(arn, users); err != nil {
		t.Fatal(err)
	}
	if users[0] != "arn:aws:rds:us-east-1:000000000000:db-proxy:prx-0123456789abcdef0" {
		t.Fatal("SetInUse reordered the caller's slice")
	}
	d := describe(t, c, arn)
	if !slices.Equal(d.InUseBy, slices.Sorted(slices.Values(users))) || d.RenewalEligibility != types.RenewalEligibilityEligible {
		t.Fatalf("InUseBy %v RenewalEligibility %s", d.InUseBy, d.RenewalEligibility)
	}
	list := must[*acm.ListCertificatesOutput](t)(c.ListCertificates(ctx, &acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{types.KeyAlgorithmEcPrime256v1}}}))
	if len(list.CertificateSummaryList) != 1 || !aws.ToBool(list.CertificateSummaryList[0].InUse) {
		t.Fatalf("summary %+v", list.CertificateSummaryList)
	}
	_, err := c.DeleteCertificate(ctx, &acm.DeleteCertificateInput{CertificateArn: aws.String(arn)})
	wantErr[*types.ResourceInUseException](t, err, "is in use by "+users[1]+", "+users[0])

	if err := a.RemoveInUse(arn, users[0]); err != nil {
		t.Fatal(err)
	}
	if err := a.AddInUse(arn, users[0]); err != nil {
		t.Fatal(err)
	}
	if got := describe(t, c, arn).InUseBy; len(got) != 2 {
		t.Fatalf("InUseBy after remove and add: %v", got)
	}
	if err := a.SetInUse(arn, nil); err != nil {
		t.Fatal(err)
	}
	must[*acm.DeleteCertificateOutput](t)(c.DeleteCertificate(ctx, &acm.DeleteCertificateInput{CertificateArn: aws.String(arn)}))
	_, err = c.DescribeCertificate(ctx, &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	wantErr[*types.ResourceNotFoundException](t, err, "Could not find certificate")

	// The proxy-side API reports ACM's errors.
	var e *api.Error
	if err := a.SetInUse(arn, users); !errors.As(err, &e) || e.Code != "ResourceNotFoundException" {
		t.Fatalf("SetInUse on a deleted certificate: %v", err)
	}
	if err := a.SetInUse("bogus", users); !errors.As(err, &e) || e.Code != "ValidationException" {
		t.Fatalf("SetInUse on a bogus ARN: %v", err)
	}
	if err := a.RemoveInUse(arn, users[0]); err != nil {
		t.Fatalf("RemoveInUse on a deleted certificate: %v", err)
	}
}

func TestListCertificates(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	ec := types.KeyAlgorithmEcPrime256v1
	rsaARN := request(t, c, "rsa.example.com", func(in *acm.RequestCertificateInput) { in.KeyAlgorithm = "" })
	var ecARNs []string
	for i := range 7 {
		ecARNs = append(ecARNs, request(t, c, fmt.Sprintf("ec%d.example.com", i), func(in *acm.RequestCertificateInput) {
			if i == 0 {
				in.Options = &types.CertificateOptions{Export: types.CertificateExportEnabled}
				in.ManagedBy = types.CertificateManagedByCloudfront
			}
		}))
		time.Sleep(2 * time.Millisecond) // distinct CreatedAt for the sort check
	}
	bare := makeCert(t, certSpec{cn: "bare.example.com"}) // no key usage extensions
	bareARN := importCert(t, c, bare)

	arns := func(s []types.CertificateSummary) []string {
		var out []string
		for _, x := range s {
			out = append(out, aws.ToString(x.CertificateArn))
		}
		return out
	}
	list := func(in *acm.ListCertificatesInput) []string {
		t.Helper()
		return arns(must[*acm.ListCertificatesOutput](t)(c.ListCertificates(ctx, in)).CertificateSummaryList)
	}
	ecAndBare := append(slices.Clone(ecARNs), bareARN)
	newestFirst := slices.Clone(ecAndBare)
	slices.Reverse(newestFirst)
	tests := []struct {
		name string
		in   acm.ListCertificatesInput
		want []string
	}{
		{"default key types", acm.ListCertificatesInput{}, []string{rsaARN}},
		{"EC", acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec}}}, ecAndBare},
		{"status ISSUED", acm.ListCertificatesInput{CertificateStatuses: []types.CertificateStatus{types.CertificateStatusIssued},
			Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec, types.KeyAlgorithmRsa2048}}}, append([]string{rsaARN}, ecAndBare...)},
		{"status EXPIRED", acm.ListCertificatesInput{CertificateStatuses: []types.CertificateStatus{types.CertificateStatusExpired},
			Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec}}}, nil},
		{"extended key usage NONE", acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec},
			ExtendedKeyUsage: []types.ExtendedKeyUsageName{types.ExtendedKeyUsageNameNone}}}, []string{bareARN}},
		{"extended key usage server auth", acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec},
			ExtendedKeyUsage: []types.ExtendedKeyUsageName{types.ExtendedKeyUsageNameTlsWebServerAuthentication}}}, ecARNs},
		{"key usage ANY", acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec},
			KeyUsage: []types.KeyUsageName{types.KeyUsageNameAny}}}, []string{bareARN}},
		{"export enabled", acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec},
			ExportOption: types.CertificateExportEnabled}}, ecARNs[:1]},
		{"managed by CloudFront", acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec},
			ManagedBy: types.CertificateManagedByCloudfront}}, ecARNs[:1]},
		{"created descending", acm.ListCertificatesInput{SortBy: types.SortByCreatedAt, SortOrder: types.SortOrderDescending,
			Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec}}}, newestFirst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := list(&tt.in); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v\nwant %v", got, tt.want)
			}
		})
	}

	t.Run("summary", func(t *testing.T) {
		out := must[*acm.ListCertificatesOutput](t)(c.ListCertificates(ctx, &acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec}}}))
		s := out.CertificateSummaryList[0]
		if aws.ToString(s.DomainName) != "ec0.example.com" || !slices.Equal(s.SubjectAlternativeNameSummaries, []string{"ec0.example.com"}) ||
			aws.ToBool(s.HasAdditionalSubjectAlternativeNames) || s.Status != types.CertificateStatusIssued || s.Type != types.CertificateTypeAmazonIssued ||
			s.KeyAlgorithm != "EC-prime256v1" || aws.ToBool(s.InUse) || s.ExportOption != types.CertificateExportEnabled || s.Exported == nil ||
			s.ManagedBy != types.CertificateManagedByCloudfront || s.RenewalEligibility != types.RenewalEligibilityIneligible ||
			s.NotBefore == nil || s.NotAfter == nil || s.CreatedAt == nil || s.IssuedAt == nil || s.ImportedAt != nil ||
			!slices.Equal(s.ExtendedKeyUsages, []types.ExtendedKeyUsageName{types.ExtendedKeyUsageNameTlsWebServerAuthentication, types.ExtendedKeyUsageNameTlsWebClientAuthentication}) ||
			!slices.Equal(s.KeyUsages, []types.KeyUsageName{types.KeyUsageNameDigitalSignature}) {
			t.Fatalf("summary %+v", s)
		}
		b := out.CertificateSummaryList[len(out.CertificateSummaryList)-1]
		if b.Type != types.CertificateTypeImported || b.ImportedAt == nil || b.IssuedAt != nil || b.ExportOption != "" ||
			!slices.Equal(b.KeyUsages, []types.KeyUsageName{types.KeyUsageNameAny}) || !slices.Equal(b.ExtendedKeyUsages, []types.ExtendedKeyUsageName{types.ExtendedKeyUsageNameNone}) {
			t.Fatalf("imported summary %+v", b)
		}
	})

	t.Run("paginator", func(t *testing.T) {
		in := &acm.ListCertificatesInput{MaxItems: aws.Int32(3), Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{ec}}}
		p := acm.NewListCertificatesPaginator(c, in)
		var got []string
		pages := 0
		for p.HasMorePages() {
			page := must[*acm.ListCertificatesOutput](t)(p.NextPage(ctx))
			if len(page.CertificateSummaryList) > 3 {
				t.Fatalf("page of %d", len(page.CertificateSummaryList))
			}
			got = append(got, arns(page.CertificateSummaryList)...)
			pages++
		}
		if pages != 3 || !slices.Equal(got, ecAndBare) {
			t.Fatalf("%d pages: %v, want 3 pages of %v", pages, got, ecAndBare)
		}
	})

	errCases := []struct {
		name string
		in   acm.ListCertificatesInput
		code string
		msg  string
	}{
		{"garbage token", acm.ListCertificatesInput{NextToken: aws.String("!!!")}, "InvalidArgsException", "NextToken"},
		{"token of another query", acm.ListCertificatesInput{NextToken: aws.String(tokenFor(t, c))}, "InvalidArgsException", "NextToken"},
		{"SortOrder without SortBy", acm.ListCertificatesInput{SortOrder: types.SortOrderAscending}, "ValidationException", "SortBy"},
		{"MaxItems 0", acm.ListCertificatesInput{MaxItems: aws.Int32(0)}, "ValidationException", "maxItems"},
	}
	for _, tt := range errCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ListCertificates(ctx, &tt.in)
			checkErr(t, err, tt.code, tt.msg)
		})
	}
}

// tokenFor returns a NextToken of an EC listing, to replay on another query.
func tokenFor(t *testing.T, c *acm.Client) string {
	t.Helper()
	out := must[*acm.ListCertificatesOutput](t)(c.ListCertificates(context.Background(), &acm.ListCertificatesInput{MaxItems: aws.Int32(1),
		Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{types.KeyAlgorithmEcPrime256v1}}}))
	if out.NextToken == nil {
		t.Fatal("no NextToken")
	}
	return *out.NextToken
}

func TestTags(t *testing.T) {
	ctx := context.Background()
	c, _ := newClient(t)
	arn := request(t, c, "tags.example.com", func(in *acm.RequestCertificateInput) {
		in.Tags = []types.Tag{{Key: aws.String("env"), Value: aws.String("dev")}}
	})
	listTags := func() map[string]*string {
		t.Helper()
		out := must[*acm.ListTagsForCertificateOutput](t)(c.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)}))
		m := map[string]*string{}
		for _, tg := range out.Tags {
			m[aws.ToString(tg.Key)] = tg.Value
		}
		return m
	}
	add := func(tags ...types.Tag) error {
		_, err := c.AddTagsToCertificate(ctx, &acm.AddTagsToCertificateInput{CertificateArn: aws.String(arn), Tags: tags})
		return err
	}
	remove := func(tags ...types.Tag) error {
		_, err := c.RemoveTagsFromCertificate(ctx, &acm.RemoveTagsFromCertificateInput{CertificateArn: aws.String(arn), Tags: tags})
		return err
	}
	if err := add(types.Tag{Key: aws.String("env"), Value: aws.String("prod")}, types.Tag{Key: aws.String("flag")}, types.Tag{Key: aws.String("team"), Value: aws.String("db")}); err != nil {
		t.Fatal(err)
	}
	m := listTags()
	if len(m) != 3 || aws.ToString(m["env"]) != "prod" || m["flag"] != nil || aws.ToString(m["team"]) != "db" {
		t.Fatalf("tags %v", m)
	}
	// A Value that does not match leaves the tag; no Value removes it.
	if err := remove(types.Tag{Key: aws.String("team"), Value: aws.String("web")}, types.Tag{Key: aws.String("flag")}, types.Tag{Key: aws.String("absent")}); err != nil {
		t.Fatal(err)
	}
	if m := listTags(); len(m) != 2 || m["team"] == nil {
		t.Fatalf("after remove: %v", m)
	}
	if err := remove(types.Tag{Key: aws.String("team"), Value: aws.String("db")}); err != nil {
		t.Fatal(err)
	}
	if m := listTags(); len(m) != 1 {
		t.Fatalf("after remove by value: %v", m)
	}

	fifty := make([]types.Tag, 50)
	for i := range fifty {
		fifty[i] = types.Tag{Key: aws.String(fmt.Sprintf("k%02d", i)), Value: aws.String("v")}
	}
	tests := []struct {
		name string
		err  error
		code string
		msg  string
	}{
		{"51 tags in all", add(fifty...), "TooManyTagsException", "too many tags"},
		{"reserved key on add", add(types.Tag{Key: aws.String("aws:cloudformation:stack-name"), Value: aws.String("x")}), "InvalidTagException", "aws:"},
		{"reserved key on remove", remove(types.Tag{Key: aws.String("AWS:x")}), "InvalidTagException", "aws:"},
		{"bad key", add(types.Tag{Key: aws.String("a*b")}), "ValidationException", "tags.1.member.key"},
		{"bad value", add(types.Tag{Key: aws.String("ok"), Value: aws.String("x\ty")}), "ValidationException", "tags.1.member.value"},
		{"empty key", add(types.Tag{Key: aws.String("")}), "ValidationException", "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkErr(t, tt.err, tt.code, tt.msg) })
	}
	if m := listTags(); len(m) != 1 || aws.ToString(m["env"]) != "prod" {
		t.Fatalf("failed tag calls changed the tags: %v", m)
	}
	out := must[*acm.ListTagsForCertificateOutput](t)(c.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(request(t, c, "untagged.example.com"))}))
	if out.Tags == nil || len(out.Tags) != 0 {
		t.Fatalf("tags of an untagged certificate: %#v", out.Tags)
	}
}

func TestStatePersistsAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, emu := newClient(t, testsuite.WithDataDir(dir))
	arn := request(t, c, "persist.example.com", func(in *acm.RequestCertificateInput) {
		in.Options = &types.CertificateOptions{Export: types.CertificateExportEnabled}
		in.IdempotencyToken = aws.String("persist")
		in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}
	})
	self := makeCert(t, certSpec{cn: "imported.example.com"})
	iarn := importCert(t, c, self)
	before := describe(t, c, arn)
	pemBefore := must[*acm.GetCertificateOutput](t)(c.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(arn)}))
	if aws.ToString(pemBefore.CertificateChain) != string(emu.Server.CA().CertPEM()) {
		t.Fatal("chain is not the CA")
	}

	c2, emu2 := newClient(t, testsuite.WithDataDir(dir))
	after := describe(t, c2, arn)
	if aws.ToString(after.Serial) != aws.ToString(before.Serial) || !after.CreatedAt.Equal(*before.CreatedAt) || after.Options.Export != types.CertificateExportEnabled {
		t.Fatalf("restored: %+v", after)
	}
	pemAfter := must[*acm.GetCertificateOutput](t)(c2.GetCertificate(ctx, &acm.GetCertificateInput{CertificateArn: aws.String(arn)}))
	if aws.ToString(pemAfter.Certificate) != aws.ToString(pemBefore.Certificate) {
		t.Fatal("restored certificate differs")
	}
	if aws.ToString(pemAfter.CertificateChain) != string(emu2.Server.CA().CertPEM()) {
		t.Fatal("the restarted server has another CA")
	}
	if again := request(t, c2, "persist.example.com", func(in *acm.RequestCertificateInput) { in.IdempotencyToken = aws.String("persist") }); again != arn {
		t.Fatalf("idempotency token lost across restart: %s", again)
	}
	if d := describe(t, c2, iarn); d.Type != types.CertificateTypeImported || aws.ToString(d.DomainName) != "imported.example.com" {
		t.Fatalf("restored import: %+v", d)
	}
	tags := must[*acm.ListTagsForCertificateOutput](t)(c2.ListTagsForCertificate(ctx, &acm.ListTagsForCertificateInput{CertificateArn: aws.String(arn)}))
	if len(tags.Tags) != 1 {
		t.Fatalf("restored tags %+v", tags.Tags)
	}
	const pass = "persisted"
	out := must[*acm.ExportCertificateOutput](t)(c2.ExportCertificate(ctx, &acm.ExportCertificateInput{CertificateArn: aws.String(arn), Passphrase: []byte(pass)}))
	samePublicKey(t, decryptWithOpenSSL(t, aws.ToString(out.PrivateKey), pass), parsePEMCert(t, aws.ToString(out.Certificate)))
}

func TestSnapshotRestore(t *testing.T) {
	ca := newCA(t)
	a := acmcert.NewACM(ca)
	c := standalone(t, a)
	arn := request(t, c, "snap.example.com", func(in *acm.RequestCertificateInput) {
		in.SubjectAlternativeNames = []string{"alt.snap.example.com"}
		in.Tags = []types.Tag{{Key: aws.String("k")}}
	})
	iarn := importCert(t, c, makeCert(t, certSpec{cn: "imp.example.com"}))
	if err := a.SetInUse(arn, []string{"arn:aws:rds:us-east-1:000000000000:db-proxy:prx-1"}); err != nil {
		t.Fatal(err)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(snap, []byte("PRIVATE KEY")) {
		t.Fatal("snapshot lacks the private keys")
	}

	b := acmcert.NewACM(ca)
	if err := b.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, again) {
		t.Fatalf("snapshot after restore differs:\n%s\n%s", snap, again)
	}
	cb := standalone(t, b)
	want, got := describe(t, c, arn), describe(t, cb, arn)
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if !bytes.Equal(wj, gj) {
		t.Fatalf("restored describe differs:\n%s\n%s", wj, gj)
	}
	if d := describe(t, cb, iarn); d.Type != types.CertificateTypeImported {
		t.Fatalf("restored import %+v", d)
	}

	// The restored certificate serves TLS.
	tc, err := b.TLSCertificate(account, region, arn)
	if err != nil {
		t.Fatal(err)
	}
	serveTLS(t, tc, ca, "alt.snap.example.com")

	// Reset forgets everything; a bad snapshot is refused and changes nothing.
	b.Reset()
	_, err = cb.DescribeCertificate(context.Background(), &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)})
	wantErr[*types.ResourceNotFoundException](t, err, "")
	for _, bad := range []string{
		`not json`,
		`{"version":99,"regions":[]}`,
		`{"version":1,"regions":[{"account":"000000000000","region":"us-east-1","certificates":[{"arn":"arn:aws:acm:eu-west-1:000000000000:certificate/x"}]}]}`,
		`{"version":1,"regions":[{"account":"000000000000","region":"us-east-1","certificates":[{"arn":"arn:aws:acm:us-east-1:000000000000:certificate/x","certPem":"junk"}]}]}`,
	} {
		if err := a.Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%s) succeeded", bad)
		}
	}
	if _, err := c.DescribeCertificate(context.Background(), &acm.DescribeCertificateInput{CertificateArn: aws.String(arn)}); err != nil {
		t.Fatalf("a refused Restore changed the state: %v", err)
	}
}

// serveTLS runs a TLS server with cert and checks that a client trusting only
// ca completes a handshake for serverName.
func serveTLS(t *testing.T, cert *tls.Certificate, ca *acmcert.CA, serverName string) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{*cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.(*tls.Conn).Handshake()
		_, _ = conn.Write([]byte("ok"))
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: ca.CertPool(), ServerName: serverName})
	if err != nil {
		t.Fatalf("TLS handshake for %s: %v", serverName, err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("read %q, %v", buf, err)
	}
	conn.Close()
	<-done
}

func TestTLSCertificate(t *testing.T) {
	ca := newCA(t)
	a := acmcert.NewACM(ca)
	c := standalone(t, a)
	arn := request(t, c, "proxy.example.com", func(in *acm.RequestCertificateInput) { in.SubjectAlternativeNames = []string{"*.proxy.example.com"} })
	tc, err := a.TLSCertificate(account, region, arn)
	if err != nil {
		t.Fatal(err)
	}
	if tc.Leaf == nil || len(tc.Certificate) != 2 {
		t.Fatalf("TLS certificate: leaf %v, chain of %d", tc.Leaf, len(tc.Certificate))
	}
	serveTLS(t, tc, ca, "reader.proxy.example.com")

	var e *api.Error
	for _, tt := range []struct{ acct, reg, arn, code string }{
		{"111111111111", region, arn, "ResourceNotFoundException"},
		{account, "eu-west-1", arn, "ResourceNotFoundException"},
		{account, region, "arn:aws:acm:us-east-1:000000000000:certificate/missing", "ResourceNotFoundException"},
		{account, region, "arn:aws:acm:us-east-1:000000000000:nope/x", "InvalidArnException"},
	} {
		if _, err := a.TLSCertificate(tt.acct, tt.reg, tt.arn); !errors.As(err, &e) || e.Code != tt.code {
			t.Errorf("TLSCertificate(%s, %s, %s) = %v, want %s", tt.acct, tt.reg, tt.arn, err, tt.code)
		}
	}
}

func TestAccountsAndRegionsAreSeparate(t *testing.T) {
	ctx := context.Background()
	emu := testsuite.Start(t)
	c := clientFor(emu.AWSConfig)
	arn := request(t, c, "sep.example.com")
	west := emu.AWSConfig.Copy()
	west.Region = "eu-west-1"
	other := clientFor(testsuite.Config(emu.URL, "111111111111", "x"))
	ecOnly := &acm.ListCertificatesInput{Includes: &types.Filters{KeyTypes: []types.KeyAlgorithm{types.KeyAlgorithmEcPrime256v1}}}
	for name, cl := range map[string]*acm.Client{"eu-west-1": clientFor(west), "account 111111111111": other} {
		out := must[*acm.ListCertificatesOutput](t)(cl.ListCertificates(ctx, ecOnly))
		if len(out.CertificateSummaryList) != 0 {
			t.Errorf("%s sees %d certificates", name, len(out.CertificateSummaryList))
		}
	}
	warn := request(t, clientFor(west), "sep.example.com")
	if !strings.HasPrefix(warn, "arn:aws:acm:eu-west-1:000000000000:certificate/") || warn == arn {
		t.Fatalf("eu-west-1 ARN %s", warn)
	}
}

// TestWireFormat checks the JSON 1.1 bytes: epoch numbers, ACM's spelling of
// key algorithms, and no nulls anywhere.
func TestWireFormat(t *testing.T) {
	emu := testsuite.Start(t)
	c := clientFor(emu.AWSConfig)
	arn := request(t, c, "wire.example.com", func(in *acm.RequestCertificateInput) { in.ValidationMethod = types.ValidationMethodDns })
	post := func(op, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, emu.URL+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "CertificateManager."+op)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/acm/aws4_request, SignedHeaders=host, Signature=x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %d %s", op, resp.StatusCode, b)
		}
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		var walk func(path string, v any)
		walk = func(path string, v any) {
			switch v := v.(type) {
			case nil:
				t.Errorf("%s: null at %s", op, path)
			case map[string]any:
				for k, x := range v {
					walk(path+"."+k, x)
				}
			case []any:
				for i, x := range v {
					walk(fmt.Sprint(path, "[", i, "]"), x)
				}
			}
		}
		walk("$", m)
		return m
	}
	d := post("DescribeCertificate", `{"CertificateArn":"`+arn+`"}`)["Certificate"].(map[string]any)
	for _, k := range []string{"CreatedAt", "IssuedAt", "NotBefore", "NotAfter"} {
		if _, ok := d[k].(float64); !ok {
			t.Errorf("%s = %#v, want epoch seconds", k, d[k])
		}
	}
	if o, _ := d["Options"].(map[string]any); o["CertificateTransparencyLoggingPreference"] != "ENABLED" {
		t.Errorf("Options %v", d["Options"])
	}
	if d["KeyAlgorithm"] != "EC-prime256v1" {
		t.Errorf("KeyAlgorithm %v", d["KeyAlgorithm"])
	}
	if iu, ok := d["InUseBy"].([]any); !ok || len(iu) != 0 {
		t.Errorf("InUseBy %#v, want []", d["InUseBy"])
	}
	post("ListCertificates", `{"Includes":{"keyTypes":["EC_prime256v1"]}}`)
	post("GetCertificate", `{"CertificateArn":"`+arn+`"}`)
	post("ListTagsForCertificate", `{"CertificateArn":"`+arn+`"}`)
}
