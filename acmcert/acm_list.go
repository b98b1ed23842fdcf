package acmcert

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rdslocal/rdslocal/api"
)

// defaultKeyTypes are the key algorithms ListCertificates returns when the
// request names none, as ACM does ("Default filtering returns only RSA_1024
// and RSA_2048 certificates").
var defaultKeyTypes = []string{KeyAlgorithmRSA1024, KeyAlgorithmRSA2048}

// maxSANSummaries is how many subject alternative names a certificate summary
// lists.
const maxSANSummaries = 100

// defaultMaxItems is the page size of ListCertificates without MaxItems.
const defaultMaxItems = 1000

type listFilters struct {
	ExtendedKeyUsage []string `json:"extendedKeyUsage"`
	KeyUsage         []string `json:"keyUsage"`
	KeyTypes         []string `json:"keyTypes"`
	ExportOption     *string  `json:"exportOption"`
	ManagedBy        *string  `json:"managedBy"`
}

type listCertificatesInput struct {
	CertificateStatuses []string
	Includes            *listFilters
	MaxItems            *int
	NextToken           *string
	SortBy              *string
	SortOrder           *string
}

type certificateSummary struct {
	CertificateArn                       string         `json:"CertificateArn"`
	DomainName                           string         `json:"DomainName"`
	SubjectAlternativeNameSummaries      []string       `json:"SubjectAlternativeNameSummaries"`
	HasAdditionalSubjectAlternativeNames bool           `json:"HasAdditionalSubjectAlternativeNames"`
	Status                               string         `json:"Status"`
	Type                                 string         `json:"Type"`
	KeyAlgorithm                         string         `json:"KeyAlgorithm"`
	KeyUsages                            []string       `json:"KeyUsages"`
	ExtendedKeyUsages                    []string       `json:"ExtendedKeyUsages"`
	ExportOption                         string         `json:"ExportOption,omitempty"`
	Exported                             *bool          `json:"Exported,omitempty"`
	InUse                                bool           `json:"InUse"`
	ManagedBy                            string         `json:"ManagedBy,omitempty"`
	RenewalEligibility                   string         `json:"RenewalEligibility"`
	NotBefore                            *api.EpochTime `json:"NotBefore"`
	NotAfter                             *api.EpochTime `json:"NotAfter"`
	CreatedAt                            *api.EpochTime `json:"CreatedAt"`
	IssuedAt                             *api.EpochTime `json:"IssuedAt,omitempty"`
	ImportedAt                           *api.EpochTime `json:"ImportedAt,omitempty"`
}

type listCertificatesOutput struct {
	CertificateSummaryList []certificateSummary `json:"CertificateSummaryList"`
	NextToken              string               `json:"NextToken,omitempty"`
}

// summary renders c as ListCertificates does.
func (c *certificate) summary(now time.Time) certificateSummary {
	sans := slices.Clone(c.SANs)
	more := len(sans) > maxSANSummaries
	if more {
		sans = sans[:maxSANSummaries]
	}
	if sans == nil {
		sans = []string{}
	}
	s := certificateSummary{
		CertificateArn:                       c.ARN,
		DomainName:                           c.DomainName,
		SubjectAlternativeNameSummaries:      sans,
		HasAdditionalSubjectAlternativeNames: more,
		Status:                               c.status(now),
		Type:                                 c.Type,
		KeyAlgorithm:                         displayKeyAlgorithm(c.KeyAlgorithm),
		KeyUsages:                            summaryKeyUsages(c.leaf),
		ExtendedKeyUsages:                    summaryExtKeyUsages(c.leaf),
		InUse:                                len(c.InUseBy) > 0,
		ManagedBy:                            c.ManagedBy,
		RenewalEligibility:                   c.renewalEligibility(),
		NotBefore:                            api.Epoch(c.leaf.NotBefore),
		NotAfter:                             api.Epoch(c.leaf.NotAfter),
		CreatedAt:                            api.Epoch(c.Created),
		IssuedAt:                             epochPtr(c.Issued),
		ImportedAt:                           epochPtr(c.Imported),
	}
	if c.Type != TypeImported {
		s.ExportOption = c.Export
		exported := c.Exported
		s.Exported = &exported
	}
	return s
}

// matches reports whether c passes the statuses and the Includes filters;
// each filter list matches when it shares a value with the certificate's.
func (c *certificate) matches(now time.Time, statuses []string, f *listFilters) bool {
	if len(statuses) > 0 && !slices.Contains(statuses, c.status(now)) {
		return false
	}
	keyTypes := defaultKeyTypes
	if f != nil && len(f.KeyTypes) > 0 {
		keyTypes = f.KeyTypes
	}
	if !slices.Contains(keyTypes, c.KeyAlgorithm) {
		return false
	}
	if f == nil {
		return true
	}
	overlaps := func(want, have []string) bool {
		return len(want) == 0 || slices.ContainsFunc(have, func(h string) bool { return slices.Contains(want, h) })
	}
	if !overlaps(f.KeyUsage, summaryKeyUsages(c.leaf)) || !overlaps(f.ExtendedKeyUsage, summaryExtKeyUsages(c.leaf)) {
		return false
	}
	if f.ExportOption != nil && (c.Type == TypeImported || c.Export != *f.ExportOption) {
		return false
	}
	if f.ManagedBy != nil && c.ManagedBy != *f.ManagedBy {
		return false
	}
	return true
}

// Pagination tokens are opaque to clients: base64url of "<offset>:<query
// fingerprint>". A token from another query, or one that does not decode, is
// InvalidArgsException.
func listFingerprint(parts ...any) string {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func errBadToken() *api.Error {
	return acmError(codeInvalidArgs, "The NextToken is not valid for this request.")
}

func decodeListToken(tok, fp string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, errBadToken()
	}
	off, got, ok := strings.Cut(string(b), ":")
	if !ok || got != fp {
		return 0, errBadToken()
	}
	n, err := strconv.Atoi(off)
	if err != nil || n < 0 {
		return 0, errBadToken()
	}
	return n, nil
}

func (a *ACM) listCertificates(c *api.Call) (any, error) {
	var in listCertificatesInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	by, order := deref(in.SortBy), deref(in.SortOrder)
	if order != "" && by == "" {
		return nil, acmError(codeValidation, "SortBy must be specified when SortOrder is specified.")
	}
	fp := listFingerprint("ListCertificates", c.Account, c.Region, in.CertificateStatuses, in.Includes, by, order)
	start := 0
	if in.NextToken != nil {
		n, err := decodeListToken(*in.NextToken, fp)
		if err != nil {
			return nil, err
		}
		start = n
	}
	size := defaultMaxItems
	if in.MaxItems != nil {
		size = *in.MaxItems
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	var list []*certificate
	if r := a.regions[acmRegionKey{c.Account, c.Region}]; r != nil {
		for _, cert := range r.certs {
			if cert.matches(c.Now, in.CertificateStatuses, in.Includes) {
				list = append(list, cert)
			}
		}
	}
	// Without SortBy the order is creation order, which keeps pages stable.
	slices.SortFunc(list, func(x, y *certificate) int {
		d := cmp.Or(x.Created.Compare(y.Created), strings.Compare(x.ARN, y.ARN))
		if order == "DESCENDING" {
			d = -d
		}
		return d
	})
	start = min(start, len(list))
	end := min(start+size, len(list))
	out := listCertificatesOutput{CertificateSummaryList: make([]certificateSummary, 0, end-start)}
	for _, cert := range list[start:end] {
		out.CertificateSummaryList = append(out.CertificateSummaryList, cert.summary(c.Now))
	}
	if end < len(list) {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end) + ":" + fp))
	}
	return out, nil
}

// --- Tags ---

type tagsInput struct {
	CertificateArn string
	Tags           []tagInput
}

func (a *ACM) addTagsToCertificate(c *api.Call) (any, error) {
	var in tagsInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cert, err := a.lookup(c.Account, c.Region, in.CertificateArn)
	if err != nil {
		return nil, err
	}
	tags, err := readTags(in.Tags)
	if err != nil {
		return nil, err
	}
	merged := mergeTags(cert.Tags, tags)
	if len(merged) > maxTags {
		return nil, errTooManyTags()
	}
	cert.Tags = merged
	return nil, nil
}

// removeTagsFromCertificate removes each named tag; a tag given with a Value
// is removed only when its value matches, as in ACM.
func (a *ACM) removeTagsFromCertificate(c *api.Call) (any, error) {
	var in tagsInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cert, err := a.lookup(c.Account, c.Region, in.CertificateArn)
	if err != nil {
		return nil, err
	}
	tags, err := readTags(in.Tags)
	if err != nil {
		return nil, err
	}
	cert.Tags = slices.DeleteFunc(slices.Clone(cert.Tags), func(have certTag) bool {
		return slices.ContainsFunc(tags, func(rm certTag) bool {
			if rm.Key != have.Key {
				return false
			}
			return rm.Value == nil || (have.Value != nil && *have.Value == *rm.Value)
		})
	})
	if len(cert.Tags) == 0 {
		cert.Tags = nil
	}
	return nil, nil
}

type listTagsOutput struct {
	Tags []certTag `json:"Tags"`
}

func (a *ACM) listTagsForCertificate(c *api.Call) (any, error) {
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
	return listTagsOutput{Tags: append([]certTag{}, cert.Tags...)}, nil
}
