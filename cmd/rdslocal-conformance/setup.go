package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/cmd/internal/rdsproc"
)

// The DB instance's master credentials and the database pgx's tests use.
const (
	dbUser     = "postgres"
	dbPassword = "conformance-pw-1"
	dbName     = "pgx_test"
	pgxModule  = "github.com/jackc/pgx/v5"
)

type runner struct {
	opt   options
	start time.Time
	tmp   string

	mu       sync.Mutex
	cleanups []func()

	pgxDir, pgxVersion string
	apiURL             string
	direct, proxy      string // PGX_TEST_DATABASE values
}

// onCleanup registers f to run at the end, in reverse order.
func (r *runner) onCleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

func (r *runner) cleanup() {
	r.mu.Lock()
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (r *runner) run(ctx context.Context) (failed bool, err error) {
	if err := r.findPgx(ctx); err != nil {
		return false, err
	}
	tmp, err := os.MkdirTemp("", "rdslocal-conformance-")
	if err != nil {
		return false, err
	}
	// The database servers run as the postgres user when we are root: they
	// must be able to reach their directories.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return false, err
	}
	r.tmp = tmp
	r.onCleanup(func() {
		if r.opt.keep {
			logf("kept %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	})
	logf("work directory %s", tmp)
	if err := r.startRdslocal(ctx); err != nil {
		return false, err
	}
	if err := r.createResources(ctx); err != nil {
		return false, err
	}
	if err := r.prepareDatabase(ctx); err != nil {
		return false, err
	}
	if r.opt.hold {
		fmt.Printf("PGX_TEST_DATABASE=%q  # direct\nPGX_TEST_DATABASE=%q  # proxy\npgx tests in %s\n", r.direct, r.proxy, r.pgxDir)
		logf("holding; Ctrl-C ends the run")
		<-ctx.Done()
		return false, nil
	}
	res := map[string]results{}
	for _, mode := range r.opt.modes {
		dsn := r.direct
		if mode == "proxy" {
			dsn = r.proxy
		}
		rs, err := r.runSuite(ctx, mode, dsn)
		if err != nil {
			return false, err
		}
		res[mode] = rs
	}
	return report(os.Stdout, res), nil
}

// findPgx downloads the pgx version this module requires into the module
// cache and notes its directory.
func (r *runner) findPgx(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", pgxModule).Output()
	if err != nil {
		return fmt.Errorf("go list -m %s: %v", pgxModule, err)
	}
	r.pgxVersion = strings.TrimSpace(string(out))
	out, err = exec.CommandContext(ctx, "go", "mod", "download", "-json", pgxModule+"@"+r.pgxVersion).Output()
	if err != nil {
		return fmt.Errorf("go mod download %s@%s: %v", pgxModule, r.pgxVersion, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return fmt.Errorf("go mod download: %v", err)
	}
	if m.Error != "" || m.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: %s", pgxModule, r.pgxVersion, m.Error)
	}
	r.pgxDir = m.Dir
	logf("pgx %s in %s", r.pgxVersion, r.pgxDir)
	return nil
}

func (r *runner) startRdslocal(ctx context.Context) error {
	// Ports for the DB instance away from the default range, which other
	// rdslocal processes on this machine may be using.
	base, err := rdsproc.FreePort()
	if err != nil {
		return err
	}
	p, err := rdsproc.Start(ctx, rdsproc.Options{Bin: r.opt.bin, Dir: r.tmp, Logf: logf,
		Args: []string{"--db-backend", "process", "--log-level", "info", "--port-range", fmt.Sprintf("%d-%d", base, base+20)}})
	if err != nil {
		return err
	}
	r.apiURL = p.APIURL
	r.onCleanup(func() { p.Stop(60 * time.Second) })
	return nil
}

// createResources does through the AWS API what an application's setup
// does: a DB instance, a secret, a proxy with that secret and its target.
func (r *runner) createResources(ctx context.Context) error {
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(r.apiURL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	rc := rds.NewFromConfig(cfg)
	sm := secretsmanager.NewFromConfig(cfg)

	t0 := time.Now()
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("pgx-db"),
		DBInstanceClass: aws.String("db.m5.large"), Engine: aws.String("postgres"),
		MasterUsername: aws.String(dbUser), MasterUserPassword: aws.String(dbPassword), DBName: aws.String(dbName)}); err != nil {
		return fmt.Errorf("CreateDBInstance: %w", err)
	}
	var inst types.DBInstance
	for {
		out, err := rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("pgx-db")})
		if err != nil {
			return fmt.Errorf("DescribeDBInstances: %w", err)
		}
		inst = out.DBInstances[0]
		st := aws.ToString(inst.DBInstanceStatus)
		if st == "available" && inst.Endpoint != nil {
			break
		}
		if st == "failed" || time.Since(t0) > 3*time.Minute {
			return fmt.Errorf("DB instance is %q after %s\n%s", st, time.Since(t0).Round(time.Second), rdsproc.Tail(filepath.Join(r.tmp, "rdslocal.log"), 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.direct = dsn(aws.ToString(inst.Endpoint.Address), fmt.Sprint(aws.ToInt32(inst.Endpoint.Port)))
	logf("DB instance available at %s:%d after %s", aws.ToString(inst.Endpoint.Address), aws.ToInt32(inst.Endpoint.Port),
		time.Since(t0).Round(time.Millisecond))

	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("pgx-creds"),
		SecretString: aws.String(fmt.Sprintf(`{"username":%q,"password":%q}`, dbUser, dbPassword))})
	if err != nil {
		return fmt.Errorf("CreateSecret: %w", err)
	}
	p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String("pgx-proxy"), EngineFamily: types.EngineFamilyPostgresql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/pgx-proxy"), VpcSubnetIds: []string{"subnet-1", "subnet-2"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled}}})
	if err != nil {
		return fmt.Errorf("CreateDBProxy: %w", err)
	}
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("pgx-proxy"),
		DBInstanceIdentifiers: []string{"pgx-db"}}); err != nil {
		return fmt.Errorf("RegisterDBProxyTargets: %w", err)
	}
	host, port := aws.ToString(p.DBProxy.Endpoint), "5432"
	if h, pt, err := net.SplitHostPort(host); err == nil { // ports mode
		host, port = h, pt
	}
	r.proxy = dsn(host, port)
	logf("proxy endpoint %s:%s", host, port)

	// Wait until the proxy answers a query.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.Connect(ctx, r.proxy)
		if err == nil {
			var n int
			err = c.QueryRow(ctx, "SELECT 1").Scan(&n)
			c.Close(ctx)
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy at %s:%s does not answer: %v", host, port, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// dsn is the PGX_TEST_DATABASE value for a host and port. sslmode is
// pgx's default (prefer): the proxy offers TLS, the instance does not.
func dsn(host, port string) string {
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=%s", host, port, dbUser, dbPassword, dbName)
}

// superuser matches the SUPERUSER attribute in pgx's setup script.
var superuser = regexp.MustCompile(`(?i)\s+(with\s+)?superuser\b`)

// prepareDatabase runs pgx's testsetup/postgresql_setup.sql on the
// database as the master user: its SQL statements one by one, without the
// psql meta-commands (the role named after the OS user is not needed:
// every test connects with PGX_TEST_DATABASE) and without SUPERUSER.
func (r *runner) prepareDatabase(ctx context.Context) error {
	f, err := os.Open(filepath.Join(r.pgxDir, "testsetup", "postgresql_setup.sql"))
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := pgx.Connect(ctx, r.direct)
	if err != nil {
		return fmt.Errorf("connect to the instance: %w", err)
	}
	defer c.Close(ctx)
	var stmt strings.Builder
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "", strings.HasPrefix(line, "--"), strings.HasPrefix(line, `\`):
			continue
		}
		stmt.WriteString(line)
		stmt.WriteByte('\n')
		switch {
		case strings.HasSuffix(line, `\gexec`):
			stmt.Reset() // psql builds and runs a statement: the OS user's role
		case strings.HasSuffix(line, ";"):
			q := superuser.ReplaceAllString(stmt.String(), "")
			stmt.Reset()
			if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("setup: %s: %w", strings.TrimSpace(q), err)
			}
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	logf("ran %d statements of pgx's testsetup/postgresql_setup.sql", n)
	return nil
}
