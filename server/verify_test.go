package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
)

// TestVerifySignatures runs real SDK and CLI calls against a server that
// recomputes every signature: good ones pass, tampered ones get the AWS
// error of their protocol.
func TestVerifySignatures(t *testing.T) {
	ts := newTestServer(t, Config{VerifySignatures: true})
	cfg := func(key, secret string) aws.Config {
		return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(ts.URL), RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(key, secret, "")}
	}
	ctx := context.Background()
	cases := []struct {
		name, key, secret string
		rdsCode, jsonCode string
	}{
		{"valid test/test", "test", "test", "", ""},
		{"wrong secret", "test", "not-the-secret", "SignatureDoesNotMatch", "InvalidSignatureException"},
		{"unknown key", "AKIAUNKNOWNKEY000000", "whatever", "InvalidClientTokenId", "UnrecognizedClientException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rds.NewFromConfig(cfg(tc.key, tc.secret)).DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{})
			checkCode(t, err, tc.rdsCode)
			_, err = secretsmanager.NewFromConfig(cfg(tc.key, tc.secret)).ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
			checkCode(t, err, tc.jsonCode)
		})
	}
	// An unsigned request.
	resp, err := http.Post(ts.URL+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeDBProxies&Version=2014-10-31"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned request: %d", resp.StatusCode)
	}
	// The AWS CLI signs differently from the Go SDK; it must pass too.
	if _, err := exec.LookPath("aws"); err == nil {
		cmd := exec.Command("aws", "--endpoint-url", ts.URL, "--region", "us-east-1", "rds", "describe-db-proxies")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aws cli: %v\n%s", err, out)
		}
		cmd = exec.Command("aws", "--endpoint-url", ts.URL, "--region", "us-east-1", "secretsmanager", "list-secrets")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=wrong", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
		if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "InvalidSignatureException") {
			t.Fatalf("aws cli with a wrong secret: %v\n%s", err, out)
		}
	}
}

func checkCode(t *testing.T, err error, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("want success, got %v", err)
		}
		return
	}
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}
