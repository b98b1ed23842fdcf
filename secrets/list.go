package secrets

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rdslocal/rdslocal/api"
)

// filterInput is a ListSecrets / BatchGetSecretValue filter.
type filterInput struct {
	Key    string
	Values []string
}

func checkFilters(fs []filterInput) error {
	for _, f := range fs {
		if f.Key == "" {
			return invalidParameter("You must specify a Key for each filter.")
		}
		if len(f.Values) == 0 {
			return invalidParameter("You must specify at least one value for filter %s.", f.Key)
		}
	}
	return nil
}

// matches reports whether sec passes every filter (filters are ANDed).
func matches(sec *secret, fs []filterInput) bool {
	for _, f := range fs {
		if !matchFilter(sec, f) {
			return false
		}
	}
	return true
}

// matchFilter applies one filter: a secret passes when it matches at least one
// plain value (if there are any) and none of the "!"-negated values.
func matchFilter(sec *secret, f filterInput) bool {
	plain, hit := false, false
	for _, v := range f.Values {
		if neg, ok := strings.CutPrefix(v, "!"); ok {
			if matchValue(sec, f.Key, neg) {
				return false
			}
			continue
		}
		plain = true
		if !hit && matchValue(sec, f.Key, v) {
			hit = true
		}
	}
	return !plain || hit
}

func matchValue(sec *secret, key, v string) bool {
	switch key {
	case "name":
		return strings.HasPrefix(sec.Name, v)
	case "description":
		return sec.Description != "" && wordPrefixFold(v, sec.Description)
	case "tag-key":
		return slices.ContainsFunc(sec.Tags, func(t tag) bool { return strings.HasPrefix(t.Key, v) })
	case "tag-value":
		return slices.ContainsFunc(sec.Tags, func(t tag) bool { return strings.HasPrefix(t.Value, v) })
	case "owning-service":
		return sec.OwningService != "" && strings.HasPrefix(sec.OwningService, v)
	case "primary-region":
		// Only replicated secrets have a primary region, and rdslocal does
		// not replicate.
		return false
	case "all":
		words := strings.Fields(v)
		if len(words) == 0 {
			return false
		}
		attrs := []string{sec.Name, sec.Description, sec.OwningService}
		for _, t := range sec.Tags {
			attrs = append(attrs, t.Key, t.Value)
		}
		for _, w := range words {
			if !slices.ContainsFunc(attrs, func(a string) bool { return a != "" && wordPrefixFold(w, a) }) {
				return false
			}
		}
		return true
	}
	return false
}

// wordPrefixFold reports whether v, case-insensitively, starts attr or one of
// its words (runs of letters and digits).
func wordPrefixFold(v, attr string) bool {
	v, attr = strings.ToLower(v), strings.ToLower(attr)
	if strings.HasPrefix(attr, v) {
		return true
	}
	for _, w := range strings.FieldsFunc(attr, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if strings.HasPrefix(w, v) {
			return true
		}
	}
	return false
}

// sortSecrets orders secrets as ListSecrets does: by SortBy (default
// created-date) and SortOrder (default asc), ties broken by name.
func sortSecrets(list []*secret, by, order string) {
	date := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	}
	slices.SortStableFunc(list, func(a, b *secret) int {
		var c int
		switch by {
		case "name":
			c = strings.Compare(a.Name, b.Name)
		case "last-changed-date":
			c = a.LastChanged.Compare(b.LastChanged)
		case "last-accessed-date":
			c = date(a.LastAccessed).Compare(date(b.LastAccessed))
		default:
			c = a.Created.Compare(b.Created)
		}
		c = cmp.Or(c, strings.Compare(a.Name, b.Name), strings.Compare(a.ARN, b.ARN))
		if order == "desc" {
			c = -c
		}
		return c
	})
}

// fingerprint identifies the query a pagination token belongs to.
func fingerprint(parts ...any) string {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Pagination tokens are opaque to clients: base64url of "<offset>:<query
// fingerprint>". A token from another query, or one that does not decode, is
// InvalidNextTokenException.
func encodeToken(offset int, fp string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + ":" + fp))
}

func decodeToken(tok, fp string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, errInvalidNextToken()
	}
	off, got, ok := strings.Cut(string(b), ":")
	if !ok || got != fp {
		return 0, errInvalidNextToken()
	}
	n, err := strconv.Atoi(off)
	if err != nil || n < 0 {
		return 0, errInvalidNextToken()
	}
	return n, nil
}

// paginate returns the page of all that starts at the token's offset, and the
// token of the next page ("" on the last).
func paginate[T any](all []T, token *string, max *int, def int, fp string) ([]T, string, error) {
	start := 0
	if token != nil {
		n, err := decodeToken(*token, fp)
		if err != nil {
			return nil, "", err
		}
		start = min(n, len(all))
	}
	size := def
	if max != nil {
		size = *max
	}
	end := min(start+size, len(all))
	next := ""
	if end < len(all) {
		next = encodeToken(end, fp)
	}
	return all[start:end], next, nil
}

// --- ListSecrets ---

type listSecretsInput struct {
	Filters                []filterInput
	IncludePlannedDeletion *bool
	MaxResults             *int
	NextToken              *string
	SortBy                 *string
	SortOrder              *string
}

type secretListEntry struct {
	ARN                    string              `json:"ARN"`
	Name                   string              `json:"Name"`
	Description            string              `json:"Description,omitempty"`
	KmsKeyId               string              `json:"KmsKeyId,omitempty"`
	LastChangedDate        *api.EpochTime      `json:"LastChangedDate,omitempty"`
	LastAccessedDate       *api.EpochTime      `json:"LastAccessedDate,omitempty"`
	DeletedDate            *api.EpochTime      `json:"DeletedDate,omitempty"`
	Tags                   []tag               `json:"Tags,omitempty"`
	SecretVersionsToStages map[string][]string `json:"SecretVersionsToStages,omitempty"`
	OwningService          string              `json:"OwningService,omitempty"`
	CreatedDate            *api.EpochTime      `json:"CreatedDate,omitempty"`
	Type                   string              `json:"Type,omitempty"`
}

type listSecretsOutput struct {
	SecretList []secretListEntry `json:"SecretList"`
	NextToken  string            `json:"NextToken,omitempty"`
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Store) listSecrets(c *api.Call) (any, error) {
	var in listSecretsInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if err := checkFilters(in.Filters); err != nil {
		return nil, err
	}
	planned := in.IncludePlannedDeletion != nil && *in.IncludePlannedDeletion
	by, order := deref(in.SortBy), deref(in.SortOrder)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.region(c.Account, c.Region, c.Now)
	var list []*secret
	for _, sec := range r.secrets {
		if (planned || !sec.deleted()) && matches(sec, in.Filters) {
			list = append(list, sec)
		}
	}
	sortSecrets(list, by, order)
	fp := fingerprint("ListSecrets", c.Account, c.Region, in.Filters, planned, by, order)
	page, next, err := paginate(list, in.NextToken, in.MaxResults, 100, fp)
	if err != nil {
		return nil, err
	}
	out := listSecretsOutput{SecretList: make([]secretListEntry, 0, len(page)), NextToken: next}
	for _, sec := range page {
		out.SecretList = append(out.SecretList, secretListEntry{
			ARN:                    sec.ARN,
			Name:                   sec.Name,
			Description:            sec.Description,
			KmsKeyId:               sec.KmsKeyID,
			LastChangedDate:        epoch(sec.LastChanged),
			LastAccessedDate:       epochPtr(sec.LastAccessed),
			DeletedDate:            epochPtr(sec.DeletedAt),
			Tags:                   slices.Clone(sec.Tags),
			SecretVersionsToStages: sec.versionsToStages(),
			OwningService:          sec.OwningService,
			CreatedDate:            epoch(sec.Created),
			Type:                   sec.Type,
		})
	}
	return out, nil
}

// --- BatchGetSecretValue ---

type batchGetSecretValueInput struct {
	Filters      []filterInput
	MaxResults   *int
	NextToken    *string
	SecretIdList []string
}

type apiErrorEntry struct {
	SecretId  string `json:"SecretId"`
	ErrorCode string `json:"ErrorCode"`
	Message   string `json:"Message"`
}

type batchGetSecretValueOutput struct {
	SecretValues []secretValueOutput `json:"SecretValues"`
	Errors       []apiErrorEntry     `json:"Errors,omitempty"`
	NextToken    string              `json:"NextToken,omitempty"`
}

func errorEntry(id string, err error) apiErrorEntry {
	var e *api.Error
	if !errors.As(err, &e) {
		e = api.InternalFailure(err.Error())
	}
	return apiErrorEntry{SecretId: id, ErrorCode: e.Code, Message: e.Message}
}

func (s *Store) batchGetSecretValue(c *api.Call) (any, error) {
	var in batchGetSecretValueInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if (in.SecretIdList == nil) == (in.Filters == nil) {
		return nil, invalidParameter("Either 'SecretIdList' or 'Filters' must be provided, but not both.")
	}
	if in.MaxResults != nil && in.Filters == nil {
		return nil, invalidParameter("'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.")
	}
	if err := checkFilters(in.Filters); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.region(c.Account, c.Region, c.Now)
	out := batchGetSecretValueOutput{SecretValues: []secretValueOutput{}}
	if in.SecretIdList != nil {
		for _, id := range in.SecretIdList {
			sec := r.find(c.Account, c.Region, id)
			var err error
			switch {
			case sec == nil:
				err = errSecretNotFound()
			case sec.deleted():
				err = errMarkedForDeletion()
			default:
				var v secretValueOutput
				if v, err = readVersion(sec, nil, nil, c.Now); err == nil {
					out.SecretValues = append(out.SecretValues, v)
				}
			}
			if err != nil {
				out.Errors = append(out.Errors, errorEntry(id, err))
			}
		}
		return out, nil
	}
	var list []*secret
	for _, sec := range r.secrets {
		if !sec.deleted() && matches(sec, in.Filters) {
			list = append(list, sec)
		}
	}
	sortSecrets(list, "", "")
	fp := fingerprint("BatchGetSecretValue", c.Account, c.Region, in.Filters)
	page, next, err := paginate(list, in.NextToken, in.MaxResults, 20, fp)
	if err != nil {
		return nil, err
	}
	out.NextToken = next
	for _, sec := range page {
		v, err := readVersion(sec, nil, nil, c.Now)
		if err != nil {
			out.Errors = append(out.Errors, errorEntry(sec.ARN, err))
			continue
		}
		out.SecretValues = append(out.SecretValues, v)
	}
	return out, nil
}
