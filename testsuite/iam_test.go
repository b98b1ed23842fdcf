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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	rdsauth "github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/testsuite"
)

// TestEnforceIAMThroughProxy logs in through a proxy with IAM tokens of an
// IAM user under --enforce-iam: refused until a policy allows
// rds-db:connect on the proxy's dbuser resource, refused again by a Deny.
func TestEnforceIAMThroughProxy(t *testing.T) {
	emu := testsuite.Start(t, testsuite.WithEnforceIAM())
	ctx := context.Background()
	rc, sm, ic := rds.NewFromConfig(emu.AWSConfig), secretsmanager.NewFromConfig(emu.AWSConfig), iam.NewFromConfig(emu.AWSConfig)

	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("proxy-role"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rds.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)}); err != nil {
		t.Fatal(err)
	}
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("iam-creds"), SecretString: aws.String(`{"username":"app","password":"app-password-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("iamdb"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("app"), MasterUserPassword: aws.String("app-password-1"), DBName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, rc, "iamdb")
	proxyIn := &rds.CreateDBProxyInput{DBProxyName: aws.String("iam-proxy"), EngineFamily: types.EngineFamilyPostgresql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/missing-role"), VpcSubnetIds: []string{"subnet-1"}, RequireTLS: aws.Bool(true),
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeRequired}}}
	if _, err := rc.CreateDBProxy(ctx, proxyIn); err == nil {
		t.Fatal("--enforce-iam accepted a proxy whose role does not exist")
	}
	proxyIn.RoleArn = aws.String("arn:aws:iam::000000000000:role/proxy-role")
	p, err := rc.CreateDBProxy(ctx, proxyIn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("iam-proxy"), DBInstanceIdentifiers: []string{"iamdb"}}); err != nil {
		t.Fatal(err)
	}
	proxyID := (*p.DBProxy.DBProxyArn)[strings.LastIndex(*p.DBProxy.DBProxyArn, ":")+1:]

	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("alice")}); err != nil {
		t.Fatal(err)
	}
	key, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewStaticCredentialsProvider(*key.AccessKey.AccessKeyId, *key.AccessKey.SecretAccessKey, "")

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	resp, err := http.Get(emu.URL + "/_rdslocal/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_ = os.WriteFile(caFile, pem, 0o644)
	login := func() error {
		addr := net.JoinHostPort(*p.DBProxy.Endpoint, "5432")
		token, err := rdsauth.BuildAuthToken(ctx, addr, "us-east-1", "app", creds)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=5432 user=app dbname=app sslmode=verify-full sslrootcert=%s password='%s' connect_timeout=10",
			*p.DBProxy.Endpoint, caFile, token))
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	}
	if err := login(); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Fatalf("login without a policy: %v", err)
	}
	resource := fmt.Sprintf("arn:aws:rds-db:us-east-1:000000000000:dbuser:%s/app", proxyID)
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("connect"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"` + resource + `"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := login(); err != nil {
		t.Fatalf("login allowed by an inline policy: %v", err)
	}
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("deny"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"rds-db:*","Resource":"arn:aws:rds-db:*:*:dbuser:*/*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if err := login(); err == nil {
		t.Fatal("an explicit Deny did not win")
	}
}
