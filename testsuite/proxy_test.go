package testsuite_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	rdsauth "github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/testsuite"
)

// TestProxyEndToEnd is what an application written for RDS Proxy does:
// everything is created through the AWS API, then pgx connects to the
// proxy's Endpoint on 5432 over verify-full TLS, with the secret's password
// and with an IAM token.
func TestProxyEndToEnd(t *testing.T) {
	emu := testsuite.Start(t)
	ctx := context.Background()
	rc := rds.NewFromConfig(emu.AWSConfig)
	sm := secretsmanager.NewFromConfig(emu.AWSConfig)

	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("app-creds"),
		SecretString: aws.String(`{"username":"app","password":"app-password-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("pgdb"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("app"), MasterUserPassword: aws.String("app-password-1"), DBName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, rc, "pgdb")
	p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String("app-proxy"), EngineFamily: types.EngineFamilyPostgresql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/proxy"), VpcSubnetIds: []string{"subnet-1"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled}}})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := *p.DBProxy.Endpoint
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("app-proxy"), DBInstanceIdentifiers: []string{"pgdb"}}); err != nil {
		t.Fatal(err)
	}
	d, err := rc.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String("app-proxy")})
	if err != nil || d.DBProxies[0].Status != types.DBProxyStatusAvailable {
		t.Fatalf("proxy status: %v %+v", err, d)
	}

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	resp, err := http.Get(emu.URL + "/_rdslocal/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := os.WriteFile(caFile, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	connect := func(password string) (*pgx.Conn, error) {
		return pgx.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=app dbname=app sslmode=verify-full sslrootcert=%s password='%s' connect_timeout=10",
			endpoint, caFile, strings.ReplaceAll(password, "'", `\'`)))
	}
	conn, err := connect("app-password-1")
	if err != nil {
		t.Fatalf("connect through the proxy with the secret's password: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 40 + 2").Scan(&n); err != nil || n != 42 {
		t.Fatalf("query through the proxy: %d %v", n, err)
	}
	if _, err := connect("wrong-password"); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Fatalf("wrong password: %v", err)
	}
	// conn stays open across the ModifyDBProxy below: settings apply to new
	// sessions without dropping existing ones.
	defer conn.Close(ctx)

	// IAM authentication: the proxy now requires a token.
	if _, err := rc.ModifyDBProxy(ctx, &rds.ModifyDBProxyInput{DBProxyName: aws.String("app-proxy"), RequireTLS: aws.Bool(true),
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeRequired}}}); err != nil {
		t.Fatal(err)
	}
	token, err := rdsauth.BuildAuthToken(ctx, net.JoinHostPort(endpoint, "5432"), "us-east-1", "app", credentials.NewStaticCredentialsProvider("test", "test", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("the session opened before ModifyDBProxy: %d %v", n, err)
	}
	iamConn, err := connect(token)
	if err != nil {
		t.Fatalf("connect with an IAM token: %v", err)
	}
	if err := iamConn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	iamConn.Close(ctx)
	if _, err := connect("app-password-1"); err == nil {
		t.Fatal("a password was accepted where IAM authentication is required")
	}

	mresp, err := http.Get(emu.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(metrics), "ClientConnectionsSetupSucceeded") || !strings.Contains(string(metrics), `proxy="app-proxy"`) {
		t.Fatalf("metrics:\n%s", metrics)
	}

	if _, err := rc.DeleteDBProxy(ctx, &rds.DeleteDBProxyInput{DBProxyName: aws.String("app-proxy")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(endpoint, "5432"), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the proxy still listens after DeleteDBProxy")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err == nil {
		t.Fatal("a session survived DeleteDBProxy")
	}
}
