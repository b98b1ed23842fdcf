package iamauth

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// TokenService is the signing name of RDS IAM auth tokens.
	TokenService = "rds-db"
	// MaxTokenLifetime is the longest X-Amz-Expires a token may carry; both
	// the AWS CLI and aws-sdk-go-v2 sign for exactly this long.
	MaxTokenLifetime = 900 * time.Second
	// DefaultTokenSkew is how far in the future a token's X-Amz-Date may
	// lie, to tolerate clients whose clocks run ahead.
	DefaultTokenSkew = 5 * time.Minute

	maxCacheEntries = 1024
)

// Token is a parsed RDS IAM auth token (generate-db-auth-token /
// feature/rds/auth.BuildAuthToken output), in either accepted form:
//
//	host:port/?Action=connect&DBUser=…&X-Amz-Algorithm=…   (AWS CLI)
//	host:port?Action=connect&DBUser=…&X-Amz-Algorithm=…    (aws-sdk-go-v2)
//
// ParseToken checks only its syntax; TokenValidator.Validate checks what it
// says and its signature.
type Token struct {
	Address string // host:port the token was signed for, as written in it
	Action  string // always "connect" in a valid token
	DBUser  string // the database user the token logs in as
	PresignedQuery
	params []queryParam // decoded parameters in token order
}

// Expiry is when the token stops being valid: X-Amz-Date plus X-Amz-Expires.
func (t Token) Expiry() time.Time { return t.Date.Add(t.Expires) }

// tokenParams are the parameters a token may carry, each at most once.
var tokenParams = map[string]bool{
	"Action": true, "DBUser": true, "X-Amz-Algorithm": true, "X-Amz-Credential": true,
	"X-Amz-Date": true, "X-Amz-Expires": true, "X-Amz-SignedHeaders": true,
	"X-Amz-Signature": true, "X-Amz-Security-Token": true,
}

// ParseToken parses an RDS IAM auth token. It accepts exactly the parameters
// the AWS tools emit (Action, DBUser and the X-Amz-* query-auth set), each
// exactly once (X-Amz-Security-Token at most once). Errors are *Error of kind
// ErrMalformed; a password that is not a token at all fails here too.
func ParseToken(s string) (Token, error) {
	t, err := parseToken(s)
	if err != nil {
		return Token{}, &Error{Kind: ErrMalformed, Reason: "malformed IAM auth token: " + err.Error()}
	}
	return t, nil
}

func parseToken(s string) (Token, error) {
	if len(s) > maxAuthLen {
		return Token{}, fmt.Errorf("longer than %d bytes", maxAuthLen)
	}
	addr, rawQuery, ok := strings.Cut(s, "?")
	if !ok {
		return Token{}, errors.New("no '?' query part (is this a password rather than a token?)")
	}
	if strings.Contains(addr, "://") {
		return Token{}, errors.New("it starts with a URL scheme; pass the token exactly as generate-db-auth-token printed it")
	}
	addr = strings.TrimSuffix(addr, "/")
	if err := checkAddress(addr); err != nil {
		return Token{}, err
	}
	if strings.ContainsAny(rawQuery, "# ") {
		return Token{}, errors.New("the query contains '#' or a space")
	}
	params, err := parseQuery(rawQuery, true)
	if err != nil {
		return Token{}, err
	}
	q := make(url.Values, len(params))
	for _, p := range params {
		if !tokenParams[p.key] {
			return Token{}, fmt.Errorf("unknown parameter %s", clip(p.key))
		}
		if _, dup := q[p.key]; dup {
			return Token{}, fmt.Errorf("parameter %s appears more than once", p.key)
		}
		q[p.key] = []string{p.value}
	}
	t := Token{Address: addr, Action: q.Get("Action"), DBUser: q.Get("DBUser"), params: params}
	if _, ok := q["Action"]; !ok {
		return Token{}, errors.New("no Action parameter")
	}
	if t.DBUser == "" {
		return Token{}, errors.New("no DBUser parameter")
	}
	if t.PresignedQuery, err = parsePresigned(q); err != nil {
		return Token{}, err
	}
	return t, nil
}

// checkAddress requires host:port with a non-empty host and a port from 1 to
// 65535.
func checkAddress(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("address %s is not host:port", clip(addr))
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("/@?#[]\\", c) >= 0 {
			return fmt.Errorf("address %s has an invalid host", clip(addr))
		}
	}
	if n, ok := parseDigits(port, 5); !ok || n < 1 || n > 65535 {
		return fmt.Errorf("address %s has an invalid port", clip(addr))
	}
	return nil
}

// canonicalHosts returns the host header values a signer may have used for
// addr. Both SDKs drop the port when it is 443 (the tokens are signed as
// https URLs); botocore lower-cases the host name and keeps IPv6 brackets,
// aws-sdk-go-v2 keeps the case and drops the brackets. Each candidate costs
// one HMAC chain, and there are at most four.
func canonicalHosts(addr string) []string {
	host, port, _ := net.SplitHostPort(addr)
	var out []string
	add := func(h string) {
		for _, o := range out {
			if o == h {
				return
			}
		}
		out = append(out, h)
	}
	if port == "443" {
		add(host)
		add(strings.ToLower(host))
		if strings.Contains(host, ":") {
			add("[" + strings.ToLower(host) + "]")
		}
		return out
	}
	add(addr)
	add(strings.ToLower(addr))
	return out
}

// sameAddress compares host:port addresses, host names case-insensitively
// and ports numerically.
func sameAddress(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || !strings.EqualFold(ah, bh) {
		return false
	}
	an, err1 := strconv.Atoi(ap)
	bn, err2 := strconv.Atoi(bp)
	return err1 == nil && err2 == nil && an == bn
}

// TokenExpectation is what a token must say to log in on one connection.
type TokenExpectation struct {
	// Addresses are the host:port pairs a client may have dialled to reach
	// this proxy endpoint: its advertised address and, for published
	// container ports, the published ones. The token's address must be one.
	Addresses []string
	// AnyAddress skips the address check (signature-only mode). With
	// AnyAddress false and no Addresses, every token is rejected.
	AnyAddress bool
	// Region is the proxy's region; the token's scope must name it.
	Region string
	// User is the user name from the client's startup or handshake packet;
	// the token's DBUser must equal it.
	User string
	// Resource is the rds-db ARN the login is for
	// (arn:aws:rds-db:<region>:<account>:dbuser:prx-<id>/<user>); an
	// Authorizer, when set, must allow rds-db:connect on it.
	Resource string
}

// cacheKey renders w unambiguously for the validation cache.
func (w TokenExpectation) cacheKey() string {
	return fmt.Sprintf("%q %t %q %q %q", w.Addresses, w.AnyAddress, w.Region, w.User, w.Resource)
}

// TokenValidator validates RDS IAM auth tokens presented as passwords. It is
// safe for concurrent use and must not be copied after first use. Creds is
// required; the other fields have defaults.
type TokenValidator struct {
	// Creds finds the secret (and session token) of the signing access key.
	Creds CredentialLookup
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Skew is how far in the future X-Amz-Date may be; zero means
	// DefaultTokenSkew.
	Skew time.Duration
	// Authorize, when set (--enforce-iam), must allow rds-db:connect on
	// want.Resource for the token's identity; it runs on every login, cached
	// or not, so policy changes take effect at once.
	Authorize func(id Identity, action, resource string) error

	mu    sync.Mutex
	cache map[tokenCacheKey]tokenCacheEntry
}

type tokenCacheKey struct{ token, want string }

type tokenCacheEntry struct {
	cred  Credential // as validated; a changed or deleted key invalidates
	until time.Time  // token expiry, or the credential's if earlier
}

// Validate checks token against want and returns who signed it. It checks,
// in order: syntax (ParseToken); service rds-db, Action=connect,
// SignedHeaders=host and X-Amz-Expires ≤ 900; the region, the DBUser and the
// address against want; that now is within [X-Amz-Date − Skew,
// X-Amz-Date + X-Amz-Expires]; that the access key is known, not expired, and
// presented with its session token if it is temporary; and finally the
// signature, recomputed over canonical URI "/", the sorted RFC 3986-encoded
// query, the host header and the empty-payload hash, and compared in constant
// time.
//
// Errors are *Error; their Reason says what to fix, for the proxy's log.
// Successful validations are cached until the token (or the credential)
// expires, keyed by the token and want; a cached entry is dropped when its
// access key changes or disappears.
func (v *TokenValidator) Validate(token string, want TokenExpectation) (Identity, error) {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	key := tokenCacheKey{token, want.cacheKey()}
	if id, ok := v.cached(key, now); ok {
		return id, v.authorize(id, want)
	}
	t, err := ParseToken(token)
	if err != nil {
		return Identity{}, err
	}
	cred, err := v.check(t, want, now)
	if err != nil {
		return Identity{}, err
	}
	until := t.Expiry()
	if !cred.Expires.IsZero() && cred.Expires.Before(until) {
		until = cred.Expires
	}
	v.remember(key, tokenCacheEntry{cred: cred, until: until}, now)
	return cred.identity(), v.authorize(cred.identity(), want)
}

func (v *TokenValidator) authorize(id Identity, want TokenExpectation) error {
	if v.Authorize == nil || want.Resource == "" {
		return nil
	}
	return v.Authorize(id, "rds-db:connect", want.Resource)
}

func (v *TokenValidator) check(t Token, want TokenExpectation, now time.Time) (Credential, error) {
	switch {
	case t.Credential.Service != TokenService:
		return Credential{}, fail(ErrScopeMismatch, "token is signed for service %s; RDS IAM auth tokens are signed for %s",
			t.Credential.Service, TokenService)
	case t.Action != "connect":
		return Credential{}, fail(ErrMalformed, "token action is %s, not connect", clip(t.Action))
	case len(t.SignedHeaders) != 1: // parseSignedHeaders guarantees host is among them
		return Credential{}, fail(ErrMalformed, "token signs headers %s; an RDS IAM auth token signs only host",
			strings.Join(t.SignedHeaders, ";"))
	case t.Expires > MaxTokenLifetime:
		return Credential{}, fail(ErrMalformed, "token is valid for %s; at most %s is allowed", t.Expires, MaxTokenLifetime)
	case t.Credential.Region != want.Region:
		return Credential{}, fail(ErrScopeMismatch, "token signed for region %s, proxy is in region %s",
			t.Credential.Region, want.Region)
	case t.DBUser != want.User:
		return Credential{}, fail(ErrScopeMismatch, "token is for database user %s, login user is %s",
			clip(t.DBUser), clip(want.User))
	}
	if !want.AnyAddress {
		if len(want.Addresses) == 0 {
			return Credential{}, fail(ErrScopeMismatch, "token signed for host %s, but no endpoint addresses are configured to check it against", t.Address)
		}
		matched := false
		for _, a := range want.Addresses {
			matched = matched || sameAddress(t.Address, a)
		}
		if !matched {
			return Credential{}, fail(ErrScopeMismatch, "token signed for host %s, connection reached %s",
				t.Address, strings.Join(want.Addresses, " or "))
		}
	}
	skew := v.Skew
	if skew <= 0 {
		skew = DefaultTokenSkew
	}
	if now.After(t.Expiry()) {
		return Credential{}, fail(ErrExpired, "token expired at %s (signed at %s, now %s)",
			t.Expiry().Format(time.RFC3339), t.Date.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if t.Date.Sub(now) > skew {
		return Credential{}, fail(ErrNotYetValid, "token dated %s is more than %s ahead of now (%s); check the client's clock",
			t.Date.Format(time.RFC3339), skew, now.UTC().Format(time.RFC3339))
	}
	cred, err := lookupKey(v.Creds, t.Credential.AccessKeyID)
	if err != nil {
		return Credential{}, err
	}
	if err := checkCredential(cred, t.SecurityToken, now); err != nil {
		return Credential{}, err
	}
	query := canonicalQuery(t.params)
	amzDate := t.Date.Format(amzDateFormat)
	for _, host := range canonicalHosts(t.Address) {
		cr := "GET\n/\n" + query + "\nhost:" + host + "\n\nhost\n" + emptyPayloadHash
		if signatureMatches(signature(cred.SecretAccessKey, t.Credential, amzDate, cr), t.Signature) {
			return cred, nil
		}
	}
	return Credential{}, fail(ErrSignatureMismatch,
		"signature mismatch for access key %s: the token was signed with another secret key or altered after signing",
		cred.AccessKeyID)
}

func (v *TokenValidator) cached(key tokenCacheKey, now time.Time) (Identity, bool) {
	v.mu.Lock()
	e, ok := v.cache[key]
	v.mu.Unlock()
	if !ok {
		return Identity{}, false
	}
	if !now.Before(e.until) {
		v.forget(key)
		return Identity{}, false
	}
	if v.Creds != nil {
		if c, ok := v.Creds.LookupAccessKey(e.cred.AccessKeyID); ok && sameCredential(c, e.cred) {
			return c.identity(), true
		}
	}
	v.forget(key)
	return Identity{}, false
}

// sameCredential reports whether a and b are the same key with the same
// secret, session token, expiry and owner.
func sameCredential(a, b Credential) bool {
	return a.AccessKeyID == b.AccessKeyID && a.SecretAccessKey == b.SecretAccessKey &&
		a.SessionToken == b.SessionToken && a.Expires.Equal(b.Expires) &&
		a.Principal == b.Principal && a.Account == b.Account
}

func (v *TokenValidator) remember(key tokenCacheKey, e tokenCacheEntry, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cache == nil {
		v.cache = make(map[tokenCacheKey]tokenCacheEntry)
	}
	if len(v.cache) >= maxCacheEntries {
		for k, old := range v.cache {
			if !now.Before(old.until) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= maxCacheEntries {
			clear(v.cache)
		}
	}
	v.cache[key] = e
}

func (v *TokenValidator) forget(key tokenCacheKey) {
	v.mu.Lock()
	delete(v.cache, key)
	v.mu.Unlock()
}
