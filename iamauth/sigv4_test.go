package iamauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// verifyServer is an httptest server that runs Authenticate on every
// request it receives, as the gateway will, and reports the outcome.
type verifyServer struct {
	*httptest.Server
	results chan error
}

func newVerifyServer(t *testing.T, lookup CredentialLookup, now func() time.Time) *verifyServer {
	t.Helper()
	vs := &verifyServer{results: make(chan error, 16)}
	vs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			_, err = Authenticate(r, body, lookup, now())
		}
		vs.results <- err
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>`+
			`<Message>test server</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
	}))
	t.Cleanup(vs.Close)
	return vs
}

// result returns the outcome of the first request the server received.
func (vs *verifyServer) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-vs.results:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the server received no request")
		return nil
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestVerifyRequestSigner(t *testing.T) {
	const form = "Action=GetCallerIdentity&Version=2011-06-15"
	test := awsCreds("test", "test", "")
	type reqCase struct {
		name    string
		method  string
		path    string // path and query
		body    string
		creds   aws.Credentials
		at      time.Time // signing time; zero: fixedNow
		presign bool
		// after runs after signing, before sending.
		after func(r *http.Request)
		// sent replaces the body sent (same length keeps Content-Length).
		sent string
		err  error
	}
	cases := []reqCase{
		{name: "POST form", method: "POST", path: "/", body: form, creds: test},
		{name: "GET with query", method: "GET", path: "/?Version=2011-06-15&Action=GetCallerIdentity&Empty=&Sp=a%20b&b=a-b&b=a%2Fb&%C3%BC=~", creds: test},
		{name: "escaped path", method: "GET", path: "/a%20b/c~d/%C3%BC", creds: test},
		{name: "IAM user key", method: "POST", path: "/", body: form, creds: awsCreds("AKIAUSER", "usersecret", "")},
		{name: "12-digit key", method: "POST", path: "/", body: form, creds: awsCreds("123456789012", "test", "")},
		{name: "unsigned header added after signing", method: "POST", path: "/", body: form, creds: test,
			after: func(r *http.Request) { r.Header.Set("X-Forwarded-For", "10.0.0.1") }},
		{name: "session credentials", method: "POST", path: "/", body: form, creds: awsCreds("ASIATEMP", "tempsecret", "sessiontok")},
		{name: "presigned GET", method: "GET", path: "/?Action=GetCallerIdentity&Version=2011-06-15", creds: test, presign: true},

		{name: "body altered", method: "POST", path: "/", body: form, creds: test,
			sent: strings.Replace(form, "GetCallerIdentity", "GetCallerIdentitx", 1), err: ErrSignatureMismatch},
		{name: "signed header altered", method: "POST", path: "/", body: form, creds: test, err: ErrSignatureMismatch,
			after: func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }},
		{name: "query altered", method: "GET", path: "/?Action=GetCallerIdentity", creds: test, err: ErrSignatureMismatch,
			after: func(r *http.Request) { r.URL.RawQuery = "Action=GetCallerIdentitx" }},
		{name: "signed header removed", method: "POST", path: "/", body: form, creds: test, err: ErrSignatureMismatch,
			after: func(r *http.Request) { r.Header.Del("Content-Type") }},
		{name: "wrong secret", method: "POST", path: "/", body: form, creds: awsCreds("test", "nottest", ""), err: ErrSignatureMismatch},
		{name: "unknown key", method: "POST", path: "/", body: form, creds: awsCreds("AKIANOBODY", "x", ""), err: ErrUnknownKey},
		{name: "not signed", method: "POST", path: "/", body: form, creds: test, err: ErrMissingAuth,
			after: func(r *http.Request) { r.Header.Del("Authorization") }},
		{name: "garbage Authorization", method: "POST", path: "/", body: form, creds: test, err: ErrMalformed,
			after: func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test") }},
		{name: "two Authorization headers", method: "POST", path: "/", body: form, creds: test, err: ErrMalformed,
			after: func(r *http.Request) { r.Header.Add("Authorization", r.Header.Get("Authorization")) }},
		{name: "no X-Amz-Date", method: "POST", path: "/", body: form, creds: test, err: ErrMalformed,
			after: func(r *http.Request) { r.Header.Del("X-Amz-Date") }},
		{name: "dated 20 minutes ago", method: "POST", path: "/", body: form, creds: test, at: fixedNow.Add(-20 * time.Minute), err: ErrExpired},
		{name: "dated 20 minutes ahead", method: "POST", path: "/", body: form, creds: test, at: fixedNow.Add(20 * time.Minute), err: ErrNotYetValid},
		{name: "session token stripped", method: "POST", path: "/", body: form, creds: awsCreds("ASIATEMP", "tempsecret", "sessiontok"),
			err: ErrInvalidSessionToken, after: func(r *http.Request) { r.Header.Del("X-Amz-Security-Token") }},
		{name: "temporary key without session token", method: "POST", path: "/", body: form,
			creds: awsCreds("ASIATEMP", "tempsecret", ""), err: ErrInvalidSessionToken},
		{name: "expired session credentials", method: "POST", path: "/", body: form, creds: awsCreds("ASIAOLD", "oldsecret", "oldtok"),
			err: ErrCredentialsExpired},
		{name: "presigned expired", method: "GET", path: "/?Action=GetCallerIdentity", creds: test, presign: true,
			at: fixedNow.Add(-time.Hour), err: ErrExpired},
		{name: "presigned tampered", method: "GET", path: "/?Action=GetCallerIdentity", creds: test, presign: true, err: ErrSignatureMismatch,
			after: func(r *http.Request) {
				r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "GetCallerIdentity", "GetSessionToken", 1)
			}},
	}
	vs := newVerifyServer(t, testLookup(t), func() time.Time { return fixedNow.Add(time.Minute) })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, vs.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body == "" {
				req.Body, req.ContentLength = nil, 0
			} else {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			}
			at := tc.at
			if at.IsZero() {
				at = fixedNow
			}
			signer := v4.NewSigner()
			if tc.presign {
				q := req.URL.Query()
				q.Set("X-Amz-Expires", "300")
				req.URL.RawQuery = q.Encode()
				u, _, err := signer.PresignHTTP(context.Background(), tc.creds, req, sha256Hex([]byte(tc.body)), "sts", testRegion, at)
				if err != nil {
					t.Fatal(err)
				}
				if req.URL, err = url.Parse(u); err != nil {
					t.Fatal(err)
				}
			} else if err := signer.SignHTTP(context.Background(), tc.creds, req, sha256Hex([]byte(tc.body)), "sts", testRegion, at); err != nil {
				t.Fatal(err)
			}
			if tc.after != nil {
				tc.after(req)
			}
			if tc.sent != "" {
				req.Body = io.NopCloser(strings.NewReader(tc.sent))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			err = vs.result(t)
			if tc.err == nil && err != nil || !errors.Is(err, tc.err) {
				t.Fatalf("Authenticate = %v, want %v", err, tc.err)
			}
			if err != nil {
				t.Logf("rejected: %v", err)
			}
		})
	}
}

// TestVerifyRequestSDKClient sends a real aws-sdk-go-v2 STS call, with the
// headers its transport adds after signing.
func TestVerifyRequestSDKClient(t *testing.T) {
	for _, tc := range []struct {
		name  string
		creds aws.Credentials
		err   error
	}{
		{"test/test", awsCreds("test", "test", ""), nil},
		{"wrong secret", awsCreds("test", "wrong", ""), ErrSignatureMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := newVerifyServer(t, StaticCredentials{}, time.Now)
			client := sts.New(sts.Options{
				Region:           testRegion,
				BaseEndpoint:     aws.String(vs.URL),
				Credentials:      aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return tc.creds, nil }),
				RetryMaxAttempts: 1,
			})
			_, _ = client.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
			if err := vs.result(t); !errors.Is(err, tc.err) {
				t.Fatalf("Authenticate = %v, want %v", err, tc.err)
			}
		})
	}
}

// TestVerifyRequestAWSCLI sends real botocore-signed calls.
func TestVerifyRequestAWSCLI(t *testing.T) {
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("aws CLI not on PATH")
	}
	var s Store
	if err := s.Put(Credential{AccessKeyID: "ASIANOW", SecretAccessKey: "nowsecret", SessionToken: "nowsession",
		Expires: time.Now().Add(time.Hour), Principal: "arn:aws:sts::111122223333:assumed-role/r/s", Account: "111122223333"}); err != nil {
		t.Fatal(err)
	}
	lookup := Chain{&s, StaticCredentials{}}
	for _, tc := range []struct {
		name  string
		creds aws.Credentials
		args  []string
		err   error
	}{
		{"sts test/test", awsCreds("test", "test", ""), []string{"sts", "get-caller-identity"}, nil},
		{"rds with parameters", awsCreds("test", "test", ""),
			[]string{"rds", "describe-db-proxies", "--db-proxy-name", "my proxy", "--filters", "Name=a,Values=b c,d~e"}, nil},
		{"session credentials", awsCreds("ASIANOW", "nowsecret", "nowsession"), []string{"sts", "get-caller-identity"}, nil},
		{"wrong secret", awsCreds("test", "wrong", ""), []string{"sts", "get-caller-identity"}, ErrSignatureMismatch},
		{"wrong session token", awsCreds("ASIANOW", "nowsecret", "forged"), []string{"sts", "get-caller-identity"}, ErrInvalidSessionToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vs := newVerifyServer(t, lookup, time.Now)
			args := append([]string{"--endpoint-url", vs.URL, "--region", testRegion}, tc.args...)
			out, err := runAWS(t, tc.creds, args...)
			if err == nil {
				t.Fatalf("the CLI succeeded against a server that always fails: %s", out)
			}
			if got := vs.result(t); !errors.Is(got, tc.err) {
				t.Fatalf("Authenticate = %v, want %v (CLI said %s)", got, tc.err, out)
			}
		})
	}
}

func TestParseAuthorization(t *testing.T) {
	sig := strings.Repeat("0f", 32)
	good := AuthHeader{
		Algorithm:     Algorithm,
		Credential:    CredentialScope{AccessKeyID: "test", Date: "20261125", Region: "us-east-1", Service: "rds", Terminal: "aws4_request"},
		SignedHeaders: []string{"content-type", "host", "x-amz-date"},
		Signature:     sig,
	}
	for _, tc := range []struct {
		header string
		want   *AuthHeader // nil: must fail
	}{
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + sig, &good},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request,SignedHeaders=content-type;host;x-amz-date,Signature=" + sig, &good},
		{"AWS4-HMAC-SHA256 Signature=" + sig + ", Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=content-type;host;x-amz-date", &good},
		{"", nil},
		{"AWS4-HMAC-SHA256", nil},
		{"AWS4-HMAC-SHA256 ", nil},
		{"AWS AKID:sig", nil},
		{"AWS4-ECDSA-P256-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host", nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=" + sig + ", Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=" + sig + ", Extra=1", nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=" + strings.ToUpper(sig), nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=abc", nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=x-amz-date, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=x-amz-date;host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host;host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=Host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds, SignedHeaders=host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request/x, SignedHeaders=host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261325/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/US-EAST-1/rds/aws4_request, SignedHeaders=host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_requests, SignedHeaders=host, Signature=" + sig, nil},
		{"AWS4-HMAC-SHA256 Credential test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=" + sig, nil},
	} {
		got, err := ParseAuthorization(tc.header)
		if tc.want == nil {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("ParseAuthorization(%q) = %+v, %v; want ErrMalformed", tc.header, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, *tc.want) {
			t.Errorf("ParseAuthorization(%q) = %+v, %v; want %+v", tc.header, got, err, *tc.want)
		}
	}
}

func TestParsePresignedQuery(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	base := url.Values{
		"X-Amz-Algorithm":     {Algorithm},
		"X-Amz-Credential":    {"test/20261125/us-east-1/sts/aws4_request"},
		"X-Amz-Date":          {"20261125T191331Z"},
		"X-Amz-Expires":       {"900"},
		"X-Amz-SignedHeaders": {"host"},
		"X-Amz-Signature":     {sig},
	}
	p, err := ParsePresignedQuery(base)
	if err != nil {
		t.Fatal(err)
	}
	if p.Expires != 900*time.Second || !p.Date.Equal(time.Date(2026, 11, 25, 19, 13, 31, 0, time.UTC)) ||
		p.Credential.Service != "sts" || p.Signature != sig || p.SecurityToken != "" {
		t.Errorf("ParsePresignedQuery = %+v", p)
	}
	for name, edit := range map[string]func(url.Values){
		"missing date":      func(q url.Values) { delete(q, "X-Amz-Date") },
		"two dates":         func(q url.Values) { q.Add("X-Amz-Date", "20261125T191331Z") },
		"bad date":          func(q url.Values) { q.Set("X-Amz-Date", "2026-11-25T19:13:31Z") },
		"scope date":        func(q url.Values) { q.Set("X-Amz-Date", "20261124T191331Z") },
		"zero expiry":       func(q url.Values) { q.Set("X-Amz-Expires", "0") },
		"signed expiry":     func(q url.Values) { q.Set("X-Amz-Expires", "+900") },
		"expiry too long":   func(q url.Values) { q.Set("X-Amz-Expires", "604801") },
		"empty token":       func(q url.Values) { q.Set("X-Amz-Security-Token", "") },
		"two tokens":        func(q url.Values) { q["X-Amz-Security-Token"] = []string{"a", "b"} },
		"lowercase algo":    func(q url.Values) { q.Set("X-Amz-Algorithm", "aws4-hmac-sha256") },
		"no signed headers": func(q url.Values) { delete(q, "X-Amz-SignedHeaders") },
	} {
		q := url.Values{}
		for k, v := range base {
			q[k] = append([]string(nil), v...)
		}
		edit(q)
		if _, err := ParsePresignedQuery(q); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestCanonicalQuery checks encoding and sorting on values where they
// interact: pairs sort after encoding, so '%' (0x25) sorts first.
func TestCanonicalQuery(t *testing.T) {
	raw := "b=a%2Fb&b=a-b&a=%20+%2B&%C3%BC=~&A=1&z="
	params, err := parseQuery(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	got := canonicalQuery(params)
	want := "%C3%BC=~&A=1&a=%20%20%2B&b=a%2Fb&b=a-b&z="
	if got != want {
		t.Errorf("canonicalQuery = %s, want %s", got, want)
	}
	if !bytes.Equal([]byte(uriEncode("/a b/~ü", true)), []byte("/a%20b/~%C3%BC")) {
		t.Errorf("uriEncode path = %s", uriEncode("/a b/~ü", true))
	}
}
