package iamauth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/rdslocal/rdslocal/api"
	"github.com/rdslocal/rdslocal/iamauth"
	"github.com/rdslocal/rdslocal/testsuite"
)

// sessionConfig is testsuite.Config with a session token.
func sessionConfig(url, akid, secret, token string) aws.Config {
	cfg := testsuite.Config(url, akid, secret)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(akid, secret, token)
	return cfg
}

var sessionKey = regexp.MustCompile(`^ASIA[A-Z0-9]{16}$`)

func assumeRole(t *testing.T, c clients, roleArn, session string) *sts.AssumeRoleOutput {
	t.Helper()
	out, err := c.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleArn), RoleSessionName: aws.String(session)})
	if err != nil {
		t.Fatalf("AssumeRole %s: %v", roleArn, err)
	}
	return out
}

func withCreds(c clients, cr *ststypes.Credentials) clients {
	return c.as(*cr.AccessKeyId, *cr.SecretAccessKey, *cr.SessionToken)
}

func TestGetCallerIdentity(t *testing.T) {
	c := start(t)
	for _, tc := range []struct {
		akid                 string
		account, arn, userID string
	}{
		{"test", "000000000000", "arn:aws:iam::000000000000:root", "000000000000"},
		{"123456789012", "123456789012", "arn:aws:iam::123456789012:root", "123456789012"},
		{"AKIAUNKNOWNUNKNOWN00", "000000000000", "arn:aws:iam::000000000000:root", "000000000000"},
	} {
		t.Run(tc.akid, func(t *testing.T) {
			out, err := c.as(tc.akid, "test", "").sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil {
				t.Fatal(err)
			}
			if *out.Account != tc.account || *out.Arn != tc.arn || *out.UserId != tc.userID {
				t.Fatalf("GetCallerIdentity: account %s arn %s userid %s", *out.Account, *out.Arn, *out.UserId)
			}
		})
	}
}

func TestAssumeRole(t *testing.T) {
	c := start(t)
	r := createRole(t, c, "app-role")
	before := time.Now()
	out := assumeRole(t, c, *r.Arn, "my-session")
	cr := out.Credentials
	if !sessionKey.MatchString(*cr.AccessKeyId) || len(*cr.SecretAccessKey) != 40 || len(*cr.SessionToken) < 100 {
		t.Fatalf("credentials: %s / %d / %d", *cr.AccessKeyId, len(*cr.SecretAccessKey), len(*cr.SessionToken))
	}
	if d := cr.Expiration.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("default expiration in %v, want 1h", d)
	}
	const sessionArn = "arn:aws:sts::000000000000:assumed-role/app-role/my-session"
	//lint:ignore SA1019 STS still returns PackedPolicySize; the test checks it.
	if *out.AssumedRoleUser.Arn != sessionArn || *out.AssumedRoleUser.AssumedRoleId != *r.RoleId+":my-session" || out.PackedPolicySize != nil {
		t.Fatalf("AssumedRoleUser: %+v", out.AssumedRoleUser)
	}

	// The temporary credentials sign requests as the session.
	as := withCreds(c, cr)
	id, err := as.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatal(err)
	}
	if *id.Arn != sessionArn || *id.UserId != *r.RoleId+":my-session" || *id.Account != "000000000000" {
		t.Fatalf("GetCallerIdentity with session credentials: %+v", id)
	}

	// DurationSeconds, within the role's MaxSessionDuration.
	long, err := c.iam.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("long"), AssumeRolePolicyDocument: aws.String(trustDoc), MaxSessionDuration: aws.Int32(43200)})
	if err != nil {
		t.Fatal(err)
	}
	out2, err := c.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: long.Role.Arn, RoleSessionName: aws.String("s2"), DurationSeconds: aws.Int32(43200),
		Policy: aws.String(connect)})
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 STS still returns PackedPolicySize; the test checks it.
	if d := out2.Credentials.Expiration.Sub(before); d < 12*time.Hour-time.Minute || d > 12*time.Hour+time.Minute || out2.PackedPolicySize == nil {
		t.Fatalf("43200s session expires in %v", d)
	}

	// Without --enforce-iam any role ARN can be assumed, as in LocalStack.
	ghost := assumeRole(t, c, "arn:aws:iam::123456789012:role/path/ghost", "s1")
	if *ghost.AssumedRoleUser.Arn != "arn:aws:sts::123456789012:assumed-role/ghost/s1" || !strings.HasPrefix(*ghost.AssumedRoleUser.AssumedRoleId, "AROA") {
		t.Fatalf("assumed unknown role: %+v", ghost.AssumedRoleUser)
	}
	if again := assumeRole(t, c, "arn:aws:iam::123456789012:role/path/ghost", "s1"); *again.AssumedRoleUser.AssumedRoleId != *ghost.AssumedRoleUser.AssumedRoleId {
		t.Fatalf("unknown role id not stable: %s vs %s", *again.AssumedRoleUser.AssumedRoleId, *ghost.AssumedRoleUser.AssumedRoleId)
	}
	if id, err := withCreds(c, ghost.Credentials).sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil || *id.Account != "123456789012" {
		t.Fatalf("GetCallerIdentity in the role's account: %v %+v", err, id)
	}

	assume := func(c clients, arn, session string, seconds int32) func() error {
		return func() error {
			in := &sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String(session)}
			if seconds != 0 {
				in.DurationSeconds = aws.Int32(seconds)
			}
			_, err := c.sts.AssumeRole(ctx, in)
			return err
		}
	}
	runErrCases(t, []errCase{
		{"too short", assume(c, *r.Arn, "ss", 899), "ValidationError", 400, nil, "greater than or equal to 900"},
		{"too long", assume(c, *r.Arn, "ss", 43201), "ValidationError", 400, nil, "less than or equal to 43200"},
		{"over the role's maximum", assume(c, *r.Arn, "ss", 7200), "ValidationError", 400, nil, "MaxSessionDuration"},
		{"role chaining over an hour", assume(as, *long.Role.Arn, "ss", 7200), "ValidationError", 400, nil, "role chaining"},
		{"not a role arn", assume(c, "arn:aws:iam::000000000000:user/alice", "ss", 0), "ValidationError", 400, nil, "is invalid"},
		{"bad session name", assume(c, *r.Arn, "my session", 0), "ValidationError", 400, nil, "regular expression"},
		{"one-character session name", assume(c, *r.Arn, "s", 0), "ValidationError", 400, nil, "length greater than or equal to 2"},
		{"malformed session policy", func() error {
			_, err := c.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: r.Arn, RoleSessionName: aws.String("ss"), Policy: aws.String("{")})
			return err
		}, "MalformedPolicyDocument", 400, isType[*ststypes.MalformedPolicyDocumentException], "Syntax errors in policy."},
	})
	// Role chaining within an hour works.
	if err := assume(as, *long.Role.Arn, "chained", 3600)(); err != nil {
		t.Fatalf("chained AssumeRole: %v", err)
	}
}

func TestGetSessionToken(t *testing.T) {
	c := start(t)
	u := createUser(t, c, "alice")
	key := createKey(t, c, "alice")
	alice := c.as(*key.AccessKeyId, *key.SecretAccessKey, "")
	before := time.Now()
	for _, tc := range []struct {
		name    string
		c       clients
		seconds int32
		want    time.Duration
		arn     string
	}{
		{"user default", alice, 0, 12 * time.Hour, *u.Arn},
		{"user 36h", alice, 129600, 36 * time.Hour, *u.Arn},
		{"user 15m", alice, 900, 15 * time.Minute, *u.Arn},
		{"root default", c, 0, time.Hour, "arn:aws:iam::000000000000:root"},
		{"root capped at 1h", c, 7200, time.Hour, "arn:aws:iam::000000000000:root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &sts.GetSessionTokenInput{}
			if tc.seconds != 0 {
				in.DurationSeconds = aws.Int32(tc.seconds)
			}
			out, err := tc.c.sts.GetSessionToken(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			cr := out.Credentials
			if !sessionKey.MatchString(*cr.AccessKeyId) || *cr.SessionToken == "" {
				t.Fatalf("credentials: %+v", cr)
			}
			if d := cr.Expiration.Sub(before); d < tc.want-time.Minute || d > tc.want+time.Minute {
				t.Fatalf("expires in %v, want %v", d, tc.want)
			}
			id, err := withCreds(c, cr).sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			if err != nil || *id.Arn != tc.arn {
				t.Fatalf("GetCallerIdentity with session token: %v %+v", err, id)
			}
		})
	}
	temp, err := c.sts.GetSessionToken(ctx, &sts.GetSessionTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	runErrCases(t, []errCase{
		{"too short", func() error {
			_, err := alice.sts.GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(60)})
			return err
		}, "ValidationError", 400, nil, "greater than or equal to 900"},
		{"too long", func() error {
			_, err := alice.sts.GetSessionToken(ctx, &sts.GetSessionTokenInput{DurationSeconds: aws.Int32(129601)})
			return err
		}, "ValidationError", 400, nil, "less than or equal to 129600"},
		{"with session credentials", func() error {
			_, err := withCreds(c, temp.Credentials).sts.GetSessionToken(ctx, &sts.GetSessionTokenInput{})
			return err
		}, "AccessDenied", 403, nil, "session credentials"},
	})
}

// invoke runs one action of svc directly, as the gateway would after
// validation, signed by accessKey.
func invoke(t *testing.T, svc *api.Service, action, accessKey string, input any) (any, error) {
	t.Helper()
	b, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	call := api.NewCall(ctx, b)
	call.Service, call.Action, call.Region, call.AccessKey, call.Account = svc.Name(), action, "us-east-1", accessKey, "000000000000"
	return svc.Handlers[action](call)
}

func TestAssumeRoleStrict(t *testing.T) {
	d := iamauth.NewDirectory()
	d.Strict = true
	iamSvc, stsSvc := d.IAMService(), d.STSService()
	if iamSvc.Name() != "iam" || stsSvc.Name() != "sts" || iamSvc.Key() != "iam" || stsSvc.Key() != "iam" {
		t.Fatalf("service names %q/%q, keys %q/%q", iamSvc.Name(), stsSvc.Name(), iamSvc.Key(), stsSvc.Key())
	}
	if stsSvc.IsReadOnly("GetSessionToken") || !stsSvc.IsReadOnly("GetCallerIdentity") || !iamSvc.IsReadOnly("GetUser") || iamSvc.IsReadOnly("CreateUser") {
		t.Fatal("read-only actions misreported")
	}
	in := map[string]any{"RoleArn": "arn:aws:iam::000000000000:role/app", "RoleSessionName": "s1"}
	_, err := invoke(t, stsSvc, "AssumeRole", "test", in)
	var e *api.Error
	if !errors.As(err, &e) || e.Code != "AccessDenied" || e.Status != http.StatusForbidden ||
		e.Message != "User: arn:aws:iam::000000000000:root is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::000000000000:role/app" {
		t.Fatalf("strict AssumeRole of a missing role: %v", err)
	}
	if _, err := invoke(t, iamSvc, "CreateRole", "test", map[string]any{"RoleName": "app", "AssumeRolePolicyDocument": trustDoc}); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, stsSvc, "AssumeRole", "test", in); err != nil {
		t.Fatalf("strict AssumeRole of an existing role: %v", err)
	}
	// The path in the ARN must be the role's.
	in["RoleArn"] = "arn:aws:iam::000000000000:role/other/app"
	if _, err := invoke(t, stsSvc, "AssumeRole", "test", in); !errors.As(err, &e) || e.Code != "AccessDenied" {
		t.Fatalf("strict AssumeRole with the wrong path: %v", err)
	}
}

// loadDirectory reads the IAM snapshot the server saved under dataDir into
// a fresh Directory.
func loadDirectory(t *testing.T, dataDir string) *iamauth.Directory {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, "state", "iam.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := iamauth.NewDirectory()
	if err := d.Restore(data); err != nil {
		t.Fatal(err)
	}
	return d
}

func identityOf(t *testing.T, d *iamauth.Directory, akid string) iamauth.Identity {
	t.Helper()
	cred, ok := d.LookupAccessKey(akid)
	if !ok {
		t.Fatalf("access key %s not in the directory", akid)
	}
	return iamauth.Identity{AccessKeyID: cred.AccessKeyID, Principal: cred.Principal, Account: cred.Account}
}

func TestAuthorize(t *testing.T) {
	dataDir := t.TempDir()
	c := start(t, testsuite.WithDataDir(dataDir))
	const (
		region = "arn:aws:rds-db:us-east-1:000000000000:dbuser:"
		prxRes = region + "prx-0123456789abcdef0/alice"
	)
	policy := func(effect, resource string) string {
		return `{"Version":"2012-10-17","Statement":[{"Effect":"` + effect + `","Action":"rds-db:connect","Resource":"` + resource + `"}]}`
	}
	putUser := func(user, name, doc string) {
		if _, err := c.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String(user), PolicyName: aws.String(name), PolicyDocument: aws.String(doc)}); err != nil {
			t.Fatal(err)
		}
	}
	keys := map[string]string{}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin", "gone"} {
		createUser(t, c, name)
		keys[name] = *createKey(t, c, name).AccessKeyId
	}
	putUser("alice", "connect", policy("Allow", region+"prx-*/alice"))
	all := createPolicy(t, c, "all-db-users", policy("Allow", region+"*/*"))
	if _, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("bob"), PolicyArn: all.Arn}); err != nil {
		t.Fatal(err)
	}
	// dave may connect anywhere but as alice.
	putUser("dave", "allow", policy("Allow", "*"))
	putUser("dave", "deny", policy("Deny", region+"prx-*/alice"))
	// erin is an administrator with a conditional deny, which is taken to
	// apply (conditions are not evaluated).
	if _, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("erin"), PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")}); err != nil {
		t.Fatal(err)
	}
	putUser("erin", "deny-off-vpn", `{"Statement":{"Effect":"Deny","Action":"rds-db:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}}`)
	// gone's key is captured, then the user is deleted.
	if _, err := c.iam.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("gone"), AccessKeyId: aws.String(keys["gone"])}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.iam.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String("gone")}); err != nil {
		t.Fatal(err)
	}

	createRole(t, c, "app-role")
	if _, err := c.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("app-role"), PolicyName: aws.String("connect"),
		PolicyDocument: aws.String(policy("Allow", region+"prx-*/*"))}); err != nil {
		t.Fatal(err)
	}
	createRole(t, c, "empty-role")
	appSession := assumeRole(t, c, "arn:aws:iam::000000000000:role/app-role", "worker")
	emptySession := assumeRole(t, c, "arn:aws:iam::000000000000:role/empty-role", "worker")
	ghostSession := assumeRole(t, c, "arn:aws:iam::000000000000:role/ghost", "worker")

	d := loadDirectory(t, dataDir)
	root, _ := iamauth.StaticCredentials{}.LookupAccessKey("test")
	rootID := iamauth.Identity{AccessKeyID: "test", Principal: root.Principal, Account: root.Account}
	user := func(name string) iamauth.Identity { return identityOf(t, d, keys[name]) }
	session := func(out *sts.AssumeRoleOutput) iamauth.Identity {
		return identityOf(t, d, *out.Credentials.AccessKeyId)
	}
	goneID := iamauth.Identity{Principal: "arn:aws:iam::000000000000:user/gone", Account: "000000000000"}

	for _, tc := range []struct {
		name     string
		id       iamauth.Identity
		action   string
		resource string
		reason   string // "" = allowed, else a substring of the denial reason
	}{
		{"root always", rootID, "rds-db:connect", prxRes, ""},
		{"12-digit root", iamauth.Identity{Principal: "arn:aws:iam::123456789012:root"}, "anything:at-all", "arn:aws:x:::y", ""},
		{"no policy", user("carol"), "rds-db:connect", prxRes, "no identity policy of arn:aws:iam::000000000000:user/carol allows rds-db:connect on " + prxRes},
		{"inline user policy", user("alice"), "rds-db:connect", prxRes, ""},
		{"action is case-insensitive", user("alice"), "RDS-DB:Connect", prxRes, ""},
		{"inline policy: prx-*/alice excludes bob", user("alice"), "rds-db:connect", region + "prx-0123456789abcdef0/bob", "no identity policy"},
		{"inline policy: prx-* excludes db-", user("alice"), "rds-db:connect", region + "db-ABCDEFGHIJ/alice", "no identity policy"},
		{"inline policy: other action", user("alice"), "rds-db:other", prxRes, "no identity policy"},
		{"attached managed policy */*", user("bob"), "rds-db:connect", region + "prx-0123456789abcdef0/anyone", ""},
		{"attached managed policy */* on a DB", user("bob"), "rds-db:connect", region + "db-ABCDEFGHIJ/x", ""},
		{"attached managed policy: other region", user("bob"), "rds-db:connect", "arn:aws:rds-db:eu-west-1:000000000000:dbuser:prx-0123456789abcdef0/alice", "no identity policy"},
		{"explicit deny", user("dave"), "rds-db:connect", prxRes, "inline policy deny of arn:aws:iam::000000000000:user/dave explicitly denies rds-db:connect"},
		{"allowed beside the deny", user("dave"), "rds-db:connect", region + "prx-0123456789abcdef0/dave", ""},
		{"conditional deny applies", user("erin"), "rds-db:connect", prxRes, "explicitly denies"},
		{"AdministratorAccess", user("erin"), "s3:GetObject", "arn:aws:s3:::bucket/key", ""},
		{"assumed role's policy", session(appSession), "rds-db:connect", prxRes, ""},
		{"assumed role's policy: other resource", session(appSession), "rds-db:connect", region + "db-ABCDEFGHIJ/alice", "no identity policy of arn:aws:iam::000000000000:role/app-role (session arn:aws:sts::000000000000:assumed-role/app-role/worker)"},
		{"assumed role without policies", session(emptySession), "rds-db:connect", prxRes, "no identity policy of arn:aws:iam::000000000000:role/empty-role"},
		{"assumed role that does not exist", session(ghostSession), "rds-db:connect", prxRes, "role ghost does not exist"},
		{"deleted user", goneID, "rds-db:connect", prxRes, "no longer exists"},
		{"unknown principal", iamauth.Identity{Principal: "arn:aws:iam::000000000000:group/x"}, "rds-db:connect", prxRes, "is not an IAM user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Authorize(tc.id, tc.action, tc.resource)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			var e *iamauth.Error
			if !errors.As(err, &e) || !errors.Is(err, iamauth.ErrAccessDenied) || !strings.Contains(e.Reason, tc.reason) {
				t.Fatalf("Authorize = %v, want access denied with %q", err, tc.reason)
			}
		})
	}
}

// TestTemporaryCredentialsAuthenticate checks that credentials from
// AssumeRole work where the emulator verifies signatures: RDS IAM auth
// tokens and SigV4-signed requests, until they expire.
func TestTemporaryCredentialsAuthenticate(t *testing.T) {
	dataDir := t.TempDir()
	c := start(t, testsuite.WithDataDir(dataDir))
	createRole(t, c, "app-role")
	if _, err := c.iam.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("app-role"), PolicyName: aws.String("connect"),
		PolicyDocument: aws.String(connect)}); err != nil {
		t.Fatal(err)
	}
	out, err := c.sts.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::000000000000:role/app-role"),
		RoleSessionName: aws.String("db"), DurationSeconds: aws.Int32(900)})
	if err != nil {
		t.Fatal(err)
	}
	cr := out.Credentials
	d := loadDirectory(t, dataDir)
	cred, ok := d.LookupAccessKey(*cr.AccessKeyId)
	if !ok || !cred.Temporary() || cred.SessionToken != *cr.SessionToken || !cred.Expires.Equal(*cr.Expiration) ||
		cred.Principal != *out.AssumedRoleUser.Arn || cred.Account != "000000000000" {
		t.Fatalf("stored credential %+v", cred)
	}

	provider := credentials.NewStaticCredentialsProvider(*cr.AccessKeyId, *cr.SecretAccessKey, *cr.SessionToken)
	token, err := auth.BuildAuthToken(ctx, "127.0.0.1:5432", "us-east-1", "alice", provider)
	if err != nil {
		t.Fatal(err)
	}
	v := &iamauth.TokenValidator{Creds: d.Lookup()}
	want := iamauth.TokenExpectation{Addresses: []string{"127.0.0.1:5432"}, Region: "us-east-1", User: "alice"}
	id, err := v.Validate(token, want)
	if err != nil {
		t.Fatalf("token signed with session credentials: %v", err)
	}
	if id.Principal != *out.AssumedRoleUser.Arn || id.AccessKeyID != *cr.AccessKeyId {
		t.Fatalf("token identity %+v", id)
	}
	if err := d.Authorize(id, "rds-db:connect", "arn:aws:rds-db:us-east-1:000000000000:dbuser:prx-0123456789abcdef0/alice"); err != nil {
		t.Fatalf("Authorize the token's identity: %v", err)
	}

	// A signed API request.
	req, _ := http.NewRequest(http.MethodPost, c.emu.URL+"/", strings.NewReader("Action=GetCallerIdentity&Version=2011-06-15"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	signed := signRequest(t, req, "Action=GetCallerIdentity&Version=2011-06-15", provider, time.Now())
	if _, err := iamauth.Authenticate(signed, []byte("Action=GetCallerIdentity&Version=2011-06-15"), d, time.Now()); err != nil {
		t.Fatalf("request signed with session credentials: %v", err)
	}
	// After expiry, the credential is refused.
	late := cr.Expiration.Add(2 * time.Minute)
	signed = signRequest(t, req, "Action=GetCallerIdentity&Version=2011-06-15", provider, late)
	if _, err := iamauth.Authenticate(signed, []byte("Action=GetCallerIdentity&Version=2011-06-15"), d, late); !errors.Is(err, iamauth.ErrCredentialsExpired) {
		t.Fatalf("expired session credentials: %v", err)
	}
	// Without the session token, it is refused too.
	bare := credentials.NewStaticCredentialsProvider(*cr.AccessKeyId, *cr.SecretAccessKey, "")
	signed = signRequest(t, req, "Action=GetCallerIdentity&Version=2011-06-15", bare, time.Now())
	if _, err := iamauth.Authenticate(signed, []byte("Action=GetCallerIdentity&Version=2011-06-15"), d, time.Now()); !errors.Is(err, iamauth.ErrInvalidSessionToken) {
		t.Fatalf("session credentials without the token: %v", err)
	}
}

func TestPersistence(t *testing.T) {
	dataDir := t.TempDir()
	var (
		u    *types.User
		key  *types.AccessKey
		mp   *types.Policy
		sess *sts.AssumeRoleOutput
		st   *sts.GetSessionTokenOutput
	)
	// The first server runs in a subtest, so it has stopped (and released
	// the data directory) before the second starts.
	t.Run("first server", func(t *testing.T) {
		c := start(t, testsuite.WithDataDir(dataDir))
		u = createUser(t, c, "alice")
		key = createKey(t, c, "alice")
		putDoc := `{"Statement":{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}}`
		if _, err := c.iam.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("p"), PolicyDocument: aws.String(putDoc)}); err != nil {
			t.Fatal(err)
		}
		mp = createPolicy(t, c, "m", connect)
		if _, err := c.iam.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: mp.Arn}); err != nil {
			t.Fatal(err)
		}
		r := createRole(t, c, "role")
		if _, err := c.iam.AttachRolePolicy(ctx, &iam.AttachRolePolicyInput{RoleName: aws.String("role"), PolicyArn: mp.Arn}); err != nil {
			t.Fatal(err)
		}
		sess = assumeRole(t, c, *r.Arn, "s1")
		// GetSessionToken is a Get* action that changes state: it must be saved.
		var err error
		st, err = c.as(*key.AccessKeyId, *key.SecretAccessKey, "").sts.GetSessionToken(ctx, &sts.GetSessionTokenInput{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.as("123456789012", "test", "").iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("other")}); err != nil {
			t.Fatal(err)
		}
	})
	if t.Failed() {
		return
	}

	// A second server on the same data directory sees all of it.
	c2 := start(t, testsuite.WithDataDir(dataDir))
	got, err := c2.iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("alice")})
	if err != nil || *got.User.UserId != *u.UserId || !got.User.CreateDate.Equal(*u.CreateDate) {
		t.Fatalf("GetUser after restart: %v %+v", err, got)
	}
	if p, err := c2.iam.GetUserPolicy(ctx, &iam.GetUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("p")}); err != nil || !strings.Contains(*p.PolicyDocument, "rds-db%3Aconnect") {
		t.Fatalf("GetUserPolicy after restart: %v", err)
	}
	if a, err := c2.iam.ListAttachedRolePolicies(ctx, &iam.ListAttachedRolePoliciesInput{RoleName: aws.String("role")}); err != nil || len(a.AttachedPolicies) != 1 {
		t.Fatalf("ListAttachedRolePolicies after restart: %v", err)
	}
	if p, err := c2.iam.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: mp.Arn}); err != nil || *p.Policy.AttachmentCount != 2 {
		t.Fatalf("GetPolicy after restart: %v %+v", err, p)
	}
	if k, err := c2.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("alice")}); err != nil || len(k.AccessKeyMetadata) != 1 {
		t.Fatalf("ListAccessKeys after restart: %v", err)
	}
	if _, err := c2.as("123456789012", "test", "").iam.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("other")}); err != nil {
		t.Fatalf("other account after restart: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    clients
		arn  string
	}{
		{"access key", c2.as(*key.AccessKeyId, *key.SecretAccessKey, ""), *u.Arn},
		{"assumed role", withCreds(c2, sess.Credentials), *sess.AssumedRoleUser.Arn},
		{"session token", withCreds(c2, st.Credentials), *u.Arn},
	} {
		if id, err := tc.c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil || *id.Arn != tc.arn {
			t.Fatalf("%s after restart: %v %+v", tc.name, err, id)
		}
	}

	// Snapshot → Restore → Snapshot is stable.
	d := loadDirectory(t, dataDir)
	snap, err := d.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d2 := iamauth.NewDirectory()
	if err := d2.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if again, _ := d2.Snapshot(); string(again) != string(snap) {
		t.Fatalf("snapshot changed across a round trip:\n%s\n%s", snap, again)
	}
	// A bad snapshot is refused and changes nothing.
	for _, bad := range []string{`{`, `{"Accounts":[{"ID":"x"}]}`, `{"Credentials":[{"accessKeyId":"A"}]}`} {
		if err := d2.Restore([]byte(bad)); err == nil {
			t.Fatalf("Restore(%s) succeeded", bad)
		}
	}
	if again, _ := d2.Snapshot(); string(again) != string(snap) {
		t.Fatal("a failed Restore changed the state")
	}
	// Reset keeps nothing, but the built-in keys still work.
	d2.Reset()
	if empty, _ := d2.Snapshot(); string(empty) != `{"Accounts":[],"Credentials":[]}` {
		t.Fatalf("snapshot after Reset: %s", empty)
	}
	for _, akid := range []string{*key.AccessKeyId, *sess.Credentials.AccessKeyId, *st.Credentials.AccessKeyId} {
		if _, ok := d2.LookupAccessKey(akid); ok {
			t.Fatalf("key %s survived Reset", akid)
		}
	}
	if _, ok := d2.LookupAccessKey("test"); !ok {
		t.Fatal("test/test lost after Reset")
	}

	// The server's reset endpoint clears IAM too.
	resp, err := http.Post(c2.emu.URL+"/_rdslocal/reset", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if l, err := c2.iam.ListUsers(ctx, &iam.ListUsersInput{}); err != nil || len(l.Users) != 0 {
		t.Fatalf("ListUsers after reset: %v %+v", err, l)
	}
	if id, err := c2.as(*key.AccessKeyId, *key.SecretAccessKey, "").sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil || *id.Arn != "arn:aws:iam::000000000000:root" {
		t.Fatalf("alice's key after reset: %v %+v", err, id)
	}
}

// signRequest returns a copy of req with body, signed for STS at the given
// time with the provider's credentials.
func signRequest(t *testing.T, req *http.Request, body string, p aws.CredentialsProvider, at time.Time) *http.Request {
	t.Helper()
	r := req.Clone(ctx)
	r.Body = io.NopCloser(strings.NewReader(body))
	creds, err := p.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(ctx, creds, r, hex.EncodeToString(sum[:]), "sts", "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	return r
}
