package testsuite_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	rdsauth "github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/go-sql-driver/mysql"
	"github.com/rdslocal/rdslocal/testsuite"
)

// mysqlTLSSeq names the TLS configurations registered with go-sql-driver.
var mysqlTLSSeq atomic.Int64

// mysqlProxyAddr is host:port of a MySQL proxy Endpoint (a bare address
// listens on 3306).
func mysqlProxyAddr(endpoint string) string {
	if _, _, err := net.SplitHostPort(endpoint); err == nil {
		return endpoint
	}
	return net.JoinHostPort(endpoint, "3306")
}

// mysqlTLS registers a go-sql-driver TLS configuration that verifies the
// proxy's certificate against the local CA for the endpoint's host, and
// returns its name (tls=<name> in a DSN).
func mysqlTLS(t *testing.T, caPath, addr string) string {
	t.Helper()
	pem, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the CA file")
	}
	host, _, _ := net.SplitHostPort(addr)
	name := fmt.Sprintf("rdslocal-%d", mysqlTLSSeq.Add(1))
	if err := mysql.RegisterTLSConfig(name, &tls.Config{RootCAs: pool, ServerName: host}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mysql.DeregisterTLSConfig(name) })
	return name
}

// mysqlOpen opens one connection through a MySQL proxy and pings it.
func mysqlOpen(t *testing.T, addr, user, password, db, params string) (*sql.DB, error) {
	t.Helper()
	dsn := fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=10s", user, password, addr, db)
	if params != "" {
		dsn += "&" + params
	}
	c, err := sql.Open("mysql", dsn)
	if err != nil {
		return nil, err
	}
	c.SetMaxOpenConns(1)
	if err := c.PingContext(context.Background()); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// mysqlErr is the server error in err's chain, or nil.
func mysqlErr(err error) *mysql.MySQLError {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

// waitTargetsAvailable waits until every RDS_INSTANCE target of a proxy
// is AVAILABLE (its health probe logged in).
func waitTargetsAvailable(t *testing.T, rc *rds.Client, proxy string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := rc.DescribeDBProxyTargets(context.Background(), &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String(proxy)})
		if err != nil {
			t.Fatal(err)
		}
		why := ""
		for _, tg := range out.Targets {
			if tg.Type != types.TargetTypeRdsInstance {
				continue
			}
			if th := tg.TargetHealth; th == nil || th.State != types.TargetStateAvailable {
				why = fmt.Sprintf("target %s: %+v", aws.ToString(tg.RdsResourceId), th)
			}
		}
		if len(out.Targets) == 0 {
			why = "no targets"
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// endpointStatuses are the proxy's status and those of its endpoints.
func endpointStatuses(t *testing.T, rc *rds.Client, proxy string) []string {
	t.Helper()
	ctx := context.Background()
	d, err := rc.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String(proxy)})
	if err != nil {
		t.Fatal(err)
	}
	out := []string{string(d.DBProxies[0].Status)}
	e, err := rc.DescribeDBProxyEndpoints(ctx, &rds.DescribeDBProxyEndpointsInput{DBProxyName: aws.String(proxy)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range e.DBProxyEndpoints {
		out = append(out, string(ep.Status))
	}
	return out
}

// TestMySQLProxyEndToEnd is what an application written for RDS Proxy for
// MySQL does: a MariaDB instance, a secret and a MYSQL proxy are created
// through the AWS API, then go-sql-driver/mysql (text and binary
// protocol) and the mariadb CLI connect to the proxy's Endpoint on 3306
// over verified TLS, with the secret's password and with an IAM token;
// the refusals are MySQL's and RDS's; the proxy listens again after a
// restart on the same data directory, and stops listening when deleted.
func TestMySQLProxyEndToEnd(t *testing.T) {
	dataDir := searchableTempDir(t)
	emu := testsuite.Start(t, testsuite.WithDataDir(dataDir))
	ctx := context.Background()
	rc := rds.NewFromConfig(emu.AWSConfig)
	sm := secretsmanager.NewFromConfig(emu.AWSConfig)

	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("shop-creds"),
		SecretString: aws.String(`{"username":"shop","password":"shop-password-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("shopdb"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("mariadb"), MasterUsername: aws.String("shop"), MasterUserPassword: aws.String("shop-password-1"), DBName: aws.String("shop")}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, rc, "shopdb")
	p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String("shop-proxy"), EngineFamily: types.EngineFamilyMysql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/proxy"), VpcSubnetIds: []string{"subnet-1"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("shop-proxy"), DBInstanceIdentifiers: []string{"shopdb"}}); err != nil {
		t.Fatal(err)
	}
	addr := mysqlProxyAddr(*p.DBProxy.Endpoint)
	if st := endpointStatuses(t, rc, "shop-proxy"); strings.Join(st, ",") != "available,available" {
		t.Fatalf("proxy and endpoint statuses %v, want available (listening)", st)
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
		t.Fatalf("the proxy is available but %s does not accept connections: %v", addr, err)
	} else {
		c.Close()
	}
	waitTargetsAvailable(t, rc, "shop-proxy")

	ca := caFile(t, emu.URL)
	tlsName := mysqlTLS(t, ca, addr)
	for _, params := range []string{"", "interpolateParams=true"} {
		t.Run("password/params="+params, func(t *testing.T) {
			db, err := mysqlOpen(t, addr, "shop", "shop-password-1", "shop", "tls="+tlsName+"&"+params)
			if err != nil {
				t.Fatalf("connect through the proxy with the secret's password over verified TLS: %v", err)
			}
			var n int
			if err := db.QueryRow("SELECT 40 + ?", 2).Scan(&n); err != nil || n != 42 {
				t.Fatalf("query through the proxy: %d %v", n, err)
			}
			var user string
			if err := db.QueryRow("SELECT CURRENT_USER()").Scan(&user); err != nil || user != "shop@%" {
				t.Fatalf("CURRENT_USER() %q %v", user, err)
			}
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("CREATE TABLE IF NOT EXISTS kv (k INT PRIMARY KEY, v VARCHAR(20))"); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec("REPLACE INTO kv VALUES (?, ?)", 1, "one"); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			var v string
			if err := db.QueryRow("SELECT v FROM kv WHERE k = ?", 1).Scan(&v); err != nil || v != "one" {
				t.Fatalf("read back: %q %v", v, err)
			}
		})
	}
	_, err = mysqlOpen(t, addr, "shop", "wrong-password", "shop", "tls="+tlsName)
	if me := mysqlErr(err); me == nil || me.Number != 1045 || string(me.SQLState[:]) != "28000" || !strings.HasPrefix(me.Message, "Access denied for user 'shop'") {
		t.Fatalf("wrong password: %v, want ERROR 1045 (28000): Access denied for user 'shop'…", err)
	}

	t.Run("mariadb CLI", func(t *testing.T) {
		cli, err := exec.LookPath("mariadb")
		if err != nil {
			t.Skip("the mariadb client is not installed (make deps installs it): " + err.Error())
		}
		host, port, _ := net.SplitHostPort(addr)
		out, err := exec.Command(cli, "--host="+host, "--port="+port, "--user=shop", "--password=shop-password-1",
			"--ssl-verify-server-cert", "--ssl-ca="+ca, "--batch", "--skip-column-names", "shop",
			"-e", "SELECT CONCAT(CURRENT_USER(), ' ', v) FROM kv WHERE k = 1").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "shop@% one" {
			t.Fatalf("mariadb CLI through the proxy: %v\n%s", err, out)
		}
	})

	mresp, err := http.Get(emu.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(metrics), `rdslocal_ClientConnectionsSetupSucceeded{proxy="shop-proxy",endpoint="default"}`) ||
		!strings.Contains(string(metrics), `rdslocal_DatabaseConnectionsSetupSucceeded{proxy="shop-proxy",target="shopdb"}`) {
		t.Fatalf("no MySQL proxy series in the metrics:\n%s", metrics)
	}

	// RequireTLS and IAM authentication.
	if _, err := rc.ModifyDBProxy(ctx, &rds.ModifyDBProxyInput{DBProxyName: aws.String("shop-proxy"), RequireTLS: aws.Bool(true),
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeRequired}}}); err != nil {
		t.Fatal(err)
	}
	iamLogin := func(t *testing.T, addr, tlsName string) {
		t.Helper()
		token, err := rdsauth.BuildAuthToken(ctx, addr, "us-east-1", "shop", credentials.NewStaticCredentialsProvider("test", "test", ""))
		if err != nil {
			t.Fatal(err)
		}
		db, err := mysqlOpen(t, addr, "shop", token, "shop", "tls="+tlsName+"&allowCleartextPasswords=true")
		if err != nil {
			t.Fatalf("connect with an IAM token over verified TLS: %v", err)
		}
		var user string
		if err := db.QueryRow("SELECT CURRENT_USER()").Scan(&user); err != nil || user != "shop@%" {
			t.Fatalf("CURRENT_USER() %q %v", user, err)
		}
	}
	iamLogin(t, addr, tlsName)
	_, err = mysqlOpen(t, addr, "shop", "shop-password-1", "shop", "tls=false")
	if me := mysqlErr(err); me == nil || me.Number != 3159 || me.Message != "This RDS Proxy requires TLS connections." {
		t.Fatalf("plaintext under RequireTLS: %v, want ERROR 3159 (HY000): This RDS Proxy requires TLS connections.", err)
	}
	_, err = mysqlOpen(t, addr, "shop", "shop-password-1", "shop", "tls="+tlsName+"&allowCleartextPasswords=true")
	if me := mysqlErr(err); me == nil || me.Number != 1045 {
		t.Fatalf("a password where IAM authentication is required: %v, want ERROR 1045", err)
	}

	// A restart on the same data directory: the proxy listens again.
	emu.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the proxy still listens after the server stopped")
	}
	emu = testsuite.Start(t, testsuite.WithDataDir(dataDir))
	rc = rds.NewFromConfig(emu.AWSConfig)
	waitReady(t, emu)
	if st := endpointStatuses(t, rc, "shop-proxy"); strings.Join(st, ",") != "available,available" {
		t.Fatalf("after the restart: proxy and endpoint statuses %v", st)
	}
	waitTargetsAvailable(t, rc, "shop-proxy")
	iamLogin(t, addr, mysqlTLS(t, caFile(t, emu.URL), addr))

	if _, err := rc.DeleteDBProxy(ctx, &rds.DeleteDBProxyInput{DBProxyName: aws.String("shop-proxy")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the proxy still listens after DeleteDBProxy")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMySQLProxyAuroraCluster puts a MYSQL proxy in front of an Aurora
// MySQL cluster under --enforce-iam: IAM tokens of an IAM user log in over
// verified TLS once a policy allows rds-db:connect, the default endpoint
// reaches the writer and a READ_ONLY endpoint the reader; a proxy whose
// secret holds a wrong password reports its targets UNAVAILABLE with
// AUTH_FAILURE.
func TestMySQLProxyAuroraCluster(t *testing.T) {
	emu := testsuite.Start(t, testsuite.WithEnforceIAM())
	ctx := context.Background()
	rc, sm, ic := rds.NewFromConfig(emu.AWSConfig), secretsmanager.NewFromConfig(emu.AWSConfig), iam.NewFromConfig(emu.AWSConfig)

	if _, err := ic.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("proxy-role"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"rds.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)}); err != nil {
		t.Fatal(err)
	}
	const pw = "cluster-password-1"
	if _, err := rc.CreateDBCluster(ctx, &rds.CreateDBClusterInput{DBClusterIdentifier: aws.String("shopcl"), Engine: aws.String("aurora-mysql"),
		MasterUsername: aws.String("master"), MasterUserPassword: aws.String(pw), DatabaseName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"shopcl-1", "shopcl-2"} {
		if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.r6g.large"),
			Engine: aws.String("aurora-mysql"), DBClusterIdentifier: aws.String("shopcl")}); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, rc, id)
	}
	newProxy := func(name, secret string) *types.DBProxy {
		t.Helper()
		sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name + "-creds"), SecretString: aws.String(secret)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String(name), EngineFamily: types.EngineFamilyMysql,
			RoleArn: aws.String("arn:aws:iam::000000000000:role/proxy-role"), VpcSubnetIds: []string{"subnet-1"}, RequireTLS: aws.Bool(true),
			Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeRequired}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String(name), DBClusterIdentifiers: []string{"shopcl"}}); err != nil {
			t.Fatal(err)
		}
		return p.DBProxy
	}
	p := newProxy("shopcl-proxy", `{"username":"master","password":"`+pw+`"}`)
	ro, err := rc.CreateDBProxyEndpoint(ctx, &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String("shopcl-proxy"),
		DBProxyEndpointName: aws.String("shopcl-ro"), VpcSubnetIds: []string{"subnet-1"}, TargetRole: types.DBProxyEndpointTargetRoleReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	newProxy("bad-proxy", `{"username":"master","password":"not-the-password"}`)
	deadline := time.Now().Add(time.Minute)
	for {
		st := endpointStatuses(t, rc, "shopcl-proxy")
		if strings.Join(st, ",") == "available,available,available" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy and endpoint statuses %v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitTargetsAvailable(t, rc, "shopcl-proxy")
	proxyID := (*p.DBProxyArn)[strings.LastIndex(*p.DBProxyArn, ":")+1:]

	if _, err := ic.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("alice")}); err != nil {
		t.Fatal(err)
	}
	key, err := ic.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewStaticCredentialsProvider(*key.AccessKey.AccessKeyId, *key.AccessKey.SecretAccessKey, "")
	ca := caFile(t, emu.URL)
	// readOnly logs in through an endpoint with alice's token and reports
	// @@read_only of the server it reached.
	readOnly := func(endpoint string) (int, error) {
		addr := mysqlProxyAddr(endpoint)
		token, err := rdsauth.BuildAuthToken(ctx, addr, "us-east-1", "master", creds)
		if err != nil {
			t.Fatal(err)
		}
		db, err := mysqlOpen(t, addr, "master", token, "app", "tls="+mysqlTLS(t, ca, addr)+"&allowCleartextPasswords=true")
		if err != nil {
			return 0, err
		}
		var n int
		err = db.QueryRow("SELECT @@read_only").Scan(&n)
		return n, err
	}
	if _, err := readOnly(*p.Endpoint); mysqlErr(err) == nil || mysqlErr(err).Number != 1045 {
		t.Fatalf("login without a policy: %v, want ERROR 1045", err)
	}
	resource := fmt.Sprintf("arn:aws:rds-db:us-east-1:000000000000:dbuser:%s/master", proxyID)
	if _, err := ic.PutUserPolicy(ctx, &iam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("connect"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"` + resource + `"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if n, err := readOnly(*p.Endpoint); err != nil || n != 0 {
		t.Fatalf("the default endpoint with a policy: read_only %d, %v (want the writer)", n, err)
	}
	if n, err := readOnly(*ro.DBProxyEndpoint.Endpoint); err != nil || n != 1 {
		t.Fatalf("the READ_ONLY endpoint: read_only %d, %v (want a reader)", n, err)
	}

	deadline = time.Now().Add(time.Minute)
	for {
		out, err := rc.DescribeDBProxyTargets(ctx, &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String("bad-proxy")})
		if err != nil {
			t.Fatal(err)
		}
		bad := 0
		for _, tg := range out.Targets {
			if th := tg.TargetHealth; tg.Type == types.TargetTypeRdsInstance && th != nil && th.State == types.TargetStateUnavailable && th.Reason == types.TargetHealthReasonAuthFailure {
				bad++
			}
		}
		if bad == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bad-proxy targets: %+v", out.Targets)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMySQLProxyPortsMode: with --proxy-addressing ports a MYSQL proxy's
// Endpoint is 127.0.0.1:<port> from the port range, where it listens and
// serves a verified-TLS login.
func TestMySQLProxyPortsMode(t *testing.T) {
	emu := testsuite.Start(t, portRange(t), testsuite.WithProxyAddressing("ports"))
	ctx := context.Background()
	rc := rds.NewFromConfig(emu.AWSConfig)
	sm := secretsmanager.NewFromConfig(emu.AWSConfig)
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pm-creds"),
		SecretString: aws.String(`{"username":"pm","password":"pm-password-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("pmdb"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("mysql"), MasterUsername: aws.String("pm"), MasterUserPassword: aws.String("pm-password-1")}); err != nil {
		t.Fatal(err)
	}
	waitAvailable(t, rc, "pmdb")
	p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String("pm-proxy"), EngineFamily: types.EngineFamilyMysql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/proxy"), VpcSubnetIds: []string{"subnet-1"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled,
			ClientPasswordAuthType: types.ClientPasswordAuthTypeMysqlNativePassword}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("pm-proxy"), DBInstanceIdentifiers: []string{"pmdb"}}); err != nil {
		t.Fatal(err)
	}
	addr := *p.DBProxy.Endpoint
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("ports-mode Endpoint %q", addr)
	}
	db, err := mysqlOpen(t, addr, "pm", "pm-password-1", "", "tls="+mysqlTLS(t, caFile(t, emu.URL), addr))
	if err != nil {
		t.Fatalf("connect through %s (mysql_native_password): %v", addr, err)
	}
	var n int
	if err := db.QueryRow("SELECT 6 * 7").Scan(&n); err != nil || n != 42 {
		t.Fatalf("query: %d %v", n, err)
	}
}
