package iamauth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/rdslocal/rdslocal/api"
)

// IAM unique-id prefixes (AWS: "IAM identifiers").
const (
	prefixUser        = "AIDA"
	prefixRole        = "AROA"
	prefixPolicy      = "ANPA"
	prefixAccessKey   = "AKIA"
	prefixSessionKey  = "ASIA"
	uniqueIDLength    = 21 // prefix + 17
	accessKeyIDLength = 20 // prefix + 16
	secretKeyLength   = 40
)

const upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomUpper returns n random characters from A-Z and 2-7 (base32, the
// alphabet real IAM ids are drawn from).
func randomUpper(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(rand.Text())
	}
	return b.String()[:n]
}

// newUniqueID returns an IAM unique id: prefix + 17 characters.
func newUniqueID(prefix string) string { return prefix + randomUpper(uniqueIDLength-len(prefix)) }

// derivedID returns a stable IAM-style id for a name that has no record
// (a role assumed without --enforce-iam that was never created), so repeated
// calls show the same id.
func derivedID(prefix, name string) string {
	sum := sha256.Sum256([]byte(name))
	out := make([]byte, uniqueIDLength-len(prefix))
	for i := range out {
		out[i] = upperAlnum[int(sum[i])%len(upperAlnum)]
	}
	return prefix + string(out)
}

// newSecret returns a 40-character secret access key from the base64
// alphabet, like AWS's.
func newSecret() string {
	b := make([]byte, secretKeyLength*3/4)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// newSessionToken returns an opaque STS session token.
func newSessionToken() string {
	b := make([]byte, 132)
	_, _ = rand.Read(b)
	return "IQoJb3JpZ2luX2VjE" + base64.StdEncoding.EncodeToString(b)
}

// isNameChar reports whether r may appear in IAM user, role, policy and
// session names: [\w+=,.@-].
func isNameChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_+=,.@-", r)
}

// checkName applies IAM's name pattern [\w+=,.@-]+; the model's length
// limits were checked before the handler ran.
func checkName(member, value string) error {
	if value == "" || strings.IndexFunc(value, func(r rune) bool { return !isNameChar(r) }) >= 0 {
		return validationError("1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", value, member)
	}
	return nil
}

// checkPath applies IAM's path rule: it begins and ends with '/' and holds
// printable ASCII ("/" alone is the default path).
func checkPath(member, p string) error {
	ok := strings.HasPrefix(p, "/") && strings.HasSuffix(p, "/")
	for i := 0; ok && i < len(p); i++ {
		ok = p[i] > ' ' && p[i] < 0x7f
	}
	if !ok {
		return validationError("The specified value for %s is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.", member)
	}
	return nil
}

func pathOrDefault(p *string) string {
	if p == nil || *p == "" {
		return "/"
	}
	return *p
}

// encodeDocument percent-encodes a policy document as IAM returns it in
// GetUserPolicy, GetRolePolicy and a role's AssumeRolePolicyDocument
// (RFC 3986; a space is %20, which botocore's unquote decodes).
func encodeDocument(doc string) string { return uriEncode(doc, false) }

// page cuts one page out of items for IAM's Marker/MaxItems pagination
// (MaxItems 1–1000, default 100, checked against the model first). The
// marker is opaque to clients and returned only when IsTruncated.
func page[T any](items []T, marker *string, maxItems *int64) (out []T, next string, err error) {
	limit := 100
	if maxItems != nil {
		limit = int(*maxItems)
	}
	m := ""
	if marker != nil {
		m = *marker
	}
	out, next, err = api.Page(items, m, limit)
	if err != nil {
		return nil, "", validationError("Invalid Marker: %s", m)
	}
	return out, next, nil
}

// xmlTags renders tags, or nothing when there are none.
func xmlTags(tags []tag) api.List[tag] {
	if len(tags) == 0 {
		return nil
	}
	return api.List[tag](tags)
}

// inputTags copies and checks the Tags of a Create* call: keys unique.
func inputTags(in []tag) ([]tag, error) {
	seen := map[string]bool{}
	for _, t := range in {
		k := strings.ToLower(t.Key)
		if seen[k] {
			return nil, invalidInput("Duplicate tag keys found. Please note that Tag keys are case insensitive.")
		}
		seen[k] = true
	}
	return append([]tag(nil), in...), nil
}
