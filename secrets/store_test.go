package secrets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/rdslocal/rdslocal/api"
	"github.com/rdslocal/rdslocal/secrets"
)

// invoke runs one action on the store's service as the gateway does:
// validated against the model, then handed to the handler.
func invoke(t *testing.T, svc *api.Service, acct, reg, action string, input any) (map[string]any, error) {
	t.Helper()
	body, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	in, err := svc.Model.DecodeJSON(action, body)
	if err != nil {
		return nil, err
	}
	c := api.NewCall(context.Background(), in)
	c.Service, c.Action, c.Account, c.Region = "secretsmanager", action, acct, reg
	out, err := svc.Handlers[action](c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
	}
	return m, nil
}

func mustInvoke(t *testing.T, svc *api.Service, action string, input any) map[string]any {
	t.Helper()
	m, err := invoke(t, svc, account, region, action, input)
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
	return m
}

func apiCode(err error) string {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	st := secrets.New()
	svc := st.Service()
	db := mustInvoke(t, svc, "CreateSecret", map[string]any{
		"Name": "rt/db", "SecretString": `{"username":"u","password":"p1"}`, "ClientRequestToken": tokA,
		"Tags": []map[string]string{{"Key": "k", "Value": "v"}}, "Description": "d",
	})
	mustInvoke(t, svc, "PutSecretValue", map[string]any{"SecretId": "rt/db", "SecretString": `{"username":"u","password":"p2"}`, "ClientRequestToken": tokB})
	mustInvoke(t, svc, "CreateSecret", map[string]any{"Name": "rt/bin", "SecretBinary": []byte{1, 2, 3}})
	mustInvoke(t, svc, "CreateSecret", map[string]any{"Name": "rt/del", "SecretString": "x"})
	mustInvoke(t, svc, "DeleteSecret", map[string]any{"SecretId": "rt/del"})
	if _, err := invoke(t, svc, "222222222222", "ap-south-1", "CreateSecret", map[string]any{"Name": "elsewhere", "SecretString": "far"}); err != nil {
		t.Fatal(err)
	}

	snap, err := st.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(snap, []byte("p2")) {
		t.Fatal("snapshot lacks the secret values")
	}

	restored := secrets.New()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, err := restored.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, again) {
		t.Fatalf("snapshot after restore differs:\n%s\n%s", snap, again)
	}

	arn := db["ARN"].(string)
	for _, st := range []*secrets.Store{st, restored} {
		v, err := st.CurrentValue(account, region, arn)
		if err != nil || v != `{"username":"u","password":"p2"}` {
			t.Fatalf("CurrentValue = %q, %v", v, err)
		}
		if v, err := st.CurrentValue("222222222222", "ap-south-1", "elsewhere"); err != nil || v != "far" {
			t.Fatalf("CurrentValue in another account = %q, %v", v, err)
		}
	}
	rsvc := restored.Service()
	got := mustInvoke(t, rsvc, "GetSecretValue", map[string]any{"SecretId": "rt/db", "VersionStage": "AWSPREVIOUS"})
	if got["SecretString"] != `{"username":"u","password":"p1"}` || got["VersionId"] != tokA {
		t.Fatalf("restored AWSPREVIOUS = %v", got)
	}
	got = mustInvoke(t, rsvc, "GetSecretValue", map[string]any{"SecretId": "rt/bin"})
	if got["SecretBinary"] != "AQID" { // base64 of 1 2 3
		t.Fatalf("restored binary = %v", got["SecretBinary"])
	}
	if _, err := invoke(t, rsvc, account, region, "GetSecretValue", map[string]any{"SecretId": "rt/del"}); apiCode(err) != "InvalidRequestException" {
		t.Fatalf("restored deleted secret: %v", err)
	}

	// Restore replaces, Reset clears.
	if err := restored.Restore([]byte(`{"version":1,"regions":[]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := restored.CurrentValue(account, region, arn); apiCode(err) != "ResourceNotFoundException" {
		t.Fatalf("after Restore of an empty snapshot: %v", err)
	}
	st.Reset()
	if _, err := st.CurrentValue(account, region, arn); apiCode(err) != "ResourceNotFoundException" {
		t.Fatalf("after Reset: %v", err)
	}
	for _, bad := range []string{`not json`, `{"version":99}`, `{"version":1,"regions":[{"account":"1","region":"r","secrets":[{"name":"x"}]}]}`} {
		if err := restored.Restore([]byte(bad)); err == nil {
			t.Errorf("Restore(%s) succeeded", bad)
		}
	}
}

func TestCurrentValue(t *testing.T) {
	st := secrets.New()
	svc := st.Service()
	out := mustInvoke(t, svc, "CreateSecret", map[string]any{"Name": "proxy/user", "SecretString": `{"username":"app","password":"one"}`})
	arn := out["ARN"].(string)

	// A full ARN names its own account and region.
	for _, c := range []struct{ acct, reg, id string }{
		{"", "", arn},
		{account, region, arn},
		{account, region, "proxy/user"},
		{account, region, arn[:len(arn)-7]},
	} {
		v, err := st.CurrentValue(c.acct, c.reg, c.id)
		if err != nil || v != `{"username":"app","password":"one"}` {
			t.Fatalf("CurrentValue(%q, %q, %q) = %q, %v", c.acct, c.reg, c.id, v, err)
		}
	}
	// A changed secret is seen on the next read.
	mustInvoke(t, svc, "PutSecretValue", map[string]any{"SecretId": arn, "SecretString": `{"username":"app","password":"two"}`})
	v, err := st.CurrentValue(account, region, arn)
	if err != nil {
		t.Fatal(err)
	}
	if u, p, err := secrets.ParseCredentials(v); err != nil || u != "app" || p != "two" {
		t.Fatalf("ParseCredentials = %q %q %v", u, p, err)
	}
	d := mustInvoke(t, svc, "DescribeSecret", map[string]any{"SecretId": arn})
	if d["LastAccessedDate"] == nil {
		t.Fatal("CurrentValue does not record the access")
	}

	mustInvoke(t, svc, "CreateSecret", map[string]any{"Name": "proxy/bin", "SecretBinary": []byte("x")})
	mustInvoke(t, svc, "CreateSecret", map[string]any{"Name": "proxy/none"})
	for _, c := range []struct{ id, code string }{
		{"missing", "ResourceNotFoundException"},
		{"proxy/bin", "InvalidRequestException"},
		{"proxy/none", "ResourceNotFoundException"},
		{"arn:aws:secretsmanager:eu-west-1:000000000000:secret:proxy/user", "ResourceNotFoundException"},
	} {
		if _, err := st.CurrentValue(account, region, c.id); apiCode(err) != c.code {
			t.Errorf("CurrentValue(%q) error = %v, want %s", c.id, err, c.code)
		}
	}
	mustInvoke(t, svc, "DeleteSecret", map[string]any{"SecretId": arn})
	if _, err := st.CurrentValue(account, region, arn); apiCode(err) != "InvalidRequestException" {
		t.Fatalf("CurrentValue of a deleted secret: %v", err)
	}
	mustInvoke(t, svc, "DeleteSecret", map[string]any{"SecretId": arn, "ForceDeleteWithoutRecovery": true})
	if _, err := st.CurrentValue(account, region, arn); apiCode(err) != "ResourceNotFoundException" {
		t.Fatalf("CurrentValue of a purged secret: %v", err)
	}
}

func TestParseCredentials(t *testing.T) {
	tests := []struct {
		in         string
		user, pass string
		ok         bool
	}{
		{`{"username":"db_user","password":"db_user_password"}`, "db_user", "db_user_password", true},
		{`{"engine":"postgres","host":"h","port":5432,"dbname":"d","username":"u","password":"p:w\"x"}`, "u", `p:w"x`, true},
		{`{"username":"u"}`, "", "", false},
		{`{"password":"p"}`, "", "", false},
		{`{"username":"","password":"p"}`, "", "", false},
		{`{"username":"u","password":5}`, "", "", false},
		{`["u","p"]`, "", "", false},
		{`plain text`, "", "", false},
		{``, "", "", false},
	}
	for _, tt := range tests {
		u, p, err := secrets.ParseCredentials(tt.in)
		if (err == nil) != tt.ok || u != tt.user || p != tt.pass {
			t.Errorf("ParseCredentials(%s) = %q, %q, %v", tt.in, u, p, err)
		}
	}
}

func TestStoreIsConcurrencySafe(t *testing.T) {
	st := secrets.New()
	svc := st.Service()
	out := mustInvoke(t, svc, "CreateSecret", map[string]any{"Name": "race", "SecretString": `{"username":"u","password":"p"}`})
	arn := out["ARN"].(string)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				switch i % 4 {
				case 0:
					_, _ = invoke(t, svc, account, region, "PutSecretValue", map[string]any{"SecretId": "race", "SecretString": `{"username":"u","password":"q"}`})
				case 1:
					_, _ = st.CurrentValue(account, region, arn)
				case 2:
					_, _ = st.Snapshot()
				case 3:
					_, _ = invoke(t, svc, account, region, "ListSecretVersionIds", map[string]any{"SecretId": "race", "IncludeDeprecated": true})
				}
			}
		})
	}
	wg.Wait()
}

// TestRecoveryWindowEnds checks that a secret whose recovery window has
// passed is gone: restored from a snapshot whose deletion date is past.
func TestRecoveryWindowEnds(t *testing.T) {
	st := secrets.New()
	snap := `{"version":1,"regions":[{"account":"000000000000","region":"us-east-1","secrets":[
	 {"arn":"arn:aws:secretsmanager:us-east-1:000000000000:secret:old-abcdef","name":"old","created":"2020-01-01T00:00:00Z","lastChanged":"2020-01-01T00:00:00Z",
	  "versions":[{"id":"` + tokA + `","string":"v","stages":["AWSCURRENT"],"created":"2020-01-01T00:00:00Z"}],
	  "deletedAt":"2020-01-01T00:00:00Z","deletionDate":"2020-01-31T00:00:00Z"},
	 {"arn":"arn:aws:secretsmanager:us-east-1:000000000000:secret:live-abcdef","name":"live","created":"2020-01-01T00:00:00Z","lastChanged":"2020-01-01T00:00:00Z",
	  "versions":[{"id":"` + tokB + `","string":"w","stages":["AWSCURRENT"],"created":"2020-01-01T00:00:00Z"}]}]}]}`
	if err := st.Restore([]byte(snap)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CurrentValue(account, region, "old"); apiCode(err) != "ResourceNotFoundException" {
		t.Fatalf("expired secret: %v", err)
	}
	if v, err := st.CurrentValue(account, region, "arn:aws:secretsmanager:us-east-1:000000000000:secret:live-abcdef"); err != nil || v != "w" {
		t.Fatalf("live secret = %q, %v", v, err)
	}
	list := mustInvoke(t, st.Service(), "ListSecrets", map[string]any{"IncludePlannedDeletion": true})
	if n := len(list["SecretList"].([]any)); n != 1 {
		t.Fatalf("ListSecrets = %d secrets, want 1", n)
	}
	// The name is free again.
	mustInvoke(t, st.Service(), "CreateSecret", map[string]any{"Name": "old", "SecretString": "new"})
}
