package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/cmd/internal/rdsproc"
)

// ensurePgBouncer installs Debian's pgbouncer when it is missing.
func ensurePgBouncer(ctx context.Context) error {
	if pgbouncerPath() != "" {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("pgbouncer is not installed and we are not root: apt-get install pgbouncer")
	}
	logf("installing pgbouncer (apt-get install -y pgbouncer)")
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "pgbouncer")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install pgbouncer: %v\n%s", err, out)
		}
		return nil
	}
	if err := install(); err != nil {
		logf("install failed; running apt-get update first")
		if out, uerr := exec.CommandContext(ctx, "apt-get", "update", "-qq").CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %v\n%s", uerr, out)
		}
		if err := install(); err != nil {
			return err
		}
	}
	if pgbouncerPath() == "" {
		return errors.New("pgbouncer still not found after installing it")
	}
	return nil
}

func pgbouncerPath() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer"
	}
	return ""
}

// waitDial waits until addr accepts TCP connections, giving up when gone
// reports that the server exited.
func waitDial(ctx context.Context, addr string, d time.Duration, gone func() bool) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || (gone != nil && gone()) {
			return fmt.Errorf("%s does not accept connections: %v", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func exited(cmd *exec.Cmd) func() bool {
	return func() bool { return syscall.Kill(cmd.Process.Pid, 0) != nil || procState(cmd.Process.Pid) == "Z" }
}

func procState(pid int) string {
	s := readFileString(fmt.Sprintf("/proc/%d/stat", pid))
	if i := strings.LastIndexByte(s, ')'); i > 0 && len(s) > i+2 {
		return s[i+2 : i+3]
	}
	return ""
}

func (b *bench) startRdslocal(ctx context.Context) error {
	p, err := rdsproc.Start(ctx, rdsproc.Options{Bin: b.opt.bin, Dir: b.tmp, Args: []string{"--log-level", "warn"}, Env: b.opt.env, Logf: logf})
	if err != nil {
		return err
	}
	b.rdslocal, b.apiURL = p.Cmd, p.APIURL
	b.onCleanup(func() { p.Stop(60 * time.Second) })
	return nil
}

// stack is what createStack makes through the AWS API, as an
// application's setup does: a DB instance, a secret with its master
// credentials, a proxy using the secret with the instance as its target,
// and the target group's pool (MaxConnectionsPercent =
// MaxIdleConnectionsPercent = -pool-pct).
type stack struct {
	instance, engine, class string
	secret, proxy           string
	family                  types.EngineFamily
	clientAuth              types.ClientPasswordAuthType // "": the family's default
}

// createStack makes s and returns the instance's address and the proxy's
// Endpoint.
func (b *bench) createStack(ctx context.Context, rc *rds.Client, sm *secretsmanager.Client, s stack) (direct endpointT, proxyEndpoint string, err error) {
	t0 := time.Now()
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(s.instance),
		DBInstanceClass: aws.String(s.class), Engine: aws.String(s.engine),
		MasterUsername: aws.String(dbUser), MasterUserPassword: aws.String(dbPassword), DBName: aws.String(dbName)}); err != nil {
		return direct, "", fmt.Errorf("CreateDBInstance (%s): %w", s.engine, err)
	}
	var inst types.DBInstance
	for {
		out, err := rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(s.instance)})
		if err != nil {
			return direct, "", fmt.Errorf("DescribeDBInstances: %w", err)
		}
		inst = out.DBInstances[0]
		st := aws.ToString(inst.DBInstanceStatus)
		if st == "available" && inst.Endpoint != nil {
			break
		}
		if st == "failed" || time.Since(t0) > 3*time.Minute {
			return direct, "", fmt.Errorf("%s instance is %q after %s\n%s", s.engine, st, time.Since(t0).Round(time.Second), rdsproc.Tail(filepath.Join(b.tmp, "rdslocal.log"), 20))
		}
		select {
		case <-ctx.Done():
			return direct, "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	direct = endpointT{name: "direct", host: aws.ToString(inst.Endpoint.Address), port: int(aws.ToInt32(inst.Endpoint.Port))}
	logf("%s instance available at %s after %s", s.engine, direct.addr(), time.Since(t0).Round(time.Millisecond))

	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(s.secret),
		SecretString: aws.String(fmt.Sprintf(`{"username":%q,"password":%q}`, dbUser, dbPassword))})
	if err != nil {
		return direct, "", fmt.Errorf("CreateSecret: %w", err)
	}
	p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String(s.proxy), EngineFamily: s.family,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/bench-proxy"), VpcSubnetIds: []string{"subnet-1", "subnet-2"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled,
			ClientPasswordAuthType: s.clientAuth}}})
	if err != nil {
		return direct, "", fmt.Errorf("CreateDBProxy (%s): %w", s.family, err)
	}
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String(s.proxy),
		DBInstanceIdentifiers: []string{s.instance}}); err != nil {
		return direct, "", fmt.Errorf("RegisterDBProxyTargets: %w", err)
	}
	pct := int32(b.opt.poolPct)
	if _, err := rc.ModifyDBProxyTargetGroup(ctx, &rds.ModifyDBProxyTargetGroupInput{DBProxyName: aws.String(s.proxy),
		TargetGroupName: aws.String("default"), ConnectionPoolConfig: &types.ConnectionPoolConfiguration{
			MaxConnectionsPercent: aws.Int32(pct), MaxIdleConnectionsPercent: aws.Int32(pct), ConnectionBorrowTimeout: aws.Int32(120)}}); err != nil {
		return direct, "", fmt.Errorf("ModifyDBProxyTargetGroup: %w", err)
	}
	return direct, aws.ToString(p.DBProxy.Endpoint), nil
}

// awsClients are RDS and Secrets Manager clients for the running rdslocal.
func (b *bench) awsClients() (*rds.Client, *secretsmanager.Client) {
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(b.apiURL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	return rds.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)
}

// createResources makes the PostgreSQL stack (an instance, a secret, a
// POSTGRESQL proxy) and reads what the figures need from the database.
func (b *bench) createResources(ctx context.Context) error {
	rc, sm := b.awsClients()
	var ep string
	var err error
	if b.direct, ep, err = b.createStack(ctx, rc, sm, stack{instance: "bench-db", engine: "postgres", class: b.opt.class,
		secret: "bench-creds", proxy: "bench-proxy", family: types.EngineFamilyPostgresql}); err != nil {
		return err
	}
	b.proxy = endpointT{name: "rdslocal", host: ep, port: 5432}

	// The pool size follows max_connections.
	conn, err := pgx.Connect(ctx, b.direct.dsn("disable"))
	if err != nil {
		return fmt.Errorf("connect to the database: %w", err)
	}
	defer conn.Close(ctx)
	var maxc string
	if err := conn.QueryRow(ctx, "SHOW max_connections").Scan(&maxc); err != nil {
		return err
	}
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&b.pgVersion); err != nil {
		return err
	}
	b.maxConns, _ = strconv.Atoi(maxc)
	b.poolSize = max(1, b.maxConns*b.opt.poolPct/100)
	logf("PostgreSQL %s, max_connections %d, pool %d%% = %d connections", b.pgVersion, b.maxConns, b.opt.poolPct, b.poolSize)

	// Wait until the proxy answers a query.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pc, err := pgx.Connect(ctx, b.proxy.dsn("disable"))
		if err == nil {
			var n int
			err = pc.QueryRow(ctx, "SELECT 1").Scan(&n)
			pc.Close(ctx)
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy at %s:5432 does not answer: %v", b.proxy.host, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	tg, err := rc.DescribeDBProxyTargetGroups(ctx, &rds.DescribeDBProxyTargetGroupsInput{DBProxyName: aws.String("bench-proxy")})
	if err == nil && len(tg.TargetGroups) > 0 && tg.TargetGroups[0].ConnectionPoolConfig != nil {
		c := tg.TargetGroups[0].ConnectionPoolConfig
		logf("proxy bench-proxy at %s:5432, pool MaxConnectionsPercent=%d MaxIdleConnectionsPercent=%d",
			b.proxy.host, aws.ToInt32(c.MaxConnectionsPercent), aws.ToInt32(c.MaxIdleConnectionsPercent))
	}

	// PgBouncer stores the database's SCRAM secret (no PBKDF2 per login,
	// like the proxy's credential cache); set a known one on the role so
	// both sides hold the same secret (PgBouncer's SCRAM pass-through).
	// The password itself does not change.
	b.scramSecret = scramSecret(dbPassword)
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", dbUser, b.scramSecret)); err != nil {
		return fmt.Errorf("set the SCRAM secret: %w", err)
	}
	return nil
}

// dsn is a key/value connection string for pgx.
func (e endpointT) dsn(sslmode string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=%s connect_timeout=30",
		e.host, e.port, dbUser, dbPassword, dbName, sslmode)
}

// scramSecret is PostgreSQL's SCRAM-SHA-256 verifier for password, with a
// fresh salt and 4096 iterations.
func scramSecret(password string) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	salted, _ := pbkdf2.Key(sha256.New, password, salt, 4096, 32)
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$4096:%s$%s:%s", enc(salt), enc(stored[:]), enc(serverKey))
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)(?:\.(\d+))?`)

// startPgBouncer runs PgBouncer in transaction mode with the proxy's pool
// size in front of the same database.
func (b *bench) startPgBouncer(ctx context.Context) error {
	bin := pgbouncerPath()
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return fmt.Errorf("pgbouncer --version: %q", out)
	}
	b.pgbVersion = m[0]
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	b.bouncerPrepared = major > 1 || minor >= 21

	dir := filepath.Join(b.tmp, "pgbouncer")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	port, err := rdsproc.FreePort()
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return err
	}
	extra := ""
	if b.bouncerPrepared {
		extra = "max_prepared_statements = 200\n"
	}
	ini := fmt.Sprintf(`[databases]
%[1]s = host=%[2]s port=%[3]d dbname=%[1]s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %[4]d
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %[5]s/userlist.txt
pool_mode = transaction
default_pool_size = %[6]d
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = %[6]d
max_client_conn = %[7]d
server_tls_sslmode = disable
client_tls_sslmode = allow
client_tls_key_file = %[5]s/server.key
client_tls_cert_file = %[5]s/server.crt
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
logfile = %[5]s/pgbouncer.log
%[8]s`, dbName, b.direct.host, b.direct.port, port, dir, b.poolSize, b.opt.idle*2+500, extra)
	files := map[string]string{
		"pgbouncer.ini": ini,
		"userlist.txt":  fmt.Sprintf("%q %q\n", dbUser, b.scramSecret),
		"server.crt":    string(certPEM),
		"server.key":    string(keyPEM),
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 { // PgBouncer refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("PgBouncer will not run as root and there is no postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
		if cred != nil {
			os.Chown(p, int(cred.Uid), int(cred.Gid))
		}
	}
	if cred != nil {
		os.Chown(dir, int(cred.Uid), int(cred.Gid))
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	stderr, err := os.Create(filepath.Join(b.tmp, "pgbouncer.stderr"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		stderr.Close()
		return err
	}
	b.pgbouncer = cmd
	b.onCleanup(func() {
		logf("stopping PgBouncer (pid %d)", cmd.Process.Pid)
		rdsproc.StopProcess(cmd, nil, 10*time.Second, logf)
		stderr.Close()
	})
	b.bouncer = endpointT{name: "pgbouncer", host: "127.0.0.1", port: port}
	if err := waitDial(ctx, fmt.Sprintf("127.0.0.1:%d", port), 15*time.Second, exited(cmd)); err != nil {
		return fmt.Errorf("PgBouncer: %v\n%s\n%s", err, rdsproc.Tail(filepath.Join(dir, "pgbouncer.log"), 20), rdsproc.Tail(stderr.Name(), 20))
	}
	c, err := pgx.Connect(ctx, b.bouncer.dsn("disable"))
	if err != nil {
		return fmt.Errorf("connect through PgBouncer: %v\n%s", err, rdsproc.Tail(filepath.Join(dir, "pgbouncer.log"), 20))
	}
	c.Close(ctx)
	logf("PgBouncer %s pid %d on 127.0.0.1:%d (transaction mode, pool %d, prepared statements %v)",
		b.pgbVersion, cmd.Process.Pid, port, b.poolSize, b.bouncerPrepared)
	return nil
}

// selfSigned makes an ECDSA P-256 certificate for 127.0.0.1, the key type
// of rdslocal's endpoint certificates, so TLS handshakes cost the same.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}
