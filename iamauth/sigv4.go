package iamauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	// Algorithm is the only signing algorithm accepted: SigV4 with HMAC-SHA256.
	Algorithm = "AWS4-HMAC-SHA256"
	// ScopeTerminal ends every SigV4 credential scope.
	ScopeTerminal = "aws4_request"
	// MaxRequestSkew is how far an API request's X-Amz-Date may lie from the
	// server's clock, in either direction, as in AWS.
	MaxRequestSkew = 15 * time.Minute

	amzDateFormat    = "20060102T150405Z"
	scopeDateFormat  = "20060102"
	emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	maxPresignExpiry = 7 * 24 * time.Hour // SigV4's own upper bound
	maxAuthLen       = 16 << 10           // longest Authorization header or token parsed
)

// CredentialScope is the Credential= component of a SigV4 signature:
// AccessKeyID/Date/Region/Service/Terminal.
type CredentialScope struct {
	AccessKeyID string
	Date        string // yyyymmdd
	Region      string
	Service     string
	Terminal    string // always "aws4_request"
}

// scope returns Date/Region/Service/Terminal, the scope line of the string
// to sign.
func (s CredentialScope) scope() string {
	return s.Date + "/" + s.Region + "/" + s.Service + "/" + s.Terminal
}

// AuthHeader is a parsed SigV4 Authorization header.
type AuthHeader struct {
	Algorithm     string
	Credential    CredentialScope
	SignedHeaders []string // lower case, sorted, always including "host"
	Signature     string   // 64 lower-case hex digits
}

// PresignedQuery is SigV4 query authentication (a presigned URL or an RDS
// IAM auth token): the Authorization fields plus the parameters a presigned
// URL carries instead of headers.
type PresignedQuery struct {
	AuthHeader
	Date          time.Time     // X-Amz-Date
	Expires       time.Duration // X-Amz-Expires
	SecurityToken string        // X-Amz-Security-Token, empty when absent
}

// ParseAuthorization parses a SigV4 Authorization header such as
//
//	AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=<64 hex>
//
// The three components may come in any order but each exactly once. Errors
// are *Error of kind ErrMalformed.
func ParseAuthorization(header string) (AuthHeader, error) {
	a, err := parseAuthorization(header)
	if err != nil {
		return AuthHeader{}, &Error{Kind: ErrMalformed, Reason: "malformed Authorization header: " + err.Error()}
	}
	return a, nil
}

func parseAuthorization(header string) (AuthHeader, error) {
	if len(header) > maxAuthLen {
		return AuthHeader{}, fmt.Errorf("longer than %d bytes", maxAuthLen)
	}
	alg, rest, ok := strings.Cut(header, " ")
	if err := checkAlgorithm(alg); err != nil {
		return AuthHeader{}, err
	}
	if !ok {
		return AuthHeader{}, errors.New("no Credential, SignedHeaders and Signature after the algorithm")
	}
	a := AuthHeader{Algorithm: alg}
	var seen [3]bool
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return AuthHeader{}, fmt.Errorf("component %s is not key=value", clip(part))
		}
		var i int
		var err error
		switch k {
		case "Credential":
			i = 0
			a.Credential, err = parseCredential(v)
		case "SignedHeaders":
			i = 1
			a.SignedHeaders, err = parseSignedHeaders(v)
		case "Signature":
			i = 2
			a.Signature, err = parseSignature(v)
		default:
			return AuthHeader{}, fmt.Errorf("unknown component %s", clip(k))
		}
		if seen[i] {
			return AuthHeader{}, fmt.Errorf("%s appears twice", k)
		}
		seen[i] = true
		if err != nil {
			return AuthHeader{}, err
		}
	}
	for i, name := range [3]string{"Credential", "SignedHeaders", "Signature"} {
		if !seen[i] {
			return AuthHeader{}, fmt.Errorf("no %s component", name)
		}
	}
	return a, nil
}

// ParsePresignedQuery parses the X-Amz-* parameters of SigV4 query
// authentication. Each must appear exactly once (X-Amz-Security-Token at most
// once), the scope date must be the date of X-Amz-Date, and X-Amz-Expires must
// be a whole number of seconds from 1 to 604800. Other parameters are ignored.
// Errors are *Error of kind ErrMalformed.
func ParsePresignedQuery(q url.Values) (PresignedQuery, error) {
	p, err := parsePresigned(q)
	if err != nil {
		return PresignedQuery{}, &Error{Kind: ErrMalformed, Reason: "malformed presigned query: " + err.Error()}
	}
	return p, nil
}

func parsePresigned(q url.Values) (PresignedQuery, error) {
	var p PresignedQuery
	get := func(key string, optional bool) (string, error) {
		switch v := q[key]; {
		case len(v) == 1:
			return v[0], nil
		case len(v) == 0 && optional:
			return "", nil
		case len(v) == 0:
			return "", fmt.Errorf("no %s parameter", key)
		default:
			return "", fmt.Errorf("%s appears %d times", key, len(v))
		}
	}
	var (
		s   string
		err error
	)
	if s, err = get("X-Amz-Algorithm", false); err != nil {
		return p, err
	}
	if err = checkAlgorithm(s); err != nil {
		return p, err
	}
	p.Algorithm = s
	if s, err = get("X-Amz-Credential", false); err != nil {
		return p, err
	}
	if p.Credential, err = parseCredential(s); err != nil {
		return p, err
	}
	if s, err = get("X-Amz-Date", false); err != nil {
		return p, err
	}
	if p.Date, err = parseAmzDate(s); err != nil {
		return p, err
	}
	if !strings.HasPrefix(s, p.Credential.Date) {
		return p, fmt.Errorf("credential scope date %s is not the date of X-Amz-Date %s", p.Credential.Date, s)
	}
	if s, err = get("X-Amz-Expires", false); err != nil {
		return p, err
	}
	secs, ok := parseDigits(s, 6)
	if !ok || secs < 1 || time.Duration(secs)*time.Second > maxPresignExpiry {
		return p, fmt.Errorf("X-Amz-Expires %s is not a number of seconds from 1 to 604800", clip(s))
	}
	p.Expires = time.Duration(secs) * time.Second
	if s, err = get("X-Amz-SignedHeaders", false); err != nil {
		return p, err
	}
	if p.SignedHeaders, err = parseSignedHeaders(s); err != nil {
		return p, err
	}
	if s, err = get("X-Amz-Signature", false); err != nil {
		return p, err
	}
	if p.Signature, err = parseSignature(s); err != nil {
		return p, err
	}
	if p.SecurityToken, err = get("X-Amz-Security-Token", true); err != nil {
		return p, err
	}
	if _, present := q["X-Amz-Security-Token"]; present && p.SecurityToken == "" {
		return p, errors.New("X-Amz-Security-Token is empty")
	}
	return p, nil
}

func checkAlgorithm(alg string) error {
	if alg != Algorithm {
		return fmt.Errorf("algorithm %s is not %s", clip(alg), Algorithm)
	}
	return nil
}

// parseCredential parses AKID/yyyymmdd/region/service/aws4_request.
func parseCredential(s string) (CredentialScope, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 5 {
		return CredentialScope{}, fmt.Errorf("credential %s is not AKID/yyyymmdd/region/service/aws4_request", clip(s))
	}
	c := CredentialScope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3], Terminal: parts[4]}
	switch {
	case !isKeyID(c.AccessKeyID):
		return CredentialScope{}, fmt.Errorf("access key id %s is not 1 to 128 letters or digits", clip(c.AccessKeyID))
	case !isScopeDate(c.Date):
		return CredentialScope{}, fmt.Errorf("credential scope date %s is not yyyymmdd", clip(c.Date))
	case !isName(c.Region):
		return CredentialScope{}, fmt.Errorf("credential scope region %s is not a region name", clip(c.Region))
	case !isName(c.Service):
		return CredentialScope{}, fmt.Errorf("credential scope service %s is not a service name", clip(c.Service))
	case c.Terminal != ScopeTerminal:
		return CredentialScope{}, fmt.Errorf("credential scope ends in %s, not %s", clip(c.Terminal), ScopeTerminal)
	}
	return c, nil
}

// parseSignedHeaders parses "a;b;host": lower-case header names, strictly
// ascending (sorted, no duplicates), including host.
func parseSignedHeaders(s string) ([]string, error) {
	names := strings.Split(s, ";")
	if len(names) > 64 {
		return nil, fmt.Errorf("%d signed headers; at most 64 accepted", len(names))
	}
	host := false
	for i, n := range names {
		if !isHeaderName(n) {
			return nil, fmt.Errorf("signed header %s is not a lower-case header name", clip(n))
		}
		if i > 0 && n <= names[i-1] {
			return nil, fmt.Errorf("signed headers %s are not sorted and unique", clip(s))
		}
		host = host || n == "host"
	}
	if !host {
		return nil, fmt.Errorf("signed headers %s do not include host", clip(s))
	}
	return names, nil
}

func parseSignature(s string) (string, error) {
	if len(s) != 64 {
		return "", fmt.Errorf("signature is %d characters, not 64 hex digits", len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", errors.New("signature is not lower-case hex")
		}
	}
	return s, nil
}

func parseAmzDate(s string) (time.Time, error) {
	t, err := time.Parse(amzDateFormat, s)
	if err != nil || t.Format(amzDateFormat) != s {
		return time.Time{}, fmt.Errorf("X-Amz-Date %s is not yyyymmddThhmmssZ", clip(s))
	}
	return t, nil
}

func isScopeDate(s string) bool {
	t, err := time.Parse(scopeDateFormat, s)
	return err == nil && t.Format(scopeDateFormat) == s
}

// parseDigits parses 1 to max decimal digits.
func parseDigits(s string, max int) (int, bool) {
	if len(s) == 0 || len(s) > max {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func isKeyID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isName accepts region and service names: lower-case letters, digits, '-'.
func isName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || c == '-') {
			return false
		}
	}
	return true
}

// isHeaderName accepts lower-case RFC 9110 token characters.
func isHeaderName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// clip quotes an untrusted value for a log message, shortened to 64 bytes.
func clip(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "…"
	}
	return strconv.Quote(s)
}

// queryParam is one decoded query parameter.
type queryParam struct{ key, value string }

// parseQuery decodes a raw query string, keeping order and duplicates. In
// strict mode (auth tokens) every parameter must be key=value with a
// non-empty key; otherwise empty segments are skipped and a bare key has an
// empty value, as net/url does.
func parseQuery(raw string, strict bool) ([]queryParam, error) {
	var params []queryParam
	for seg := range strings.SplitSeq(raw, "&") {
		if seg == "" && !strict {
			continue
		}
		k, v, ok := strings.Cut(seg, "=")
		if strict && (!ok || k == "") {
			return nil, fmt.Errorf("query parameter %s is not key=value", clip(seg))
		}
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("query parameter %s has a bad %%-escape", clip(seg))
		}
		params = append(params, queryParam{dk, dv})
	}
	return params, nil
}

// canonicalQuery encodes every parameter but X-Amz-Signature (RFC 3986,
// unreserved characters kept), sorts by encoded key then encoded value and
// joins with '&'.
func canonicalQuery(params []queryParam) string {
	enc := make([]queryParam, 0, len(params))
	for _, p := range params {
		if p.key == "X-Amz-Signature" {
			continue
		}
		enc = append(enc, queryParam{uriEncode(p.key, false), uriEncode(p.value, false)})
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i].key != enc[j].key {
			return enc[i].key < enc[j].key
		}
		return enc[i].value < enc[j].value
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// uriEncode percent-encodes every byte except A-Za-z0-9-_.~ (and '/' when
// keepSlash), with upper-case hex, as SigV4 requires.
func uriEncode(s string, keepSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// canonicalHeaderValue trims a header value and collapses runs of spaces.
func canonicalHeaderValue(v string) string {
	return strings.Join(strings.FieldsFunc(v, func(r rune) bool { return r == ' ' }), " ")
}

// signature computes the hex SigV4 signature of canonicalRequest.
func signature(secret string, scope CredentialScope, amzDate, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	stringToSign := Algorithm + "\n" + amzDate + "\n" + scope.scope() + "\n" + hex.EncodeToString(sum[:])
	k := hmacSHA256([]byte("AWS4"+secret), scope.Date)
	k = hmacSHA256(k, scope.Region)
	k = hmacSHA256(k, scope.Service)
	k = hmacSHA256(k, scope.Terminal)
	return hex.EncodeToString(hmacSHA256(k, stringToSign))
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// signatureMatches compares two hex signatures in constant time.
func signatureMatches(computed, presented string) bool {
	return hmac.Equal([]byte(computed), []byte(presented))
}

// lookupKey finds the credential for akid or explains how to get one.
func lookupKey(lookup CredentialLookup, akid string) (Credential, error) {
	if lookup != nil {
		if c, ok := lookup.LookupAccessKey(akid); ok {
			return c, nil
		}
	}
	return Credential{}, fail(ErrUnknownKey,
		"unknown access key %s: use test/test or create a key with `aws iam create-access-key`", akid)
}

// checkCredential applies the rules for temporary credentials: not expired,
// and the presented session token equal to the credential's. A session token
// presented with a long-term key is ignored, as LocalStack does, so test/test
// works with a stray AWS_SESSION_TOKEN in the environment.
func checkCredential(c Credential, sessionToken string, now time.Time) error {
	if c.expired(now) {
		return fail(ErrCredentialsExpired, "credentials for access key %s expired at %s",
			c.AccessKeyID, c.Expires.UTC().Format(time.RFC3339))
	}
	if !c.Temporary() {
		return nil
	}
	if sessionToken == "" {
		return fail(ErrInvalidSessionToken,
			"access key %s is a temporary credential but no session token (X-Amz-Security-Token) was sent", c.AccessKeyID)
	}
	if subtle.ConstantTimeCompare([]byte(sessionToken), []byte(c.SessionToken)) != 1 {
		return fail(ErrInvalidSessionToken, "the session token sent is not the one issued with access key %s", c.AccessKeyID)
	}
	return nil
}

// VerifyRequest checks the SigV4 signature of an AWS API request as a server
// received it: Authorization-header signing, or query (presigned) signing
// when there is no Authorization header. body must be the exact request body
// bytes. It returns nil, or an *Error whose kind is ErrMissingAuth,
// ErrMalformed, ErrUnknownKey, ErrSignatureMismatch, ErrExpired,
// ErrNotYetValid, ErrCredentialsExpired or ErrInvalidSessionToken.
//
// The signature is recomputed over exactly the headers the client listed in
// SignedHeaders (host from r.Host), the client's X-Amz-Date and the SHA-256 of
// body, so headers added or changed by proxies and transports after signing do
// not matter unless they were signed. Header-signed requests must be dated
// within MaxRequestSkew of now; presigned ones must not have expired.
// VerifyRequest does not check the scope's region or service: the caller
// routes on them (see ParseAuthorization).
func VerifyRequest(r *http.Request, body []byte, lookup CredentialLookup, now time.Time) error {
	_, err := Authenticate(r, body, lookup, now)
	return err
}

// Authenticate is VerifyRequest returning the identity that signed r.
func Authenticate(r *http.Request, body []byte, lookup CredentialLookup, now time.Time) (Identity, error) {
	var (
		auth         AuthHeader
		amzDate      string
		sessionToken string
		params       []queryParam
	)
	params, err := parseQuery(r.URL.RawQuery, false)
	if err != nil {
		return Identity{}, fail(ErrMalformed, "malformed query string: %v", err)
	}
	authz := r.Header.Values("Authorization")
	switch {
	case len(authz) > 1:
		return Identity{}, fail(ErrMalformed, "the request has %d Authorization headers", len(authz))
	case len(authz) == 1:
		if auth, err = ParseAuthorization(authz[0]); err != nil {
			return Identity{}, err
		}
		date, raw, err := requestDate(r.Header)
		if err != nil {
			return Identity{}, err
		}
		if !strings.HasPrefix(raw, auth.Credential.Date) {
			return Identity{}, fail(ErrMalformed, "credential scope date %s is not the date of the request %s", auth.Credential.Date, raw)
		}
		if now.Sub(date) > MaxRequestSkew {
			return Identity{}, fail(ErrExpired, "signature expired: request dated %s is more than %s before now (%s)",
				date.Format(time.RFC3339), MaxRequestSkew, now.UTC().Format(time.RFC3339))
		}
		if date.Sub(now) > MaxRequestSkew {
			return Identity{}, fail(ErrNotYetValid, "signature not yet current: request dated %s is more than %s after now (%s)",
				date.Format(time.RFC3339), MaxRequestSkew, now.UTC().Format(time.RFC3339))
		}
		amzDate = raw
		tokens := r.Header.Values("X-Amz-Security-Token")
		if len(tokens) > 1 {
			return Identity{}, fail(ErrMalformed, "the request has %d X-Amz-Security-Token headers", len(tokens))
		}
		if len(tokens) == 1 {
			sessionToken = tokens[0]
		}
	case hasParam(params, "X-Amz-Signature") || hasParam(params, "X-Amz-Algorithm"):
		q := make(url.Values)
		for _, p := range params {
			q[p.key] = append(q[p.key], p.value)
		}
		pq, err := ParsePresignedQuery(q)
		if err != nil {
			return Identity{}, err
		}
		if exp := pq.Date.Add(pq.Expires); now.After(exp) {
			return Identity{}, fail(ErrExpired, "presigned request expired at %s", exp.Format(time.RFC3339))
		}
		if pq.Date.Sub(now) > MaxRequestSkew {
			return Identity{}, fail(ErrNotYetValid, "presigned request dated %s is more than %s after now (%s)",
				pq.Date.Format(time.RFC3339), MaxRequestSkew, now.UTC().Format(time.RFC3339))
		}
		auth, amzDate, sessionToken = pq.AuthHeader, pq.Date.Format(amzDateFormat), pq.SecurityToken
	default:
		return Identity{}, fail(ErrMissingAuth, "the request is not signed: no Authorization header and no X-Amz-Signature parameter")
	}

	cred, err := lookupKey(lookup, auth.Credential.AccessKeyID)
	if err != nil {
		return Identity{}, err
	}
	if err := checkCredential(cred, sessionToken, now); err != nil {
		return Identity{}, err
	}

	var cr strings.Builder
	cr.WriteString(r.Method)
	cr.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	cr.WriteString(uriEncode(path, true))
	cr.WriteByte('\n')
	cr.WriteString(canonicalQuery(params))
	cr.WriteByte('\n')
	for _, h := range auth.SignedHeaders {
		vals := headerValues(r, h)
		if len(vals) == 0 {
			return Identity{}, fail(ErrSignatureMismatch, "signed header %s is not in the request", h)
		}
		cr.WriteString(h)
		cr.WriteByte(':')
		for i, v := range vals {
			if i > 0 {
				cr.WriteByte(',')
			}
			cr.WriteString(canonicalHeaderValue(v))
		}
		cr.WriteByte('\n')
	}
	cr.WriteByte('\n')
	cr.WriteString(strings.Join(auth.SignedHeaders, ";"))
	cr.WriteByte('\n')
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	if claimed := r.Header.Get("X-Amz-Content-Sha256"); claimed != "" && claimed != payloadHash {
		return Identity{}, fail(ErrSignatureMismatch, "X-Amz-Content-Sha256 %s is not the SHA-256 of the body", clip(claimed))
	}
	cr.WriteString(payloadHash)

	if !signatureMatches(signature(cred.SecretAccessKey, auth.Credential, amzDate, cr.String()), auth.Signature) {
		return Identity{}, fail(ErrSignatureMismatch,
			"signature mismatch for access key %s: check the secret key and that the request was not altered after signing (signed headers %s)",
			cred.AccessKeyID, strings.Join(auth.SignedHeaders, ";"))
	}
	return cred.identity(), nil
}

// requestDate returns the request's signing time from X-Amz-Date, or from
// Date when there is no X-Amz-Date, with its yyyymmddThhmmssZ form.
func requestDate(h http.Header) (time.Time, string, error) {
	switch v := h.Values("X-Amz-Date"); len(v) {
	case 1:
		t, err := parseAmzDate(v[0])
		if err != nil {
			return time.Time{}, "", &Error{Kind: ErrMalformed, Reason: err.Error()}
		}
		return t, v[0], nil
	case 0:
	default:
		return time.Time{}, "", fail(ErrMalformed, "the request has %d X-Amz-Date headers", len(v))
	}
	if v := h.Values("Date"); len(v) == 1 {
		if t, err := http.ParseTime(v[0]); err == nil {
			t = t.UTC()
			return t, t.Format(amzDateFormat), nil
		}
		return time.Time{}, "", fail(ErrMalformed, "Date header %s is not an HTTP date", clip(v[0]))
	}
	return time.Time{}, "", fail(ErrMalformed, "the request has no X-Amz-Date header")
}

// headerValues returns the values of a signed header as the client sent it.
// Go's server moves Host, and sometimes Content-Length and
// Transfer-Encoding, out of r.Header.
func headerValues(r *http.Request, name string) []string {
	switch name {
	case "host":
		if r.Host == "" {
			return nil
		}
		return []string{r.Host}
	case "content-length":
		if v := r.Header.Values("Content-Length"); len(v) > 0 {
			return v
		}
		if r.ContentLength >= 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
		return nil
	case "transfer-encoding":
		if len(r.TransferEncoding) > 0 {
			return r.TransferEncoding
		}
	}
	return r.Header.Values(name)
}

func hasParam(params []queryParam, key string) bool {
	for _, p := range params {
		if p.key == key {
			return true
		}
	}
	return false
}
