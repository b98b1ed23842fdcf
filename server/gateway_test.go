package server

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rdslocal/rdslocal/api"
)

func newTestServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.DBBackend == "" {
		cfg.DBBackend = "none" // the gateway's tests need no database servers
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

type xmlError struct {
	Error struct {
		Type, Code, Message string
	}
	RequestID string `xml:"RequestId"`
}

const rdsScope = "AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=00"

func TestQueryProtocolErrors(t *testing.T) {
	ts := newTestServer(t, Config{})
	cases := []struct {
		name   string
		method string
		body   string
		query  string
		auth   string
		status int
		code   string
	}{
		{"unknown action", "POST", "Action=DescribeDBSnapshots&Version=2014-10-31", "", rdsScope, 400, "InvalidAction"},
		{"missing action", "POST", "Version=2014-10-31", "", rdsScope, 400, "MissingAction"},
		{"malformed form", "POST", "Action=DescribeDBProxies&Version=2014-10-31&x=%zz", "", rdsScope, 404, "MalformedQueryString"},
		{"unknown parameter", "POST", "Action=DescribeDBProxies&Version=2014-10-31&Bogus=1", "", rdsScope, 400, "InvalidParameterValue"},
		{"integer expected", "POST", "Action=CreateDBProxy&Version=2014-10-31&DBProxyName=p&EngineFamily=MYSQL&RoleArn=arn:aws:iam::000000000000:role/r&VpcSubnetIds.member.1=s&IdleClientTimeout=abc", "", rdsScope, 400, "InvalidParameterValue"},
		{"boolean expected", "POST", "Action=CreateDBProxy&Version=2014-10-31&DBProxyName=p&EngineFamily=MYSQL&RoleArn=arn:aws:iam::000000000000:role/r&VpcSubnetIds.member.1=s&RequireTLS=yes", "", rdsScope, 400, "InvalidParameterValue"},
		{"missing required", "POST", "Action=CreateDBProxy&Version=2014-10-31&DBProxyName=p&EngineFamily=MYSQL&VpcSubnetIds.member.1=s", "", rdsScope, 400, "MissingParameter"},
		{"missing nested required", "POST", "Action=DescribeDBInstances&Version=2014-10-31&Filters.Filter.1.Values.Value.1=x", "", rdsScope, 400, "MissingParameter"},
		{"bad enum", "POST", "Action=CreateDBProxy&Version=2014-10-31&DBProxyName=p&EngineFamily=DB2&RoleArn=arn:aws:iam::000000000000:role/r&VpcSubnetIds.member.1=s", "", rdsScope, 400, "InvalidParameterValue"},
		{"bad list index", "POST", "Action=DescribeDBProxyTargets&Version=2014-10-31&DBProxyName=p&Filters.Filter.x.Name=a", "", rdsScope, 400, "InvalidParameterValue"},
		{"GET query string", "GET", "", "Action=DescribeDBProxies&Version=2014-10-31&DBProxyName=nope", "", 404, "DBProxyNotFoundFault"},
		{"routed by version", "POST", "Action=DescribeDBProxies&Version=2014-10-31&DBProxyName=nope", "", "", 404, "DBProxyNotFoundFault"},
		{"routed by action", "POST", "Action=DescribeDBProxies&DBProxyName=nope", "", "", 404, "DBProxyNotFoundFault"},
		{"unserved service", "POST", "Action=ListBuckets", "", strings.Replace(rdsScope, "/rds/", "/s3/", 1), 400, "InvalidAction"},
		{"wrong content type", "POST", "Action=DescribeDBProxies", "", rdsScope, 400, "InvalidQueryParameter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+"/?"+tc.query, strings.NewReader(tc.body))
			ct := "application/x-www-form-urlencoded; charset=utf-8"
			if tc.name == "wrong content type" {
				ct = "text/plain"
			}
			req.Header.Set("Content-Type", ct)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var e xmlError
			if err := xml.Unmarshal(body, &e); err != nil {
				t.Fatalf("not an XML error: %v\n%s", err, body)
			}
			if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Error.Message == "" || e.RequestID == "" || e.Error.Type != "Sender" {
				t.Fatalf("got %d %+v, want %d %s\n%s", resp.StatusCode, e, tc.status, tc.code, body)
			}
			if resp.Header.Get("x-amzn-RequestId") != e.RequestID {
				t.Fatalf("request id header %q vs body %q", resp.Header.Get("x-amzn-RequestId"), e.RequestID)
			}
		})
	}
}

func TestJSONProtocolErrors(t *testing.T) {
	ts := newTestServer(t, Config{})
	cases := []struct {
		name, target, body string
		status             int
		code               string
	}{
		{"unknown target", "secretsmanager.FlyToTheMoon", "{}", 400, "UnknownOperationException"},
		{"unknown service prefix", "Nope_20170101.Op", "{}", 400, "UnknownOperationException"},
		{"invalid json", "secretsmanager.GetSecretValue", "{not json", 400, "SerializationException"},
		{"not an object", "secretsmanager.GetSecretValue", "[1,2]", 400, "SerializationException"},
		{"wrong type", "secretsmanager.GetSecretValue", `{"SecretId": 5}`, 400, "SerializationException"},
		{"unknown field", "secretsmanager.GetSecretValue", `{"SecretId": "x", "Bogus": 1}`, 400, "SerializationException"},
		{"missing required", "secretsmanager.GetSecretValue", `{}`, 400, "ValidationException"},
		{"out of range", "secretsmanager.GetRandomPassword", `{"PasswordLength": 5000}`, 400, "ValidationException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", ts.URL+"/", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			req.Header.Set("X-Amz-Target", tc.target)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			msg, ok := e["message"].(string)
			if resp.StatusCode != tc.status || e["__type"] != tc.code || !ok || msg == "" || resp.Header.Get("X-Amzn-ErrorType") != tc.code {
				t.Fatalf("got %d %v (%s)", resp.StatusCode, e, resp.Header.Get("X-Amzn-ErrorType"))
			}
		})
	}
	// The Coral-style message lists the violation.
	req, _ := http.NewRequest("POST", ts.URL+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "secretsmanager.GetSecretValue")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if e["message"] != "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null" {
		t.Fatalf("message %q", e["message"])
	}
}

func TestBodyLimit(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, json := range []bool{false, true} {
		big := strings.NewReader("Action=DescribeDBProxies&X=" + strings.Repeat("a", MaxBodyBytes))
		req, _ := http.NewRequest("POST", ts.URL+"/", big)
		if json {
			req.Header.Set("X-Amz-Target", "secretsmanager.ListSecrets")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "RequestEntityTooLarge") {
			t.Fatalf("json=%v: %d %s", json, resp.StatusCode, body)
		}
	}
	// The server still serves.
	resp, err := http.Get(ts.URL + "/_rdslocal/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health after 413: %v", err)
	}
	resp.Body.Close()
}

func TestPanicBecomesInternalFailure(t *testing.T) {
	s, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DBBackend: "none"})
	if err != nil {
		t.Fatal(err)
	}
	s.services["rds"].Handlers["DescribeDBProxies"] = func(*api.Call) (any, error) { panic("boom") }
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.PostForm(ts.URL+"/", url.Values{"Action": {"DescribeDBProxies"}, "Version": {"2014-10-31"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), "<Code>InternalFailure</Code>") || !strings.Contains(string(body), "<Type>Receiver</Type>") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, err = http.PostForm(ts.URL+"/", url.Values{"Action": {"DescribeDBInstances"}, "Version": {"2014-10-31"}})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("server stopped serving after a panic: %v", err)
	}
	resp.Body.Close()
}

func TestHealthAndReset(t *testing.T) {
	ts := newTestServer(t, Config{DataDir: t.TempDir()})
	for _, path := range []string{"/_rdslocal/health", "/_localstack/health"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var h struct{ Services map[string]string }
		_ = json.NewDecoder(resp.Body).Decode(&h)
		resp.Body.Close()
		if h.Services["rds"] != "running" || h.Services["secretsmanager"] != "running" {
			t.Fatalf("%s: %+v", path, h)
		}
	}
	form := url.Values{"Action": {"CreateDBInstance"}, "Version": {"2014-10-31"}, "DBInstanceIdentifier": {"db1"},
		"DBInstanceClass": {"db.t3.micro"}, "Engine": {"postgres"}, "MasterUsername": {"master"}, "MasterUserPassword": {"password1"}}
	resp, err := http.PostForm(ts.URL+"/", form)
	if err != nil || resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("create: %v %v %s", err, resp.Status, b)
	}
	resp.Body.Close()
	resp, err = http.Post(ts.URL+"/_rdslocal/reset", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reset: %v", err)
	}
	resp.Body.Close()
	resp, _ = http.PostForm(ts.URL+"/", url.Values{"Action": {"DescribeDBInstances"}, "Version": {"2014-10-31"}, "DBInstanceIdentifier": {"db1"}})
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("instance survived reset: %d", resp.StatusCode)
	}
}

func TestAccountAndRegionFromScope(t *testing.T) {
	ts := newTestServer(t, Config{})
	create := func(auth string) string {
		form := url.Values{"Action": {"CreateDBInstance"}, "Version": {"2014-10-31"}, "DBInstanceIdentifier": {"db1"},
			"DBInstanceClass": {"db.t3.micro"}, "Engine": {"postgres"}, "MasterUsername": {"master"}, "MasterUserPassword": {"password1"}}
		req, _ := http.NewRequest("POST", ts.URL+"/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Arn string `xml:"CreateDBInstanceResult>DBInstance>DBInstanceArn"`
		}
		body, _ := io.ReadAll(resp.Body)
		_ = xml.Unmarshal(body, &out)
		return out.Arn
	}
	if a := create(rdsScope); a != "arn:aws:rds:us-east-1:000000000000:db:db1" {
		t.Fatalf("default account: %s", a)
	}
	if a := create("AWS4-HMAC-SHA256 Credential=123456789012/20261125/eu-west-1/rds/aws4_request, SignedHeaders=host, Signature=00"); a != "arn:aws:rds:eu-west-1:123456789012:db:db1" {
		t.Fatalf("12-digit key account and region: %s", a)
	}
}
