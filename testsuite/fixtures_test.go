package testsuite_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	rdsauth "github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/engine"
	"github.com/rdslocal/rdslocal/fixture"
	"github.com/rdslocal/rdslocal/server"
	"github.com/rdslocal/rdslocal/testsuite"
)

// logBuffer collects a server's log for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func waitReady(t *testing.T, emu *testsuite.Emulator) server.Health {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := emu.WaitReady(ctx)
	if err != nil {
		t.Fatalf("%v\n%+v", err, h.Init)
	}
	return h
}

func caFile(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/_rdslocal/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pem, _ := io.ReadAll(resp.Body)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// proxyEndpoint describes a proxy endpoint (the default one for "").
func proxyEndpoint(t *testing.T, c *rds.Client, proxy, endpoint string) string {
	t.Helper()
	ctx := context.Background()
	if endpoint == "" {
		out, err := c.DescribeDBProxies(ctx, &rds.DescribeDBProxiesInput{DBProxyName: aws.String(proxy)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.DBProxies[0].Endpoint)
	}
	out, err := c.DescribeDBProxyEndpoints(ctx, &rds.DescribeDBProxyEndpointsInput{DBProxyEndpointName: aws.String(endpoint)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.DBProxyEndpoints[0].Endpoint)
}

// hostPort splits an Endpoint value: a bare address is on 5432.
func hostPort(endpoint string) (string, string) {
	if h, p, err := net.SplitHostPort(endpoint); err == nil {
		return h, p
	}
	return endpoint, "5432"
}

// pgConnect connects through a proxy endpoint over verify-full TLS.
func pgConnect(t *testing.T, endpoint, ca, user, password, db string) *pgx.Conn {
	t.Helper()
	host, port := hostPort(endpoint)
	conn, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=verify-full sslrootcert=%s password='%s' connect_timeout=10",
		host, port, user, db, ca, password))
	if err != nil {
		t.Fatalf("connect to %s as %s: %v", endpoint, user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

const everyKind = `
IAMPolicies:
  - PolicyName: connect
    PolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "rds-db:connect", Resource: "*"}]}
IAMRoles:
  - RoleName: proxy-role
    AttachedPolicies: [connect]
IAMUsers:
  - UserName: ci
    AttachedPolicies: [connect]
Secrets:
  - Name: cluster-creds
    SecretString: {username: master, password: cluster-password-1}
  - Name: legacy-creds
    SecretString: {username: legacy, password: legacy-password-1}
  - Name: shop-creds
    SecretString: {username: shop, password: shop-password-1}
DBClusters:
  - DBClusterIdentifier: app-cluster
    Engine: aurora-postgresql
    MasterUsername: master
    MasterUserPassword: cluster-password-1
    DatabaseName: app
DBInstances:
  - DBInstanceIdentifier: app-cluster-1
    DBClusterIdentifier: app-cluster
    Engine: aurora-postgresql
  - DBInstanceIdentifier: app-cluster-2
    DBClusterIdentifier: app-cluster
    Engine: aurora-postgresql
  - DBInstanceIdentifier: legacy
    Engine: postgres
    MasterUsername: legacy
    MasterUserPassword: legacy-password-1
    DBName: legacy
    External: %s
  - DBInstanceIdentifier: shop-db
    Engine: mariadb
    MasterUsername: shop
    MasterUserPassword: shop-password-1
DBProxies:
  - DBProxyName: cluster-proxy
    EngineFamily: POSTGRESQL
    RoleArn: proxy-role
    Auth: [{SecretArn: cluster-creds}]
    TargetGroup: {ConnectionPoolConfig: {MaxConnectionsPercent: 50}}
    Targets: {DBClusterIdentifiers: [app-cluster]}
    Endpoints:
      - DBProxyEndpointName: cluster-ro
        TargetRole: READ_ONLY
  - DBProxyName: legacy-proxy
    EngineFamily: POSTGRESQL
    RoleArn: proxy-role
    Auth: [{SecretArn: legacy-creds}]
    Targets: {DBInstanceIdentifiers: [legacy]}
  - DBProxyName: shop-proxy
    EngineFamily: MYSQL
    RoleArn: proxy-role
    Auth: [{SecretArn: shop-creds}]
    Targets: {DBInstanceIdentifiers: [shop-db]}
`

// TestFixturesRealServers starts rdslocal with a file of every kind of
// resource and real servers behind it — an Aurora PostgreSQL cluster with
// a reader, an existing PostgreSQL server (External), a MariaDB instance —
// under --enforce-iam, connects through the proxies, then restarts on the
// same data directory with the same file: everything is found as defined
// and nothing is made again.
func TestFixturesRealServers(t *testing.T) {
	ctx := context.Background()
	// The existing server the file registers as External.
	lo := 20000 + rand.IntN(12000)
	ext, err := engine.NewManager(ctx, engine.Config{Backend: "process", PortMin: lo, PortMax: lo + 5, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	legacy, err := ext.Create(ctx, engine.Spec{ID: "legacy", Engine: "postgres", InstanceClass: "db.t3.micro",
		MasterUsername: "legacy", MasterPassword: "legacy-password-1", DBName: "legacy"})
	if err != nil {
		t.Skipf("no PostgreSQL to run the existing server (make deps installs it): %v", err)
	}
	legacyAddr := net.JoinHostPort(legacy.Host, strconv.Itoa(legacy.Port))
	file := filepath.Join(t.TempDir(), "fixtures.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(everyKind, legacyAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := searchableTempDir(t)
	var log1 logBuffer
	emu := testsuite.Start(t, portRange(t), testsuite.WithDataDir(dataDir), testsuite.WithDBBackend("process"), testsuite.WithEnforceIAM(),
		testsuite.WithInitFile(file), testsuite.WithLogger(log1.logger()))
	h := waitReady(t, emu)
	if len(h.Init.Fixtures) != 14 {
		t.Fatalf("%d fixtures in the health document: %+v", len(h.Init.Fixtures), h.Init.Fixtures)
	}
	for _, f := range h.Init.Fixtures {
		if f.Kind != fixture.DBProxy {
			continue
		}
		// Every proxy, PostgreSQL or MySQL, listens.
		if listening := f.Listening != nil && *f.Listening; !listening || f.Status != "available" {
			t.Errorf("proxy %s: status %s, listening %v, note %q", f.Name, f.Status, listening, f.Note)
		}
	}

	c := rds.NewFromConfig(emu.AWSConfig)
	ca := caFile(t, emu.URL)
	check := func() {
		var recovery bool
		var port int
		rw := pgConnect(t, proxyEndpoint(t, c, "cluster-proxy", ""), ca, "master", "cluster-password-1", "app")
		if err := rw.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil || recovery {
			t.Errorf("cluster-proxy reaches the writer: in recovery %v, %v", recovery, err)
		}
		ro := pgConnect(t, proxyEndpoint(t, c, "cluster-proxy", "cluster-ro"), ca, "master", "cluster-password-1", "app")
		if err := ro.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil || !recovery {
			t.Errorf("cluster-ro reaches the reader: in recovery %v, %v", recovery, err)
		}
		lg := pgConnect(t, proxyEndpoint(t, c, "legacy-proxy", ""), ca, "legacy", "legacy-password-1", "legacy")
		if err := lg.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil || port != legacy.Port {
			t.Errorf("legacy-proxy reaches the existing server on %d: %d, %v", legacy.Port, port, err)
		}
		shop := mysqlProxyAddr(proxyEndpoint(t, c, "shop-proxy", ""))
		my, err := mysqlOpen(t, shop, "shop", "shop-password-1", "", "tls="+mysqlTLS(t, ca, shop))
		if err != nil {
			t.Fatalf("connect through shop-proxy: %v", err)
		}
		var user string
		if err := my.QueryRow("SELECT CURRENT_USER()").Scan(&user); err != nil || user != "shop@%" {
			t.Errorf("shop-proxy reaches the MariaDB instance: %q, %v", user, err)
		}
	}
	check()
	before := proxyArns(t, c)
	emu.Stop()

	var log2 logBuffer
	emu = testsuite.Start(t, portRange(t), testsuite.WithDataDir(dataDir), testsuite.WithDBBackend("process"), testsuite.WithEnforceIAM(),
		testsuite.WithInitFile(file), testsuite.WithLogger(log2.logger()))
	waitReady(t, emu)
	if n := strings.Count(log2.String(), `msg="fixture exists as defined"`); n != 14 {
		t.Errorf("after the restart %d of 14 fixtures were found as defined:\n%s", n, log2.String())
	}
	if strings.Contains(log2.String(), `msg="fixture created"`) {
		t.Errorf("a fixture was made again after the restart:\n%s", log2.String())
	}
	c = rds.NewFromConfig(emu.AWSConfig)
	if after := proxyArns(t, c); after != before {
		t.Errorf("proxies changed across the restart: %s, then %s", before, after)
	}
	check()
}

func proxyArns(t *testing.T, c *rds.Client) string {
	t.Helper()
	out, err := c.DescribeDBProxies(context.Background(), &rds.DescribeDBProxiesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var arns []string
	for _, p := range out.DBProxies {
		arns = append(arns, aws.ToString(p.DBProxyArn))
	}
	return strings.Join(arns, ",")
}

// TestFixtureInstanceFails: an instance that cannot start fails start-up
// with its reason, and the health document says which fixture and line.
func TestFixtureInstanceFails(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.yaml")
	closed := freeAddr(t) // nothing listens there
	if err := os.WriteFile(file, []byte("DBInstances:\n  - DBInstanceIdentifier: gone\n    Engine: postgres\n    MasterUsername: app\n    MasterUserPassword: app-password-1\n    External: "+closed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emu := testsuite.Start(t, portRange(t), testsuite.WithDBBackend("process"), testsuite.WithInitFile(file))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := emu.WaitReady(ctx)
	want := file + `:2: DBInstance "gone": it is failed: `
	if err == nil || h.Init.State != server.PhaseFailed || len(h.Init.Errors) != 1 || !strings.HasPrefix(h.Init.Errors[0], want) {
		t.Fatalf("got %v\n%+v\nwant an error starting %s", err, h.Init, want)
	}
	if f := h.Init.Fixtures[0]; f.State != fixture.StateFailed || f.Status != "failed" {
		t.Errorf("fixture status %+v", f)
	}
}

// TestInitHooks runs ready.d hooks after the fixtures: in LocalStack's
// order (a directory's files before its subdirectories), with the AWS
// environment set, their output in the log, a failure reported without
// stopping the others.
func TestInitHooks(t *testing.T) {
	dir := t.TempDir()
	hooks := filepath.Join(dir, "ready.d")
	awsLine := ""
	if _, err := execLookPath("aws"); err == nil {
		// The AWS CLI finds rdslocal through AWS_ENDPOINT_URL alone, and the
		// fixture's secret is there before the hooks run.
		awsLine = `aws secretsmanager describe-secret --secret-id from-fixture --query Name --output text
aws secretsmanager create-secret --name from-hook --secret-string x >/dev/null
`
	}
	files := map[string]string{
		"01-env.sh":          "#!/bin/sh\nset -e\necho \"endpoint=$AWS_ENDPOINT_URL region=$AWS_DEFAULT_REGION key=$AWS_ACCESS_KEY_ID/$AWS_SECRET_ACCESS_KEY\"\n" + awsLine + "echo 01 >> ../order\n",
		"03-fail.sh":         "#!/bin/sh\necho boom >&2\necho 03 >> ../order\nexit 3\n",
		"04-after.sh":        "#!/bin/sh\necho 04 >> ../order\n",
		"02-sub/01-inner.sh": "#!/bin/sh\necho inner >> ../../order\n",
		"05-notes.txt":       "not a hook: not executable\n",
	}
	for name, body := range files {
		p := filepath.Join(hooks, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o755)
		if strings.HasSuffix(name, ".txt") {
			mode = 0o644
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "f.yaml")
	if err := os.WriteFile(file, []byte("Region: eu-west-1\nSecrets:\n  - Name: from-fixture\n    SecretString: s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log logBuffer
	emu := testsuite.Start(t, testsuite.WithDBBackend("none"), testsuite.WithInitFile(file), testsuite.WithInitDir(dir), testsuite.WithLogger(log.logger()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h, err := emu.WaitReady(ctx)
	if err == nil || err.Error() != "start-up failed: init hook ready.d/03-fail.sh: exited with status 3" {
		t.Fatalf("WaitReady: %v\n%s", err, log.String())
	}
	order, _ := os.ReadFile(filepath.Join(dir, "order"))
	if string(order) != "01\n03\n04\ninner\n" {
		t.Errorf("hooks ran in the order %q", order)
	}
	var got []string
	for _, s := range h.Init.Scripts {
		got = append(got, fmt.Sprintf("%s %s %s %d", s.Stage, s.Name, s.State, *s.ExitCode))
	}
	if want := "READY 01-env.sh SUCCESSFUL 0, READY 03-fail.sh ERROR 3, READY 04-after.sh SUCCESSFUL 0, READY 02-sub/01-inner.sh SUCCESSFUL 0"; strings.Join(got, ", ") != want {
		t.Errorf("scripts:\n got %s\nwant %s", strings.Join(got, ", "), want)
	}
	if h.Ready || h.Init.State != server.PhaseFailed {
		t.Errorf("ready %v, state %s after a failing hook", h.Ready, h.Init.State)
	}
	for _, want := range []string{
		fmt.Sprintf(`msg="init hook output" script=01-env.sh line="endpoint=%s region=eu-west-1 key=test/test"`, emu.URL),
		`msg="init hook output" script=03-fail.sh line=boom`,
		`msg="init hook failed" script=03-fail.sh exit_code=3`,
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("the log has no %s:\n%s", want, log.String())
		}
	}
	if awsLine != "" {
		if !strings.Contains(log.String(), `script=01-env.sh line=from-fixture`) {
			t.Errorf("the hook did not find the fixture's secret:\n%s", log.String())
		}
		cfg := testsuite.Config(emu.URL, "test", "test")
		cfg.Region = "eu-west-1"
		if _, err := secretsmanager.NewFromConfig(cfg).DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("from-hook")}); err != nil {
			t.Errorf("the hook's AWS CLI call did not reach rdslocal: %v", err)
		}
	}

	// LocalStack's init endpoints.
	for _, tt := range []struct {
		path   string
		status int
		want   string
	}{
		{"/_localstack/init/ready", 200, `"completed":true`},
		{"/_rdslocal/init", 200, `"completed":{"READY":true}`},
		{"/_localstack/init/boot", 404, `no such stage boot`},
	} {
		resp, err := http.Get(emu.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
			t.Errorf("GET %s: %d %s", tt.path, resp.StatusCode, body)
		}
	}
	resp, err := http.Get(emu.URL + "/_localstack/health")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if doc["ready"] != false || doc["services"] == nil || doc["init"].(map[string]any)["state"] != "failed" {
		t.Errorf("health document %v", doc)
	}
}

// TestAdvertisedEndpoint is rdslocal as it runs in its container: ports
// addressing and an advertised host. Endpoint names that host; clients
// that reach the port another way verify the certificate against the name
// and sign IAM tokens for the Endpoint.
func TestAdvertisedEndpoint(t *testing.T) {
	emu := testsuite.Start(t, portRange(t), testsuite.WithDBBackend("process"), testsuite.WithProxyAddressing("ports"),
		testsuite.WithAdvertiseHost("rdslocal.test"), testsuite.WithInitFile(filepath.Join("..", "examples", "fixtures.yaml")))
	waitReady(t, emu)
	c := rds.NewFromConfig(emu.AWSConfig)
	endpoint := proxyEndpoint(t, c, "app-proxy-iam", "")
	host, port := hostPort(endpoint)
	if host != "rdslocal.test" {
		t.Fatalf("Endpoint %s does not name the advertised host", endpoint)
	}
	ca := caFile(t, emu.URL)
	ctx := context.Background()
	connect := func(signedFor string) error {
		token, err := rdsauth.BuildAuthToken(ctx, signedFor, "us-east-1", "app", credentials.NewStaticCredentialsProvider("test", "test", ""))
		if err != nil {
			return err
		}
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%s user=app dbname=postgres sslmode=verify-full sslrootcert=%s connect_timeout=10", port, ca))
		if err != nil {
			return err
		}
		cfg.Password = token
		cfg.TLSConfig.ServerName = "rdslocal.test" // as a client that resolves the name to this host
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		var n int
		return conn.QueryRow(ctx, "SELECT 1").Scan(&n)
	}
	if err := connect(endpoint); err != nil {
		t.Fatalf("a token signed for the Endpoint %s: %v", endpoint, err)
	}
	if err := connect(net.JoinHostPort("localhost", port)); err != nil {
		t.Errorf("a token signed for localhost: %v", err)
	}
	if err := connect(net.JoinHostPort("elsewhere.test", port)); err == nil || !strings.Contains(err.Error(), "28") {
		t.Errorf("a token signed for another host: %v", err)
	}
}

func execLookPath(name string) (string, error) { return exec.LookPath(name) }

// portRange finds 20 consecutive free ports at a random place between the
// usual 4510-4559 and the kernel's ephemeral ports (32768 up), so the
// servers these tests start do not race other programs on this machine
// for the same ports.
func portRange(t *testing.T) testsuite.Option {
	t.Helper()
	lo, hi := freePorts(t)
	return testsuite.WithPortRange(lo, hi)
}

// freePorts returns the bounds (end excluded) of 20 free ports; see
// portRange.
func freePorts(t *testing.T) (int, int) {
	t.Helper()
	for range 50 {
		lo := 20000 + rand.IntN(12000)
		free := true
		for p := lo; p < lo+20 && free; p++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				free = false
				continue
			}
			ln.Close()
		}
		if free {
			return lo, lo + 20
		}
	}
	t.Fatal("no 20 free consecutive ports")
	return 0, 0
}
