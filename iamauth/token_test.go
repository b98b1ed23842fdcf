package iamauth

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	rdsauth "github.com/aws/aws-sdk-go-v2/feature/rds/auth"
)

const (
	testHost   = "myproxy.proxy-abc.us-east-1.rds.amazonaws.com"
	testAddr   = testHost + ":5432"
	testRegion = "us-east-1"
)

// fixedNow is a signing time for deterministic tokens.
var fixedNow = time.Date(2026, 11, 25, 19, 20, 0, 0, time.UTC)

func awsCreds(akid, secret, session string) aws.Credentials {
	return aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: session}
}

// testLookup is the store the token and request tests validate against:
// test/test and 12-digit keys built in, a live temporary key and an expired
// one.
func testLookup(t testing.TB) CredentialLookup {
	t.Helper()
	var s Store
	for _, c := range []Credential{
		{AccessKeyID: "ASIATEMP", SecretAccessKey: "tempsecret", SessionToken: "sessiontok",
			Expires: fixedNow.Add(time.Hour), Principal: "arn:aws:sts::111122223333:assumed-role/app/s1", Account: "111122223333"},
		{AccessKeyID: "ASIAOLD", SecretAccessKey: "oldsecret", SessionToken: "oldtok",
			Expires: fixedNow.Add(-time.Minute), Principal: "arn:aws:sts::111122223333:assumed-role/app/s0", Account: "111122223333"},
		{AccessKeyID: "AKIAUSER", SecretAccessKey: "usersecret",
			Principal: "arn:aws:iam::111122223333:user/alice", Account: "111122223333"},
	} {
		if err := s.Put(c); err != nil {
			t.Fatal(err)
		}
	}
	return Chain{&s, StaticCredentials{}}
}

// presign builds a token the way feature/rds/auth.BuildAuthToken does, but
// with a chosen signing time, service, and request tweaks applied before
// signing.
func presign(t testing.TB, endpoint, region, service, user string, c aws.Credentials, at time.Time, tweak func(*http.Request)) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "https://"+endpoint+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	q := req.URL.Query()
	q.Set("Action", "connect")
	q.Set("DBUser", user)
	q.Set("X-Amz-Expires", "900")
	req.URL.RawQuery = q.Encode()
	if tweak != nil {
		tweak(req)
	}
	u, _, err := v4.NewSigner().PresignHTTP(context.Background(), c, req, emptyPayloadHash, service, region, at)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u, "https://")
}

func setQuery(key, value string) func(*http.Request) {
	return func(r *http.Request) {
		q := r.URL.Query()
		q.Set(key, value)
		r.URL.RawQuery = q.Encode()
	}
}

// sdkToken is a token from the real aws-sdk-go-v2 BuildAuthToken (signed now).
func sdkToken(t testing.TB, endpoint, user string, c aws.Credentials) string {
	t.Helper()
	tok, err := rdsauth.BuildAuthToken(context.Background(), endpoint, testRegion, user,
		aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return c, nil }))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// cliToken is a token from the real AWS CLI (signed now).
func cliToken(t testing.TB, host, port, user string, c aws.Credentials) string {
	t.Helper()
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("aws CLI not on PATH")
	}
	out, err := runAWS(t, c, "rds", "generate-db-auth-token", "--hostname", host, "--port", port,
		"--username", user, "--region", testRegion)
	if err != nil {
		t.Fatalf("aws rds generate-db-auth-token: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// runAWS runs the AWS CLI with exactly the given credentials and no config.
func runAWS(t testing.TB, c aws.Credentials, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "aws", args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	dir := t.TempDir()
	cmd.Env = append(cmd.Env,
		"AWS_ACCESS_KEY_ID="+c.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+c.SecretAccessKey,
		"AWS_CONFIG_FILE="+dir+"/config", "AWS_SHARED_CREDENTIALS_FILE="+dir+"/credentials",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=")
	if c.SessionToken != "" {
		cmd.Env = append(cmd.Env, "AWS_SESSION_TOKEN="+c.SessionToken)
	}
	return cmd.CombinedOutput()
}

// setParam replaces the raw value of one token parameter.
func setParam(t testing.TB, token, key, raw string) string {
	t.Helper()
	addr, query, _ := strings.Cut(token, "?")
	parts := strings.Split(query, "&")
	for i, p := range parts {
		if strings.HasPrefix(p, key+"=") {
			parts[i] = key + "=" + raw
			return addr + "?" + strings.Join(parts, "&")
		}
	}
	t.Fatalf("token has no %s", key)
	return ""
}

func getParam(token, key string) string {
	_, query, _ := strings.Cut(token, "?")
	for p := range strings.SplitSeq(query, "&") {
		if v, ok := strings.CutPrefix(p, key+"="); ok {
			return v
		}
	}
	return ""
}

func expect(user string, addrs ...string) TokenExpectation {
	if len(addrs) == 0 {
		addrs = []string{testAddr}
	}
	return TokenExpectation{Addresses: addrs, Region: testRegion, User: user}
}

type tokenCase struct {
	name  string
	token func(t *testing.T) string
	want  TokenExpectation
	now   time.Time // zero: time.Now (for tokens the real tools sign now)

	// for accepted tokens
	account string
	// for rejected tokens
	err    error
	reason string
}

func runTokenCases(t *testing.T, cases []tokenCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			token := tc.token(t)
			v := &TokenValidator{Creds: testLookup(t)}
			if !tc.now.IsZero() {
				v.Now = func() time.Time { return tc.now }
			}
			id, err := v.Validate(token, tc.want)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Validate(%s) = %v, want success", token, err)
				}
				if id.Account != tc.account {
					t.Errorf("account = %q, want %q", id.Account, tc.account)
				}
				if id.AccessKeyID == "" || id.Principal == "" {
					t.Errorf("identity %+v is incomplete", id)
				}
				return
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("Validate(%s) = %v, want %v", token, err, tc.err)
			}
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", err, tc.reason)
			}
			t.Logf("rejected: %v", err)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	test := awsCreds("test", "test", "")
	at := func(ts time.Time) func(*testing.T) string {
		return func(t *testing.T) string { return presign(t, testAddr, testRegion, "rds-db", "alice", test, ts, nil) }
	}
	fixed := func(s string) func(*testing.T) string { return func(*testing.T) string { return s } }
	docNow := time.Date(2026, 11, 25, 19, 20, 0, 0, time.UTC)
	runTokenCases(t, []tokenCase{
		// The two CLI tokens recorded in reference/api-surface.md §7.
		{name: "recorded CLI token", now: docNow, want: expect("alice"), account: DefaultAccount,
			token: fixed("myproxy.proxy-abc.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=alice&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=d524227d93976f873ab88a6df1bb512302b38e616dbb9730d62e9857959baf3c")},
		{name: "recorded CLI token with session token and odd user", now: docNow,
			want: expect("al ice+x@y", testHost+":3306"), account: DefaultAccount,
			token: fixed("myproxy.proxy-abc.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=al%20ice%2Bx%40y&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261125%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20261125T191331Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=sessiontok&X-Amz-Signature=8aa197ab545e178c421e24fb01b10f5fdc3f9f8d03a406e29c80f6ae482b6b38")},

		{name: "aws-sdk-go-v2 BuildAuthToken", want: expect("alice"), account: DefaultAccount,
			token: func(t *testing.T) string {
				tok := sdkToken(t, testAddr, "alice", test)
				if !strings.HasPrefix(tok, testAddr+"?") && !strings.HasPrefix(tok, testAddr+"/?") {
					t.Fatalf("unexpected token shape %s", tok)
				}
				return tok
			}},
		{name: "aws-sdk-go-v2 token without slash", want: expect("alice"), account: DefaultAccount,
			token: func(t *testing.T) string {
				return strings.Replace(sdkToken(t, testAddr, "alice", test), "/?", "?", 1)
			}},
		{name: "aws-sdk-go-v2 token with slash", want: expect("alice"), account: DefaultAccount,
			token: func(t *testing.T) string {
				tok := sdkToken(t, testAddr, "alice", test)
				if !strings.Contains(tok, "/?") {
					tok = strings.Replace(tok, "?", "/?", 1)
				}
				return tok
			}},
		{name: "aws-sdk-go-v2 odd user and mixed-case host", account: DefaultAccount,
			want: expect("al ice+x@y/ü", "MyProxy.Example.COM:3306"),
			token: func(t *testing.T) string {
				return sdkToken(t, "MyProxy.Example.com:3306", "al ice+x@y/ü", test)
			}},
		{name: "aws-sdk-go-v2 port 443", want: expect("alice", testHost+":443"), account: DefaultAccount,
			token: func(t *testing.T) string { return sdkToken(t, testHost+":443", "alice", test) }},
		{name: "aws-sdk-go-v2 IPv6", want: expect("alice", "[::1]:5432"), account: DefaultAccount,
			token: func(t *testing.T) string { return sdkToken(t, "[::1]:5432", "alice", test) }},
		{name: "aws-sdk-go-v2 IPv6 port 443", want: expect("alice", "[::1]:443"), account: DefaultAccount,
			token: func(t *testing.T) string { return sdkToken(t, "[::1]:443", "alice", test) }},
		{name: "aws-sdk-go-v2 session credentials", now: fixedNow.Add(time.Minute), want: expect("alice"), account: "111122223333",
			token: func(t *testing.T) string {
				tok := presign(t, testAddr, testRegion, "rds-db", "alice", awsCreds("ASIATEMP", "tempsecret", "sessiontok"), fixedNow, nil)
				if getParam(tok, "X-Amz-Security-Token") != "sessiontok" {
					t.Fatalf("token carries no session token: %s", tok)
				}
				return tok
			}},
		{name: "IAM user key", now: fixedNow, want: expect("alice"), account: "111122223333",
			token: func(t *testing.T) string {
				return presign(t, testAddr, testRegion, "rds-db", "alice", awsCreds("AKIAUSER", "usersecret", ""), fixedNow, nil)
			}},
		{name: "12-digit access key selects the account", now: fixedNow, want: expect("alice"), account: "123456789012",
			token: func(t *testing.T) string {
				return presign(t, testAddr, testRegion, "rds-db", "alice", awsCreds("123456789012", "test", ""), fixedNow, nil)
			}},
		{name: "published port is one of several addresses", now: fixedNow, account: DefaultAccount,
			want: expect("alice", testAddr, "localhost:4511"),
			token: func(t *testing.T) string {
				return presign(t, "localhost:4511", testRegion, "rds-db", "alice", test, fixedNow, nil)
			}},
		{name: "signature-only mode ignores the address", now: fixedNow, account: DefaultAccount,
			want: TokenExpectation{AnyAddress: true, Region: testRegion, User: "alice"},
			token: func(t *testing.T) string {
				return presign(t, "elsewhere:1", testRegion, "rds-db", "alice", test, fixedNow, nil)
			}},
		{name: "last second of validity", now: fixedNow.Add(900 * time.Second), want: expect("alice"), account: DefaultAccount, token: at(fixedNow)},
		{name: "future date within skew", now: fixedNow.Add(-4 * time.Minute), want: expect("alice"), account: DefaultAccount, token: at(fixedNow)},

		{name: "AWS CLI", want: expect("alice"), account: DefaultAccount,
			token: func(t *testing.T) string { return cliToken(t, testHost, "5432", "alice", test) }},
		{name: "AWS CLI mixed-case host, port 443, odd user", want: expect("al ice+x@y", "MyProxy.Example.com:443"), account: DefaultAccount,
			token: func(t *testing.T) string { return cliToken(t, "MyProxy.Example.com", "443", "al ice+x@y", test) }},
	})
}

// TestValidateSessionCredentials validates tokens the real tools signed (now)
// with temporary credentials, against a store where they are valid now.
func TestValidateSessionCredentials(t *testing.T) {
	c := awsCreds("ASIANOW", "nowsecret", "nowsession")
	var s Store
	if err := s.Put(Credential{AccessKeyID: "ASIANOW", SecretAccessKey: "nowsecret", SessionToken: "nowsession",
		Expires: time.Now().Add(time.Hour), Principal: "arn:aws:sts::111122223333:assumed-role/r/s", Account: "111122223333"}); err != nil {
		t.Fatal(err)
	}
	want := expect("bob", testHost+":3306")
	for _, tool := range []struct {
		name  string
		token func(t *testing.T) string
	}{
		{"aws-sdk-go-v2", func(t *testing.T) string { return sdkToken(t, testHost+":3306", "bob", c) }},
		{"AWS CLI", func(t *testing.T) string { return cliToken(t, testHost, "3306", "bob", c) }},
	} {
		t.Run(tool.name, func(t *testing.T) {
			tok := tool.token(t)
			v := &TokenValidator{Creds: &s}
			id, err := v.Validate(tok, want)
			if err != nil {
				t.Fatalf("Validate(%s) = %v", tok, err)
			}
			if id.AccessKeyID != "ASIANOW" || id.Account != "111122223333" || id.Principal != "arn:aws:sts::111122223333:assumed-role/r/s" {
				t.Errorf("identity = %+v", id)
			}
			// The same token without its session token, or with another one.
			stripped := strings.Replace(tok, "&X-Amz-Security-Token=nowsession", "", 1)
			if _, err := v.Validate(stripped, want); !errors.Is(err, ErrInvalidSessionToken) {
				t.Errorf("without session token: %v, want ErrInvalidSessionToken", err)
			}
			if _, err := v.Validate(setParam(t, tok, "X-Amz-Security-Token", "other"), want); !errors.Is(err, ErrInvalidSessionToken) {
				t.Errorf("other session token: %v, want ErrInvalidSessionToken", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	test := awsCreds("test", "test", "")
	good := func(t *testing.T) string {
		return presign(t, testAddr, testRegion, "rds-db", "alice", test, fixedNow, nil)
	}
	edit := func(f func(t *testing.T, tok string) string) func(*testing.T) string {
		return func(t *testing.T) string { return f(t, good(t)) }
	}
	signed := func(endpoint, region, service, user string, c aws.Credentials, at time.Time, tweak func(*http.Request)) func(*testing.T) string {
		return func(t *testing.T) string { return presign(t, endpoint, region, service, user, c, at, tweak) }
	}
	now := fixedNow.Add(time.Minute)
	alice := expect("alice")
	runTokenCases(t, []tokenCase{
		{name: "wrong secret", now: now, want: alice, err: ErrSignatureMismatch, reason: "signature mismatch for access key test",
			token: signed(testAddr, testRegion, "rds-db", "alice", awsCreds("test", "wrong", ""), fixedNow, nil)},
		{name: "tampered signature", now: now, want: alice, err: ErrSignatureMismatch, reason: "signature mismatch",
			token: edit(func(t *testing.T, tok string) string {
				sig := []byte(getParam(tok, "X-Amz-Signature"))
				sig[10] ^= 1
				return setParam(t, tok, "X-Amz-Signature", string(sig))
			})},
		{name: "tampered user", now: now, want: expect("bob"), err: ErrSignatureMismatch, reason: "signature mismatch",
			token: edit(func(t *testing.T, tok string) string { return setParam(t, tok, "DBUser", "bob") })},
		{name: "token for another user", now: now, want: expect("bob"), err: ErrScopeMismatch,
			reason: `token is for database user "alice", login user is "bob"`, token: good},
		{name: "tampered host", now: now, want: expect("alice", "evil.example.com:5432"), err: ErrSignatureMismatch, reason: "signature mismatch",
			token: edit(func(t *testing.T, tok string) string { return strings.Replace(tok, testHost, "evil.example.com", 1) })},
		{name: "token for another host", now: now, want: expect("alice", "other.example.com:5432"), err: ErrScopeMismatch,
			reason: "token signed for host " + testAddr + ", connection reached other.example.com:5432", token: good},
		{name: "tampered port", now: now, want: expect("alice", testHost+":5433"), err: ErrSignatureMismatch, reason: "signature mismatch",
			token: edit(func(t *testing.T, tok string) string { return strings.Replace(tok, ":5432", ":5433", 1) })},
		{name: "token for another port", now: now, want: expect("alice", testHost+":3306"), err: ErrScopeMismatch,
			reason: "connection reached " + testHost + ":3306", token: good},
		{name: "tampered date", now: now, want: alice, err: ErrSignatureMismatch, reason: "signature mismatch",
			token: edit(func(t *testing.T, tok string) string { return setParam(t, tok, "X-Amz-Date", "20261125T192001Z") })},
		{name: "date outside scope day", now: now, want: alice, err: ErrMalformed, reason: "is not the date of X-Amz-Date",
			token: edit(func(t *testing.T, tok string) string { return setParam(t, tok, "X-Amz-Date", "20261126T192000Z") })},
		{name: "tampered region", now: now, want: TokenExpectation{Addresses: []string{testAddr}, Region: "us-west-2", User: "alice"},
			err: ErrSignatureMismatch, reason: "signature mismatch",
			token: edit(func(t *testing.T, tok string) string {
				return setParam(t, tok, "X-Amz-Credential", "test%2F20261125%2Fus-west-2%2Frds-db%2Faws4_request")
			})},
		{name: "token for another region", now: now, want: alice, err: ErrScopeMismatch,
			reason: "token signed for region eu-west-1, proxy is in region us-east-1",
			token:  signed(testAddr, "eu-west-1", "rds-db", "alice", test, fixedNow, nil)},
		{name: "tampered service", now: now, want: alice, err: ErrScopeMismatch, reason: "signed for service rds;",
			token: edit(func(t *testing.T, tok string) string {
				return setParam(t, tok, "X-Amz-Credential", "test%2F20261125%2Fus-east-1%2Frds%2Faws4_request")
			})},
		{name: "signed for service rds", now: now, want: alice, err: ErrScopeMismatch, reason: "signed for service rds;",
			token: signed(testAddr, testRegion, "rds", "alice", test, fixedNow, nil)},
		{name: "action is not connect", now: now, want: alice, err: ErrMalformed, reason: `token action is "disconnect"`,
			token: signed(testAddr, testRegion, "rds-db", "alice", test, fixedNow, setQuery("Action", "disconnect"))},
		{name: "extra signed header", now: now, want: alice, err: ErrMalformed, reason: "signs headers host;x-foo",
			token: signed(testAddr, testRegion, "rds-db", "alice", test, fixedNow, func(r *http.Request) { r.Header.Set("X-Foo", "1") })},
		{name: "expires beyond 900", now: now, want: alice, err: ErrMalformed, reason: "at most 15m0s",
			token: signed(testAddr, testRegion, "rds-db", "alice", test, fixedNow, setQuery("X-Amz-Expires", "3600"))},
		{name: "duplicated DBUser", now: now, want: alice, err: ErrMalformed, reason: "DBUser appears more than once",
			token: edit(func(t *testing.T, tok string) string { return tok + "&DBUser=alice" })},
		{name: "duplicated X-Amz-Date", now: now, want: alice, err: ErrMalformed, reason: "X-Amz-Date appears more than once",
			token: edit(func(t *testing.T, tok string) string { return tok + "&X-Amz-Date=" + getParam(tok, "X-Amz-Date") })},
		{name: "duplicated signature", now: now, want: alice, err: ErrMalformed, reason: "X-Amz-Signature appears more than once",
			token: edit(func(t *testing.T, tok string) string {
				return tok + "&X-Amz-Signature=" + getParam(tok, "X-Amz-Signature")
			})},
		{name: "unknown parameter", now: now, want: alice, err: ErrMalformed, reason: `unknown parameter "Foo"`,
			token: edit(func(t *testing.T, tok string) string { return tok + "&Foo=bar" })},
		{name: "other algorithm", now: now, want: alice, err: ErrMalformed, reason: "is not AWS4-HMAC-SHA256",
			token: edit(func(t *testing.T, tok string) string {
				return setParam(t, tok, "X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256")
			})},
		{name: "unknown key", now: now, want: alice, err: ErrUnknownKey,
			reason: "unknown access key AKIANOBODY: use test/test or create a key with `aws iam create-access-key`",
			token:  signed(testAddr, testRegion, "rds-db", "alice", awsCreds("AKIANOBODY", "x", ""), fixedNow, nil)},
		{name: "expired (signed 16 minutes ago)", now: fixedNow, want: alice, err: ErrExpired,
			reason: "token expired at 2026-11-25T19:19:00Z",
			token:  signed(testAddr, testRegion, "rds-db", "alice", test, fixedNow.Add(-16*time.Minute), nil)},
		{name: "future-dated beyond skew", now: fixedNow, want: alice, err: ErrNotYetValid,
			reason: "token dated 2026-11-25T19:26:00Z is more than 5m0s ahead",
			token:  signed(testAddr, testRegion, "rds-db", "alice", test, fixedNow.Add(6*time.Minute), nil)},
		{name: "expired session credentials", now: now, want: alice, err: ErrCredentialsExpired,
			reason: "credentials for access key ASIAOLD expired at 2026-11-25T19:19:00Z",
			token:  signed(testAddr, testRegion, "rds-db", "alice", awsCreds("ASIAOLD", "oldsecret", "oldtok"), fixedNow, nil)},
		{name: "temporary key without session token", now: now, want: alice, err: ErrInvalidSessionToken, reason: "no session token",
			token: signed(testAddr, testRegion, "rds-db", "alice", awsCreds("ASIATEMP", "tempsecret", ""), fixedNow, nil)},
		{name: "temporary key with another session token", now: now, want: alice, err: ErrInvalidSessionToken,
			reason: "not the one issued with access key ASIATEMP",
			token:  signed(testAddr, testRegion, "rds-db", "alice", awsCreds("ASIATEMP", "tempsecret", "forged"), fixedNow, nil)},
		{name: "a plain password", now: now, want: alice, err: ErrMalformed, reason: "is this a password",
			token: func(*testing.T) string { return "hunter2" }},
		{name: "token with scheme", now: now, want: alice, err: ErrMalformed, reason: "URL scheme",
			token: edit(func(t *testing.T, tok string) string { return "https://" + tok })},
		{name: "no addresses configured", now: now, want: TokenExpectation{Region: testRegion, User: "alice"},
			err: ErrScopeMismatch, reason: "no endpoint addresses are configured", token: good},
	})
}

func TestValidateCache(t *testing.T) {
	var s Store
	cred := Credential{AccessKeyID: "AKIACACHE", SecretAccessKey: "s3cret", Principal: "arn:aws:iam::111122223333:user/c", Account: "111122223333"}
	if err := s.Put(cred); err != nil {
		t.Fatal(err)
	}
	now := fixedNow
	v := &TokenValidator{Creds: &s, Now: func() time.Time { return now }}
	tok := presign(t, testAddr, testRegion, "rds-db", "alice", awsCreds("AKIACACHE", "s3cret", ""), fixedNow, nil)
	want := expect("alice")

	for i := range 2 {
		if id, err := v.Validate(tok, want); err != nil || id.Principal != cred.Principal {
			t.Fatalf("validation %d: %+v, %v", i, id, err)
		}
	}
	if n := len(v.cache); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}
	// The cache is keyed by the expectation too.
	if _, err := v.Validate(tok, expect("bob")); !errors.Is(err, ErrScopeMismatch) {
		t.Errorf("other user: %v, want ErrScopeMismatch", err)
	}
	// A deleted key invalidates the cached token.
	s.Delete("AKIACACHE")
	if _, err := v.Validate(tok, want); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after delete: %v, want ErrUnknownKey", err)
	}
	// So does a changed secret.
	if err := s.Put(cred); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(tok, want); err != nil {
		t.Fatal(err)
	}
	changed := cred
	changed.SecretAccessKey = "rotated"
	if err := s.Put(changed); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(tok, want); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("after rotation: %v, want ErrSignatureMismatch", err)
	}
	// A cached token still expires.
	if err := s.Put(cred); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Validate(tok, want); err != nil {
		t.Fatal(err)
	}
	now = fixedNow.Add(901 * time.Second)
	if _, err := v.Validate(tok, want); !errors.Is(err, ErrExpired) {
		t.Errorf("after expiry: %v, want ErrExpired", err)
	}
	if n := len(v.cache); n != 0 {
		t.Errorf("cache holds %d entries after expiry, want 0", n)
	}
}

func TestParseTokenForms(t *testing.T) {
	base := presign(t, testAddr, testRegion, "rds-db", "alice", awsCreds("test", "test", ""), fixedNow, nil)
	noSlash := strings.Replace(base, "/?", "?", 1)
	for _, s := range []string{base, noSlash} {
		tok, err := ParseToken(s)
		if err != nil {
			t.Fatalf("ParseToken(%s): %v", s, err)
		}
		if tok.Address != testAddr || tok.DBUser != "alice" || tok.Action != "connect" ||
			tok.Credential.Service != "rds-db" || tok.Expires != 900*time.Second || !tok.Date.Equal(fixedNow) ||
			tok.Expiry() != fixedNow.Add(15*time.Minute) {
			t.Errorf("ParseToken(%s) = %+v", s, tok)
		}
	}
	for _, bad := range []string{"", "?", "host?Action=connect", ":5432?Action=connect", "h:0?Action=connect",
		"h:65536?x", "a/b:1?x", "h:1//?Action=connect", "h:1?Action=connect&&DBUser=a", "h:1?Action=connect&DBUser",
		"h:1?Action=connect&DBUser=%zz", "h:1?Action=connect&DBUser=a b", strings.Repeat("a", maxAuthLen+1)} {
		if _, err := ParseToken(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseToken(%.40q) = %v, want ErrMalformed", bad, err)
		}
	}
}
