package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	"github.com/rdslocal/rdslocal/server"
)

const (
	region  = "us-east-1"
	account = "000000000000"
	tokA    = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	tokB    = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
	tokC    = "cccccccc-cccc-4ccc-8ccc-cccccccccccc"
	tokD    = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
)

var arnRE = regexp.MustCompile(`^arn:aws:secretsmanager:([a-z0-9-]+):(\d{12}):secret:(.+)-[A-Za-z0-9]{6}$`)

// startServer runs a real rdslocal server (with a data directory when dir is
// not empty) behind httptest.
func startServer(t *testing.T, dir string) *httptest.Server {
	t.Helper()
	// Secrets Manager needs no database servers.
	srv, err := server.New(server.Config{Logger: slog.New(slog.DiscardHandler), DataDir: dir, DBBackend: "none"})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
	})
	return ts
}

// clientFor returns a Secrets Manager client of the real SDK for ts.
func clientFor(ts *httptest.Server, region, accessKey string) *secretsmanager.Client {
	cfg := aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider(accessKey, "test", "")}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
		o.RetryMaxAttempts = 1
	})
}

func newClient(t *testing.T) *secretsmanager.Client {
	t.Helper()
	return clientFor(startServer(t, ""), region, "test")
}

// wantErr checks that err is the SDK's typed error E, HTTP 400, with message
// msg (when msg is not empty).
func wantErr[E smithy.APIError](t *testing.T, err error, msg string) E {
	t.Helper()
	var e E
	if !errors.As(err, &e) {
		t.Fatalf("error = %v, want %T", err, e)
	}
	if msg != "" && e.ErrorMessage() != msg {
		t.Fatalf("message = %q, want %q", e.ErrorMessage(), msg)
	}
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Fatalf("error %v: want HTTP 400", err)
	}
	return e
}

// wantCode checks the error code of an error the SDK has no type for
// (ValidationException, SerializationException).
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e smithy.APIError
	if !errors.As(err, &e) || e.ErrorCode() != code {
		t.Fatalf("error = %v, want %s", err, code)
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

func create(t *testing.T, c *secretsmanager.Client, name, value string, opts ...func(*secretsmanager.CreateSecretInput)) *secretsmanager.CreateSecretOutput {
	t.Helper()
	in := &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}
	for _, o := range opts {
		o(in)
	}
	out, err := c.CreateSecret(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateSecret %s: %v", name, err)
	}
	return out
}

func getString(t *testing.T, c *secretsmanager.Client, id string) string {
	t.Helper()
	out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("GetSecretValue %s: %v", id, err)
	}
	return aws.ToString(out.SecretString)
}

func stages(t *testing.T, c *secretsmanager.Client, id string) map[string][]string {
	t.Helper()
	out, err := c.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatalf("DescribeSecret %s: %v", id, err)
	}
	for _, v := range out.VersionIdsToStages {
		slices.Sort(v)
	}
	return out.VersionIdsToStages
}

func eqStages(t *testing.T, got map[string][]string, want map[string][]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("VersionIdsToStages = %v, want %v", got, want)
	}
	for k, v := range want {
		w := slices.Clone(v)
		slices.Sort(w)
		if !slices.Equal(got[k], w) {
			t.Fatalf("VersionIdsToStages = %v, want %v", got, want)
		}
	}
}

func TestCreateAndGetSecretValue(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	out := create(t, c, "prod/db-creds", `{"username":"app","password":"pw"}`, func(in *secretsmanager.CreateSecretInput) {
		in.ClientRequestToken = aws.String(tokA)
	})
	m := arnRE.FindStringSubmatch(aws.ToString(out.ARN))
	if m == nil || m[1] != region || m[2] != account || m[3] != "prod/db-creds" {
		t.Fatalf("ARN = %q, want arn:aws:secretsmanager:%s:%s:secret:prod/db-creds-XXXXXX", aws.ToString(out.ARN), region, account)
	}
	if aws.ToString(out.Name) != "prod/db-creds" || aws.ToString(out.VersionId) != tokA {
		t.Fatalf("CreateSecret = %+v, want Name prod/db-creds, VersionId %s", out, tokA)
	}
	arn := aws.ToString(out.ARN)
	for _, id := range []string{"prod/db-creds", arn, arn[:len(arn)-7]} {
		t.Run(id, func(t *testing.T) {
			got, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(got.SecretString) != `{"username":"app","password":"pw"}` || got.SecretBinary != nil {
				t.Errorf("SecretString = %q, SecretBinary = %v", aws.ToString(got.SecretString), got.SecretBinary)
			}
			if aws.ToString(got.ARN) != arn || aws.ToString(got.Name) != "prod/db-creds" || aws.ToString(got.VersionId) != tokA {
				t.Errorf("GetSecretValue = ARN %q Name %q VersionId %q", aws.ToString(got.ARN), aws.ToString(got.Name), aws.ToString(got.VersionId))
			}
			if !slices.Equal(got.VersionStages, []string{"AWSCURRENT"}) {
				t.Errorf("VersionStages = %v", got.VersionStages)
			}
			if got.CreatedDate == nil || time.Since(*got.CreatedDate) > time.Minute {
				t.Errorf("CreatedDate = %v", got.CreatedDate)
			}
		})
	}

	// A binary secret, and a version chosen by id and by stage.
	bin := []byte{0, 1, 2, 0xff, 'x'}
	bout := must[*secretsmanager.CreateSecretOutput](t)(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bin"), SecretBinary: bin}))
	got := must[*secretsmanager.GetSecretValueOutput](t)(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin"), VersionId: bout.VersionId}))
	if string(got.SecretBinary) != string(bin) || got.SecretString != nil {
		t.Fatalf("SecretBinary = %v, SecretString = %v", got.SecretBinary, got.SecretString)
	}
	got = must[*secretsmanager.GetSecretValueOutput](t)(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("bin"), VersionStage: aws.String("AWSCURRENT"), VersionId: bout.VersionId}))
	if aws.ToString(got.VersionId) != aws.ToString(bout.VersionId) {
		t.Fatalf("VersionId = %q", aws.ToString(got.VersionId))
	}

	// A secret created without a value has no version.
	eout := must[*secretsmanager.CreateSecretOutput](t)(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("empty"), Description: aws.String("no value yet")}))
	if eout.VersionId != nil {
		t.Fatalf("VersionId of a secret without value = %q", aws.ToString(eout.VersionId))
	}
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("empty")})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT")
}

func TestGetSecretValueErrors(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	out := create(t, c, "db", "v1", func(in *secretsmanager.CreateSecretInput) { in.ClientRequestToken = aws.String(tokA) })
	arn := aws.ToString(out.ARN)
	tests := []struct {
		name string
		in   secretsmanager.GetSecretValueInput
		code string
		msg  string
	}{
		{"missing name", secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")}, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."},
		{"wrong ARN suffix", secretsmanager.GetSecretValueInput{SecretId: aws.String(arn[:len(arn)-6] + "zzzzzz")}, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."},
		{"ARN of another region", secretsmanager.GetSecretValueInput{SecretId: aws.String(strings.Replace(arn, region, "eu-west-1", 1))}, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."},
		{"ARN of another account", secretsmanager.GetSecretValueInput{SecretId: aws.String(strings.Replace(arn, account, "111111111111", 1))}, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."},
		{"missing version", secretsmanager.GetSecretValueInput{SecretId: aws.String("db"), VersionId: aws.String(tokB)}, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: " + tokB},
		{"missing stage", secretsmanager.GetSecretValueInput{SecretId: aws.String("db"), VersionStage: aws.String("AWSPENDING")}, "ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: AWSPENDING"},
		{"stage not on version", secretsmanager.GetSecretValueInput{SecretId: aws.String("db"), VersionId: aws.String(tokA), VersionStage: aws.String("AWSPREVIOUS")}, "InvalidRequestException", "You provided a VersionStage that is not associated to the provided VersionId."},
		{"short VersionId", secretsmanager.GetSecretValueInput{SecretId: aws.String("db"), VersionId: aws.String("short")}, "ValidationException", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.GetSecretValue(ctx, &tt.in)
			switch tt.code {
			case "ResourceNotFoundException":
				wantErr[*types.ResourceNotFoundException](t, err, tt.msg)
			case "InvalidRequestException":
				wantErr[*types.InvalidRequestException](t, err, tt.msg)
			default:
				wantCode(t, err, tt.code)
			}
		})
	}
}

func TestCreateSecretErrors(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	create(t, c, "taken", "v")
	create(t, c, "doomed", "v")
	must[*secretsmanager.DeleteSecretOutput](t)(c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("doomed")}))
	tests := []struct {
		name  string
		in    secretsmanager.CreateSecretInput
		check func(t *testing.T, err error)
	}{
		{"duplicate name", secretsmanager.CreateSecretInput{Name: aws.String("taken"), SecretString: aws.String("x")}, func(t *testing.T, err error) {
			wantErr[*types.ResourceExistsException](t, err, "The operation failed because the secret taken already exists.")
		}},
		{"name scheduled for deletion", secretsmanager.CreateSecretInput{Name: aws.String("doomed"), SecretString: aws.String("x")}, func(t *testing.T, err error) {
			wantErr[*types.InvalidRequestException](t, err, "You can't create this secret because a secret with this name is already scheduled for deletion.")
		}},
		{"invalid characters", secretsmanager.CreateSecretInput{Name: aws.String("bad name!"), SecretString: aws.String("x")}, func(t *testing.T, err error) {
			wantErr[*types.InvalidParameterException](t, err, "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
		}},
		{"string and binary", secretsmanager.CreateSecretInput{Name: aws.String("both"), SecretString: aws.String("x"), SecretBinary: []byte("y")}, func(t *testing.T, err error) {
			wantErr[*types.InvalidParameterException](t, err, "You can't specify both a binary secret value and a string secret value in the same secret.")
		}},
		{"name too long", secretsmanager.CreateSecretInput{Name: aws.String(strings.Repeat("n", 513)), SecretString: aws.String("x")}, func(t *testing.T, err error) {
			wantCode(t, err, "ValidationException")
		}},
		{"empty SecretString", secretsmanager.CreateSecretInput{Name: aws.String("e"), SecretString: aws.String("")}, func(t *testing.T, err error) {
			wantCode(t, err, "ValidationException")
		}},
		{"token too short", secretsmanager.CreateSecretInput{Name: aws.String("tok"), SecretString: aws.String("x"), ClientRequestToken: aws.String("abc")}, func(t *testing.T, err error) {
			wantCode(t, err, "ValidationException")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateSecret(ctx, &tt.in)
			tt.check(t, err)
		})
	}
}

func TestCreateSecretIdempotency(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	first := create(t, c, "idem", "v1", func(in *secretsmanager.CreateSecretInput) { in.ClientRequestToken = aws.String(tokA) })
	// The same token and value: success with the same version.
	again := create(t, c, "idem", "v1", func(in *secretsmanager.CreateSecretInput) { in.ClientRequestToken = aws.String(tokA) })
	if aws.ToString(again.VersionId) != tokA || aws.ToString(again.ARN) != aws.ToString(first.ARN) {
		t.Fatalf("repeat = %+v, want VersionId %s ARN %s", again, tokA, aws.ToString(first.ARN))
	}
	eqStages(t, stages(t, c, "idem"), map[string][]string{tokA: {"AWSCURRENT"}})
	// The same token and another value.
	_, err := c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("idem"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokA)})
	wantErr[*types.ResourceExistsException](t, err, "You can't modify an existing version, you can only create a new version.")
	// Another token: the name is taken.
	_, err = c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("idem"), SecretString: aws.String("v1"), ClientRequestToken: aws.String(tokB)})
	wantErr[*types.ResourceExistsException](t, err, "The operation failed because the secret idem already exists.")
	// A secret without a value, retried with its token.
	must[*secretsmanager.CreateSecretOutput](t)(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("novalue"), ClientRequestToken: aws.String(tokC)}))
	must[*secretsmanager.CreateSecretOutput](t)(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("novalue"), ClientRequestToken: aws.String(tokC)}))
	// The SDK fills in a token when none is given: the VersionId is a UUID.
	auto := create(t, c, "auto", "v")
	if !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(aws.ToString(auto.VersionId)) {
		t.Fatalf("VersionId = %q, want a UUID", aws.ToString(auto.VersionId))
	}
}

func TestPutSecretValue(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	create(t, c, "p", "v1", func(in *secretsmanager.CreateSecretInput) { in.ClientRequestToken = aws.String(tokA) })
	put := func(tok, val string, st ...string) (*secretsmanager.PutSecretValueOutput, error) {
		return c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("p"), SecretString: aws.String(val), ClientRequestToken: aws.String(tok), VersionStages: st})
	}
	out := must[*secretsmanager.PutSecretValueOutput](t)(put(tokB, "v2"))
	if aws.ToString(out.VersionId) != tokB || !slices.Equal(out.VersionStages, []string{"AWSCURRENT"}) || aws.ToString(out.Name) != "p" {
		t.Fatalf("PutSecretValue = %+v", out)
	}
	// Idempotent repeat.
	again := must[*secretsmanager.PutSecretValueOutput](t)(put(tokB, "v2"))
	if aws.ToString(again.VersionId) != tokB {
		t.Fatalf("repeat VersionId = %q", aws.ToString(again.VersionId))
	}
	eqStages(t, stages(t, c, "p"), map[string][]string{tokA: {"AWSPREVIOUS"}, tokB: {"AWSCURRENT"}})
	_, err := put(tokB, "other")
	wantErr[*types.ResourceExistsException](t, err, "You can't modify an existing version, you can only create a new version.")

	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("p")})
	wantErr[*types.InvalidRequestException](t, err, "You must provide either SecretString or SecretBinary.")
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("p"), SecretString: aws.String("s"), SecretBinary: []byte("b")})
	wantErr[*types.InvalidParameterException](t, err, "You can't specify both a binary secret value and a string secret value in the same secret.")
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("missing"), SecretString: aws.String("s")})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
	// SecretBinary holds 1–65536 bytes.
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("p"), SecretBinary: make([]byte, 65537)})
	wantCode(t, err, "ValidationException")
	// VersionStages holds 1–20 labels.
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("p"), SecretString: aws.String("s"), VersionStages: []string{}})
	wantCode(t, err, "ValidationException")
	many := make([]string, 21)
	for i := range many {
		many[i] = fmt.Sprintf("L%d", i)
	}
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("p"), SecretString: aws.String("s"), VersionStages: many})
	wantCode(t, err, "ValidationException")

	// A value on a secret created without one becomes AWSCURRENT alone.
	must[*secretsmanager.CreateSecretOutput](t)(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("late")}))
	must[*secretsmanager.PutSecretValueOutput](t)(c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("late"), SecretString: aws.String("now"), ClientRequestToken: aws.String(tokD)}))
	eqStages(t, stages(t, c, "late"), map[string][]string{tokD: {"AWSCURRENT"}})
	if got := getString(t, c, "late"); got != "now" {
		t.Fatalf("value = %q", got)
	}
}

func TestStagingLabels(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	create(t, c, "s", "v1", func(in *secretsmanager.CreateSecretInput) { in.ClientRequestToken = aws.String(tokA) })
	put := func(tok, val string, st ...string) {
		t.Helper()
		must[*secretsmanager.PutSecretValueOutput](t)(c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("s"), SecretString: aws.String(val), ClientRequestToken: aws.String(tok), VersionStages: st}))
	}
	move := func(label string, from, to *string) error {
		_, err := c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("s"), VersionStage: aws.String(label), RemoveFromVersionId: from, MoveToVersionId: to})
		return err
	}

	put(tokB, "v2")
	eqStages(t, stages(t, c, "s"), map[string][]string{tokA: {"AWSPREVIOUS"}, tokB: {"AWSCURRENT"}})

	// A pending value leaves AWSCURRENT where it is.
	put(tokC, "v3", "AWSPENDING")
	eqStages(t, stages(t, c, "s"), map[string][]string{tokA: {"AWSPREVIOUS"}, tokB: {"AWSCURRENT"}, tokC: {"AWSPENDING"}})
	if got := getString(t, c, "s"); got != "v2" {
		t.Fatalf("current = %q, want v2", got)
	}
	pending := must[*secretsmanager.GetSecretValueOutput](t)(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s"), VersionStage: aws.String("AWSPENDING")}))
	if aws.ToString(pending.SecretString) != "v3" {
		t.Fatalf("pending = %q", aws.ToString(pending.SecretString))
	}

	// Finishing a rotation: AWSCURRENT moves, AWSPREVIOUS follows it, and the
	// version that had AWSPREVIOUS is left without labels.
	err := move("AWSCURRENT", nil, aws.String(tokC))
	wantErr[*types.InvalidParameterException](t, err, "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version "+tokB+", so you must explicitly reference that version in RemoveFromVersionId.")
	err = move("AWSCURRENT", aws.String(tokA), aws.String(tokC))
	wantErr[*types.InvalidParameterException](t, err, "When you move staging label AWSCURRENT, if you specify RemoveFromVersionId, it must be set to the version that currently has the staging label AWSCURRENT.")
	err = move("AWSCURRENT", aws.String(tokB), aws.String(tokD))
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret value for VersionId: "+tokD)
	if err := move("AWSCURRENT", aws.String(tokB), aws.String(tokC)); err != nil {
		t.Fatal(err)
	}
	eqStages(t, stages(t, c, "s"), map[string][]string{tokB: {"AWSPREVIOUS"}, tokC: {"AWSCURRENT", "AWSPENDING"}})
	if got := getString(t, c, "s"); got != "v3" {
		t.Fatalf("current = %q, want v3", got)
	}

	// Removing AWSPENDING.
	err = move("AWSPENDING", aws.String(tokB), nil)
	wantErr[*types.InvalidParameterException](t, err, "The staging label AWSPENDING is not attached to version "+tokB+".")
	if err := move("AWSPENDING", aws.String(tokC), nil); err != nil {
		t.Fatal(err)
	}
	eqStages(t, stages(t, c, "s"), map[string][]string{tokB: {"AWSPREVIOUS"}, tokC: {"AWSCURRENT"}})
	// AWSCURRENT can only move, not vanish.
	wantErr[*types.InvalidParameterException](t, move("AWSCURRENT", aws.String(tokC), nil), "")
	wantErr[*types.InvalidParameterException](t, move("AWSCURRENT", nil, nil), "")

	// Rolling back to AWSPREVIOUS swaps the two labels.
	if err := move("AWSCURRENT", aws.String(tokC), aws.String(tokB)); err != nil {
		t.Fatal(err)
	}
	eqStages(t, stages(t, c, "s"), map[string][]string{tokB: {"AWSCURRENT"}, tokC: {"AWSPREVIOUS"}})

	// A custom label moves between versions and is unique.
	if err := move("blue", nil, aws.String(tokA)); err != nil {
		t.Fatal(err)
	}
	wantErr[*types.InvalidParameterException](t, move("blue", nil, aws.String(tokB)), "")
	if err := move("blue", aws.String(tokA), aws.String(tokB)); err != nil {
		t.Fatal(err)
	}
	eqStages(t, stages(t, c, "s"), map[string][]string{tokB: {"AWSCURRENT", "blue"}, tokC: {"AWSPREVIOUS"}})

	// Deprecated versions: hidden unless asked for, still readable by id.
	list := must[*secretsmanager.ListSecretVersionIdsOutput](t)(c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s")}))
	if len(list.Versions) != 2 {
		t.Fatalf("versions = %d, want 2", len(list.Versions))
	}
	list = must[*secretsmanager.ListSecretVersionIdsOutput](t)(c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("s"), IncludeDeprecated: aws.Bool(true)}))
	if len(list.Versions) != 3 {
		t.Fatalf("versions with deprecated = %d, want 3", len(list.Versions))
	}
	old := must[*secretsmanager.GetSecretValueOutput](t)(c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("s"), VersionId: aws.String(tokA)}))
	if aws.ToString(old.SecretString) != "v1" || len(old.VersionStages) != 0 {
		t.Fatalf("deprecated version = %q %v", aws.ToString(old.SecretString), old.VersionStages)
	}
}

func TestDeprecatedVersionsArePruned(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	create(t, c, "busy", "v0")
	for i := range 110 {
		must[*secretsmanager.PutSecretValueOutput](t)(c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("busy"), SecretString: aws.String(fmt.Sprint("v", i+1))}))
	}
	var n int
	p := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("busy"), IncludeDeprecated: aws.Bool(true), MaxResults: aws.Int32(30)})
	for p.HasMorePages() {
		n += len(must[*secretsmanager.ListSecretVersionIdsOutput](t)(p.NextPage(ctx)).Versions)
	}
	if n != 100 {
		t.Fatalf("versions kept = %d, want 100", n)
	}
	if got := getString(t, c, "busy"); got != "v110" {
		t.Fatalf("current = %q", got)
	}
}

func TestUpdateSecret(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	create(t, c, "u", "v1", func(in *secretsmanager.CreateSecretInput) {
		in.ClientRequestToken = aws.String(tokA)
		in.Description = aws.String("first")
	})
	// Metadata only: no new version.
	out := must[*secretsmanager.UpdateSecretOutput](t)(c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("u"), Description: aws.String("second"), KmsKeyId: aws.String("alias/mine")}))
	if out.VersionId != nil || aws.ToString(out.Name) != "u" {
		t.Fatalf("UpdateSecret = %+v, want no VersionId", out)
	}
	d := must[*secretsmanager.DescribeSecretOutput](t)(c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("u")}))
	if aws.ToString(d.Description) != "second" || aws.ToString(d.KmsKeyId) != "alias/mine" {
		t.Fatalf("Description %q KmsKeyId %q", aws.ToString(d.Description), aws.ToString(d.KmsKeyId))
	}
	// A new value moves AWSCURRENT.
	out = must[*secretsmanager.UpdateSecretOutput](t)(c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("u"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)}))
	if aws.ToString(out.VersionId) != tokB {
		t.Fatalf("VersionId = %q", aws.ToString(out.VersionId))
	}
	eqStages(t, stages(t, c, "u"), map[string][]string{tokA: {"AWSPREVIOUS"}, tokB: {"AWSCURRENT"}})
	if got := getString(t, c, "u"); got != "v2" {
		t.Fatalf("value = %q", got)
	}
	// Reusing a VersionId is an error, even with the same value.
	_, err := c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("u"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)})
	wantErr[*types.ResourceExistsException](t, err, "You can't modify an existing version, you can only create a new version.")
	_, err = c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("u"), SecretString: aws.String("a"), SecretBinary: []byte("b")})
	wantErr[*types.InvalidParameterException](t, err, "")
	_, err = c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("nope"), Description: aws.String("x")})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
}

func TestDescribeSecret(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	before := time.Now().Add(-time.Second)
	out := create(t, c, "d", "v1", func(in *secretsmanager.CreateSecretInput) {
		in.ClientRequestToken = aws.String(tokA)
		in.Description = aws.String("desc")
		in.Tags = []types.Tag{{Key: aws.String("env"), Value: aws.String("prod")}, {Key: aws.String("team"), Value: aws.String("")}}
	})
	d := must[*secretsmanager.DescribeSecretOutput](t)(c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: out.ARN}))
	if aws.ToString(d.ARN) != aws.ToString(out.ARN) || aws.ToString(d.Name) != "d" || aws.ToString(d.Description) != "desc" {
		t.Fatalf("DescribeSecret = %+v", d)
	}
	if d.CreatedDate == nil || d.CreatedDate.Before(before) || d.LastChangedDate == nil {
		t.Fatalf("CreatedDate %v LastChangedDate %v", d.CreatedDate, d.LastChangedDate)
	}
	if d.LastAccessedDate != nil || d.DeletedDate != nil || d.KmsKeyId != nil || d.RotationEnabled != nil {
		t.Fatalf("unexpected members: LastAccessed %v Deleted %v Kms %v Rotation %v", d.LastAccessedDate, d.DeletedDate, d.KmsKeyId, d.RotationEnabled)
	}
	if len(d.Tags) != 2 || aws.ToString(d.Tags[0].Key) != "env" || aws.ToString(d.Tags[0].Value) != "prod" || aws.ToString(d.Tags[1].Value) != "" {
		t.Fatalf("Tags = %+v", d.Tags)
	}
	eqStages(t, d.VersionIdsToStages, map[string][]string{tokA: {"AWSCURRENT"}})
	getString(t, c, "d")
	d = must[*secretsmanager.DescribeSecretOutput](t)(c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("d")}))
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if d.LastAccessedDate == nil || !d.LastAccessedDate.Equal(today) {
		t.Fatalf("LastAccessedDate = %v, want %v", d.LastAccessedDate, today)
	}
	_, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("nope")})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
}

func TestDeleteAndRestore(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	out := create(t, c, "del", "v1")
	del := func(in secretsmanager.DeleteSecretInput) (*secretsmanager.DeleteSecretOutput, error) {
		return c.DeleteSecret(ctx, &in)
	}

	t.Run("parameter errors", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			in   secretsmanager.DeleteSecretInput
			msg  string
		}{
			{"window too short", secretsmanager.DeleteSecretInput{SecretId: aws.String("del"), RecoveryWindowInDays: aws.Int64(3)}, "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."},
			{"window too long", secretsmanager.DeleteSecretInput{SecretId: aws.String("del"), RecoveryWindowInDays: aws.Int64(31)}, "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."},
			{"window and force", secretsmanager.DeleteSecretInput{SecretId: aws.String("del"), RecoveryWindowInDays: aws.Int64(7), ForceDeleteWithoutRecovery: aws.Bool(true)}, "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := del(tt.in)
				wantErr[*types.InvalidParameterException](t, err, tt.msg)
			})
		}
		_, err := del(secretsmanager.DeleteSecretInput{SecretId: aws.String("missing")})
		wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
	})

	// Default window: 30 days.
	d := must[*secretsmanager.DeleteSecretOutput](t)(del(secretsmanager.DeleteSecretInput{SecretId: aws.String("del")}))
	if want := time.Now().Add(30 * 24 * time.Hour); d.DeletionDate == nil || d.DeletionDate.Sub(want).Abs() > time.Minute {
		t.Fatalf("DeletionDate = %v, want about %v", d.DeletionDate, want)
	}
	if aws.ToString(d.ARN) != aws.ToString(out.ARN) || aws.ToString(d.Name) != "del" {
		t.Fatalf("DeleteSecret = %+v", d)
	}

	const marked = "You can't perform this operation on the secret because it was marked for deletion."
	_, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("del")})
	wantErr[*types.InvalidRequestException](t, err, marked)
	_, err = c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("del"), SecretString: aws.String("x")})
	wantErr[*types.InvalidRequestException](t, err, marked)
	_, err = c.UpdateSecret(ctx, &secretsmanager.UpdateSecretInput{SecretId: aws.String("del"), Description: aws.String("x")})
	wantErr[*types.InvalidRequestException](t, err, marked)
	_, err = c.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String("del"), VersionStage: aws.String("x"), MoveToVersionId: aws.String(tokA)})
	wantErr[*types.InvalidRequestException](t, err, marked)
	_, err = del(secretsmanager.DeleteSecretInput{SecretId: aws.String("del")})
	wantErr[*types.InvalidRequestException](t, err, marked)

	desc := must[*secretsmanager.DescribeSecretOutput](t)(c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("del")}))
	if desc.DeletedDate == nil {
		t.Fatal("DescribeSecret of a deleted secret has no DeletedDate")
	}
	names := listNames(t, c, nil, false)
	if slices.Contains(names, "del") {
		t.Fatalf("ListSecrets shows a deleted secret: %v", names)
	}
	if names = listNames(t, c, nil, true); !slices.Contains(names, "del") {
		t.Fatalf("ListSecrets IncludePlannedDeletion hides the deleted secret: %v", names)
	}

	r := must[*secretsmanager.RestoreSecretOutput](t)(c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("del")}))
	if aws.ToString(r.ARN) != aws.ToString(out.ARN) || aws.ToString(r.Name) != "del" {
		t.Fatalf("RestoreSecret = %+v", r)
	}
	if got := getString(t, c, "del"); got != "v1" {
		t.Fatalf("restored value = %q", got)
	}
	desc = must[*secretsmanager.DescribeSecretOutput](t)(c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("del")}))
	if desc.DeletedDate != nil {
		t.Fatal("restored secret keeps DeletedDate")
	}
	_, err = c.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String("missing")})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")

	// A 7-day window, then a forced deletion of the scheduled secret.
	d = must[*secretsmanager.DeleteSecretOutput](t)(del(secretsmanager.DeleteSecretInput{SecretId: aws.String("del"), RecoveryWindowInDays: aws.Int64(7)}))
	if want := time.Now().Add(7 * 24 * time.Hour); d.DeletionDate.Sub(want).Abs() > time.Minute {
		t.Fatalf("DeletionDate = %v, want about %v", d.DeletionDate, want)
	}
	must[*secretsmanager.DeleteSecretOutput](t)(del(secretsmanager.DeleteSecretInput{SecretId: aws.String("del"), ForceDeleteWithoutRecovery: aws.Bool(true)}))
	_, err = c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("del")})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
	// The name is free again, with a new ARN.
	again := create(t, c, "del", "v2")
	if aws.ToString(again.ARN) == aws.ToString(out.ARN) {
		t.Log("new secret reuses the ARN suffix (1 in 56 billion)")
	}

	// Forcing the deletion of a missing secret succeeds.
	f := must[*secretsmanager.DeleteSecretOutput](t)(del(secretsmanager.DeleteSecretInput{SecretId: aws.String("never-was"), ForceDeleteWithoutRecovery: aws.Bool(true)}))
	if aws.ToString(f.Name) != "never-was" || f.DeletionDate == nil {
		t.Fatalf("forced delete of a missing secret = %+v", f)
	}
}

func TestTags(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	create(t, c, "tagged", "v", func(in *secretsmanager.CreateSecretInput) {
		in.Tags = []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}}
	})
	tagsOf := func() map[string]string {
		d := must[*secretsmanager.DescribeSecretOutput](t)(c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("tagged")}))
		m := map[string]string{}
		for _, tg := range d.Tags {
			m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		return m
	}
	must[*secretsmanager.TagResourceOutput](t)(c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tagged"), Tags: []types.Tag{
		{Key: aws.String("a"), Value: aws.String("2")}, {Key: aws.String("b"), Value: aws.String("3")},
	}}))
	if got := tagsOf(); len(got) != 2 || got["a"] != "2" || got["b"] != "3" {
		t.Fatalf("tags = %v", got)
	}
	must[*secretsmanager.UntagResourceOutput](t)(c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("tagged"), TagKeys: []string{"a", "zzz"}}))
	if got := tagsOf(); len(got) != 1 || got["b"] != "3" {
		t.Fatalf("tags = %v", got)
	}
	_, err := c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("nope"), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
	_, err = c.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: aws.String("nope"), TagKeys: []string{"k"}})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
	_, err = c.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String("tagged"), Tags: []types.Tag{{Value: aws.String("v")}}})
	wantErr[*types.InvalidParameterException](t, err, "")
}

// listNames lists every secret name through the SDK paginator.
func listNames(t *testing.T, c *secretsmanager.Client, filters []types.Filter, planned bool, opts ...func(*secretsmanager.ListSecretsInput)) []string {
	t.Helper()
	in := &secretsmanager.ListSecretsInput{Filters: filters, IncludePlannedDeletion: aws.Bool(planned)}
	for _, o := range opts {
		o(in)
	}
	var names []string
	p := secretsmanager.NewListSecretsPaginator(c, in)
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("ListSecrets: %v", err)
		}
		for _, s := range out.SecretList {
			names = append(names, aws.ToString(s.Name))
		}
	}
	return names
}

func TestListSecretsFilters(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	tg := func(kv ...string) func(*secretsmanager.CreateSecretInput) {
		return func(in *secretsmanager.CreateSecretInput) {
			for i := 0; i < len(kv); i += 2 {
				in.Tags = append(in.Tags, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
			}
		}
	}
	descr := func(d string) func(*secretsmanager.CreateSecretInput) {
		return func(in *secretsmanager.CreateSecretInput) { in.Description = aws.String(d) }
	}
	create(t, c, "prod/db/app", "v", descr("Production database for App"), tg("env", "prod", "team", "payments"))
	create(t, c, "prod/db/reporting", "v", descr("Reporting replica"), tg("env", "prod"))
	create(t, c, "dev/db/app", "v", descr("development DB"), tg("env", "dev", "team", "payments"))
	create(t, c, "dev/cache", "v")

	f := func(key types.FilterNameStringType, values ...string) types.Filter {
		return types.Filter{Key: key, Values: values}
	}
	tests := []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"none", nil, []string{"prod/db/app", "prod/db/reporting", "dev/db/app", "dev/cache"}},
		{"name prefix", []types.Filter{f("name", "prod/")}, []string{"prod/db/app", "prod/db/reporting"}},
		{"name is case-sensitive", []types.Filter{f("name", "Prod/")}, nil},
		{"values are ORed", []types.Filter{f("name", "prod/db/r", "dev/cache")}, []string{"prod/db/reporting", "dev/cache"}},
		{"negation", []types.Filter{f("name", "!prod/")}, []string{"dev/db/app", "dev/cache"}},
		{"prefix and negation", []types.Filter{f("name", "dev/", "!dev/cache")}, []string{"dev/db/app"}},
		{"description, any case", []types.Filter{f("description", "PRODUCTION")}, []string{"prod/db/app"}},
		{"description word", []types.Filter{f("description", "db")}, []string{"dev/db/app"}},
		{"tag-key", []types.Filter{f("tag-key", "te")}, []string{"prod/db/app", "dev/db/app"}},
		{"tag-value", []types.Filter{f("tag-value", "pro")}, []string{"prod/db/app", "prod/db/reporting"}},
		{"tag-value is case-sensitive", []types.Filter{f("tag-value", "Pro")}, nil},
		{"negated tag-key", []types.Filter{f("tag-key", "!team")}, []string{"prod/db/reporting", "dev/cache"}},
		{"all", []types.Filter{f("all", "payments")}, []string{"prod/db/app", "dev/db/app"}},
		{"all, any case, words", []types.Filter{f("all", "REPORTING")}, []string{"prod/db/reporting"}},
		{"all, every word", []types.Filter{f("all", "prod app")}, []string{"prod/db/app"}},
		{"filters are ANDed", []types.Filter{f("name", "prod/"), f("tag-key", "team")}, []string{"prod/db/app"}},
		{"primary-region (no replicas)", []types.Filter{f("primary-region", "us-east-1")}, nil},
		{"owning-service", []types.Filter{f("owning-service", "rds")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := listNames(t, c, tt.filters, false); !slices.Equal(got, tt.want) {
				t.Errorf("names = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("sort", func(t *testing.T) {
		got := listNames(t, c, nil, false, func(in *secretsmanager.ListSecretsInput) { in.SortOrder = types.SortOrderTypeDesc })
		if want := []string{"dev/cache", "dev/db/app", "prod/db/reporting", "prod/db/app"}; !slices.Equal(got, want) {
			t.Errorf("created desc = %q, want %q", got, want)
		}
		got = listNames(t, c, nil, false, func(in *secretsmanager.ListSecretsInput) { in.SortBy = types.SortByTypeName })
		if want := []string{"dev/cache", "dev/db/app", "prod/db/app", "prod/db/reporting"}; !slices.Equal(got, want) {
			t.Errorf("name asc = %q, want %q", got, want)
		}
	})

	t.Run("entry", func(t *testing.T) {
		out := must[*secretsmanager.ListSecretsOutput](t)(c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []types.Filter{f("name", "prod/db/app")}}))
		if len(out.SecretList) != 1 {
			t.Fatalf("SecretList = %d entries", len(out.SecretList))
		}
		e := out.SecretList[0]
		if arnRE.FindString(aws.ToString(e.ARN)) == "" || aws.ToString(e.Description) != "Production database for App" || len(e.Tags) != 2 || len(e.SecretVersionsToStages) != 1 || e.CreatedDate == nil || e.LastChangedDate == nil {
			t.Fatalf("entry = %+v", e)
		}
		if out.NextToken != nil {
			t.Fatalf("NextToken = %q on the only page", aws.ToString(out.NextToken))
		}
	})

	t.Run("bad filter", func(t *testing.T) {
		_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{Filters: []types.Filter{{Key: "colour", Values: []string{"x"}}}})
		wantCode(t, err, "ValidationException")
	})
}

func TestListSecretsPagination(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("page-%02d", i)
		create(t, c, name, "v")
		want = append(want, name)
	}
	var got []string
	var sizes []int
	p := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(10)})
	for p.HasMorePages() {
		out := must[*secretsmanager.ListSecretsOutput](t)(p.NextPage(ctx))
		sizes = append(sizes, len(out.SecretList))
		for _, s := range out.SecretList {
			got = append(got, aws.ToString(s.Name))
		}
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) || !slices.Equal(got, want) {
		t.Fatalf("pages %v, names %q", sizes, got)
	}

	first := must[*secretsmanager.ListSecretsOutput](t)(c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(3)}))
	if first.NextToken == nil {
		t.Fatal("no NextToken")
	}
	for _, tt := range []struct {
		name string
		in   secretsmanager.ListSecretsInput
	}{
		{"garbage", secretsmanager.ListSecretsInput{NextToken: aws.String("not-a-token")}},
		{"token of another query", secretsmanager.ListSecretsInput{NextToken: first.NextToken, SortOrder: types.SortOrderTypeDesc}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ListSecrets(ctx, &tt.in)
			wantErr[*types.InvalidNextTokenException](t, err, "The NextToken value is invalid.")
		})
	}
	for _, n := range []int32{0, 101} {
		_, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{MaxResults: aws.Int32(n)})
		wantCode(t, err, "ValidationException")
	}
}

func TestBatchGetSecretValue(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	a := create(t, c, "batch/a", "va")
	create(t, c, "batch/b", "vb")
	create(t, c, "batch/c", "vc")
	create(t, c, "other", "vo")
	create(t, c, "batch/gone", "vg")
	must[*secretsmanager.DeleteSecretOutput](t)(c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("batch/gone")}))

	out := must[*secretsmanager.BatchGetSecretValueOutput](t)(c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		SecretIdList: []string{aws.ToString(a.ARN), "batch/b", "missing", "batch/gone"},
	}))
	if len(out.SecretValues) != 2 || aws.ToString(out.SecretValues[0].SecretString) != "va" || aws.ToString(out.SecretValues[1].SecretString) != "vb" {
		t.Fatalf("SecretValues = %+v", out.SecretValues)
	}
	if len(out.Errors) != 2 ||
		aws.ToString(out.Errors[0].SecretId) != "missing" || aws.ToString(out.Errors[0].ErrorCode) != "ResourceNotFoundException" ||
		aws.ToString(out.Errors[1].SecretId) != "batch/gone" || aws.ToString(out.Errors[1].ErrorCode) != "InvalidRequestException" {
		t.Fatalf("Errors = %+v", out.Errors)
	}

	var got []string
	p := secretsmanager.NewBatchGetSecretValuePaginator(c, &secretsmanager.BatchGetSecretValueInput{
		Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"batch/"}}}, MaxResults: aws.Int32(2),
	})
	pages := 0
	for p.HasMorePages() {
		out := must[*secretsmanager.BatchGetSecretValueOutput](t)(p.NextPage(ctx))
		pages++
		for _, v := range out.SecretValues {
			got = append(got, aws.ToString(v.SecretString))
		}
	}
	if pages != 2 || !slices.Equal(got, []string{"va", "vb", "vc"}) {
		t.Fatalf("pages %d values %q", pages, got)
	}

	_, err := c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		SecretIdList: []string{"batch/a"}, Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"x"}}},
	})
	wantErr[*types.InvalidParameterException](t, err, "Either 'SecretIdList' or 'Filters' must be provided, but not both.")
	_, err = c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{})
	wantErr[*types.InvalidParameterException](t, err, "")
	_, err = c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: []string{"batch/a"}, MaxResults: aws.Int32(5)})
	wantErr[*types.InvalidParameterException](t, err, "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.")
	_, err = c.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{
		Filters: []types.Filter{{Key: types.FilterNameStringTypeName, Values: []string{"batch/"}}}, NextToken: aws.String("bogus"),
	})
	wantErr[*types.InvalidNextTokenException](t, err, "")
}

func TestListSecretVersionIds(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	out := create(t, c, "versions", "v1", func(in *secretsmanager.CreateSecretInput) { in.ClientRequestToken = aws.String(tokA) })
	must[*secretsmanager.PutSecretValueOutput](t)(c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("versions"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)}))

	// Asked by name, the answer carries the real ARN (moto answers the name).
	l := must[*secretsmanager.ListSecretVersionIdsOutput](t)(c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("versions")}))
	if aws.ToString(l.ARN) != aws.ToString(out.ARN) || aws.ToString(l.Name) != "versions" {
		t.Fatalf("ARN %q Name %q, want %q", aws.ToString(l.ARN), aws.ToString(l.Name), aws.ToString(out.ARN))
	}
	byID := map[string][]string{}
	for _, v := range l.Versions {
		byID[aws.ToString(v.VersionId)] = v.VersionStages
		if v.CreatedDate == nil || len(v.KmsKeyIds) != 1 {
			t.Fatalf("version entry = %+v", v)
		}
	}
	eqStages(t, byID, map[string][]string{tokA: {"AWSPREVIOUS"}, tokB: {"AWSCURRENT"}})

	var ids []string
	p := secretsmanager.NewListSecretVersionIdsPaginator(c, &secretsmanager.ListSecretVersionIdsInput{SecretId: out.ARN, MaxResults: aws.Int32(1)})
	for p.HasMorePages() {
		for _, v := range must[*secretsmanager.ListSecretVersionIdsOutput](t)(p.NextPage(ctx)).Versions {
			ids = append(ids, aws.ToString(v.VersionId))
		}
	}
	if !slices.Equal(ids, []string{tokA, tokB}) {
		t.Fatalf("paged ids = %q", ids)
	}
	_, err := c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("nope")})
	wantErr[*types.ResourceNotFoundException](t, err, "Secrets Manager can't find the specified secret.")
	_, err = c.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("versions"), NextToken: aws.String("bogus")})
	wantErr[*types.InvalidNextTokenException](t, err, "")
}

func TestGetRandomPassword(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	const punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	has := func(pw, set string) bool { return strings.ContainsAny(pw, set) }
	only := func(pw, set string) bool { return strings.Trim(pw, set) == "" }
	const lower, upper, digit = "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789"
	tests := []struct {
		name  string
		in    secretsmanager.GetRandomPasswordInput
		check func(pw string) bool
	}{
		{"defaults", secretsmanager.GetRandomPasswordInput{}, func(pw string) bool {
			return len(pw) == 32 && has(pw, lower) && has(pw, upper) && has(pw, digit) && has(pw, punct) && !has(pw, " ")
		}},
		{"length 4 has every type", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4)}, func(pw string) bool {
			return len(pw) == 4 && has(pw, lower) && has(pw, upper) && has(pw, digit) && has(pw, punct)
		}},
		{"no punctuation", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(200), ExcludePunctuation: aws.Bool(true)}, func(pw string) bool {
			return len(pw) == 200 && only(pw, lower+upper+digit)
		}},
		{"digits only", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(64), ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludePunctuation: aws.Bool(true)}, func(pw string) bool {
			return len(pw) == 64 && only(pw, digit)
		}},
		{"exclude characters", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(500), ExcludeCharacters: aws.String("aeiouAEIOU0@/\"'\\")}, func(pw string) bool {
			return len(pw) == 500 && !has(pw, "aeiouAEIOU0@/\"'\\")
		}},
		{"space", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4096), IncludeSpace: aws.Bool(true)}, func(pw string) bool {
			return len(pw) == 4096 && has(pw, " ")
		}},
		{"no required types", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(1), RequireEachIncludedType: aws.Bool(false)}, func(pw string) bool {
			return len(pw) == 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := must[*secretsmanager.GetRandomPasswordOutput](t)(c.GetRandomPassword(ctx, &tt.in))
			if pw := aws.ToString(out.RandomPassword); !tt.check(pw) {
				t.Fatalf("password %q does not fit", pw)
			}
		})
	}
	a := must[*secretsmanager.GetRandomPasswordOutput](t)(c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{}))
	b := must[*secretsmanager.GetRandomPasswordOutput](t)(c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{}))
	if aws.ToString(a.RandomPassword) == aws.ToString(b.RandomPassword) {
		t.Fatal("two passwords are equal")
	}

	for _, tt := range []struct {
		name string
		in   secretsmanager.GetRandomPasswordInput
		code string
	}{
		{"length 0", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(0)}, "ValidationException"},
		{"length 4097", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(4097)}, "ValidationException"},
		{"length 2 with four required types", secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(2)}, "InvalidParameterException"},
		{"everything excluded", secretsmanager.GetRandomPasswordInput{ExcludeLowercase: aws.Bool(true), ExcludeUppercase: aws.Bool(true), ExcludeNumbers: aws.Bool(true), ExcludePunctuation: aws.Bool(true)}, "InvalidParameterException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.GetRandomPassword(ctx, &tt.in)
			if tt.code == "InvalidParameterException" {
				wantErr[*types.InvalidParameterException](t, err, "")
				return
			}
			wantCode(t, err, tt.code)
		})
	}
	_, err := c.GetRandomPassword(ctx, &secretsmanager.GetRandomPasswordInput{PasswordLength: aws.Int64(2)})
	wantErr[*types.InvalidParameterException](t, err, "Password length is too short based on the required types.")
}

func TestAccountsAndRegionsAreSeparate(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, "")
	east := clientFor(ts, "us-east-1", "test")
	west := clientFor(ts, "eu-west-1", "test")
	acct := clientFor(ts, "us-east-1", "111111111111")
	out := create(t, east, "shared-name", "east")
	_, err := west.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("shared-name")})
	wantErr[*types.ResourceNotFoundException](t, err, "")
	_, err = acct.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: out.ARN})
	wantErr[*types.ResourceNotFoundException](t, err, "")
	w := create(t, west, "shared-name", "west")
	if m := arnRE.FindStringSubmatch(aws.ToString(w.ARN)); m == nil || m[1] != "eu-west-1" {
		t.Fatalf("ARN = %q", aws.ToString(w.ARN))
	}
	a := create(t, acct, "shared-name", "acct")
	if m := arnRE.FindStringSubmatch(aws.ToString(a.ARN)); m == nil || m[2] != "111111111111" {
		t.Fatalf("ARN = %q", aws.ToString(a.ARN))
	}
	for c, want := range map[*secretsmanager.Client]string{east: "east", west: "west", acct: "acct"} {
		if got := getString(t, c, "shared-name"); got != want {
			t.Errorf("value = %q, want %q", got, want)
		}
	}
}

func TestStatePersistsAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := clientFor(startServer(t, dir), region, "test")
	out := create(t, c, "persist/db", `{"username":"u","password":"p"}`, func(in *secretsmanager.CreateSecretInput) {
		in.ClientRequestToken = aws.String(tokA)
		in.Tags = []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}
		in.Description = aws.String("kept")
	})
	must[*secretsmanager.PutSecretValueOutput](t)(c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("persist/db"), SecretString: aws.String("v2"), ClientRequestToken: aws.String(tokB)}))
	must[*secretsmanager.CreateSecretOutput](t)(c.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("persist/bin"), SecretBinary: []byte{9, 8, 7}}))
	create(t, c, "persist/doomed", "x")
	must[*secretsmanager.DeleteSecretOutput](t)(c.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String("persist/doomed"), RecoveryWindowInDays: aws.Int64(7)}))
	before := stages(t, c, "persist/db")

	c2 := clientFor(startServer(t, dir), region, "test")
	if got := getString(t, c2, aws.ToString(out.ARN)); got != "v2" {
		t.Fatalf("restored value = %q", got)
	}
	prev := must[*secretsmanager.GetSecretValueOutput](t)(c2.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("persist/db"), VersionStage: aws.String("AWSPREVIOUS")}))
	if aws.ToString(prev.SecretString) != `{"username":"u","password":"p"}` || aws.ToString(prev.VersionId) != tokA {
		t.Fatalf("restored previous = %+v", prev)
	}
	eqStages(t, stages(t, c2, "persist/db"), before)
	d := must[*secretsmanager.DescribeSecretOutput](t)(c2.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("persist/db")}))
	if aws.ToString(d.Description) != "kept" || len(d.Tags) != 1 || aws.ToString(d.ARN) != aws.ToString(out.ARN) {
		t.Fatalf("restored describe = %+v", d)
	}
	bin := must[*secretsmanager.GetSecretValueOutput](t)(c2.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("persist/bin")}))
	if string(bin.SecretBinary) != string([]byte{9, 8, 7}) {
		t.Fatalf("restored binary = %v", bin.SecretBinary)
	}
	_, err := c2.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("persist/doomed")})
	wantErr[*types.InvalidRequestException](t, err, "You can't perform this operation on the secret because it was marked for deletion.")
}

func TestConcurrentClients(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	create(t, c, "hot", "v0")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				if _, err := c.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("hot"), SecretString: aws.String(fmt.Sprint(i, "-", j))}); err != nil {
					errs <- err
				}
				if _, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("hot")}); err != nil {
					errs <- err
				}
				if _, err := c.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}); err != nil {
					errs <- err
				}
				if _, err := c.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("hot")}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := stages(t, c, "hot")
	if len(st) != 2 {
		t.Fatalf("VersionIdsToStages = %v, want AWSCURRENT and AWSPREVIOUS", st)
	}
}

// TestWireFormat checks the JSON 1.1 bytes themselves: content type, epoch
// numbers, no nulls, and the error envelope.
func TestWireFormat(t *testing.T) {
	ts := startServer(t, "")
	post := func(op, body string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", "secretsmanager."+op)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("%s: body is not a JSON object: %v", op, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
			t.Fatalf("%s: Content-Type = %q", op, ct)
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
		return resp, m
	}

	// A raw request need not carry a ClientRequestToken: the VersionId is a UUID.
	resp, m := post("CreateSecret", `{"Name":"wire","SecretString":"s3cr3t"}`)
	if resp.StatusCode != http.StatusOK || !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(fmt.Sprint(m["VersionId"])) {
		t.Fatalf("CreateSecret: %d %v", resp.StatusCode, m)
	}
	_, m = post("GetSecretValue", `{"SecretId":"wire"}`)
	if _, ok := m["CreatedDate"].(float64); !ok || m["SecretString"] != "s3cr3t" {
		t.Fatalf("GetSecretValue = %v", m)
	}
	if _, ok := m["SecretBinary"]; ok {
		t.Fatal("GetSecretValue sends an absent SecretBinary")
	}
	post("DescribeSecret", `{"SecretId":"wire"}`)
	post("ListSecrets", `{}`)
	post("ListSecretVersionIds", `{"SecretId":"wire"}`)
	post("TagResource", `{"SecretId":"wire","Tags":[{"Key":"k","Value":"v"}]}`)

	resp, m = post("GetSecretValue", `{"SecretId":"nope"}`)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Amzn-ErrorType") != "ResourceNotFoundException" ||
		m["__type"] != "ResourceNotFoundException" || m["message"] != "Secrets Manager can't find the specified secret." {
		t.Fatalf("error: %d %v %v", resp.StatusCode, resp.Header, m)
	}
	resp, m = post("PutSecretValue", `{"SecretId":"wire","SecretBinary":"***not base64***"}`)
	if resp.StatusCode != http.StatusBadRequest || m["__type"] != "SerializationException" {
		t.Fatalf("bad base64: %d %v", resp.StatusCode, m)
	}
	resp, m = post("GetSecretValue", `{"SecretId":"wire","Bogus":1}`)
	if resp.StatusCode != http.StatusBadRequest || m["__type"] != "SerializationException" {
		t.Fatalf("unknown member: %d %v", resp.StatusCode, m)
	}
}
