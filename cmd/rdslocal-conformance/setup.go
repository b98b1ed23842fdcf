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

// suite is one driver's run: where its module is, its instance and
// proxy.
type suite struct {
	*driver
	dir, version  string
	direct, proxy [2]string // host, port
}

type runner struct {
	opt   options
	start time.Time
	tmp   string

	mu       sync.Mutex
	cleanups []func()

	suites []*suite
	apiURL string
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
	for _, d := range r.opt.drivers {
		s := &suite{driver: d}
		if err := s.download(ctx); err != nil {
			return false, err
		}
		r.suites = append(r.suites, s)
	}
	tmp, err := os.MkdirTemp("", "rdslocal-conformance-")
	if err != nil {
		return false, err
	}
	// The database servers run as their service users when we are root:
	// they must be able to reach their directories.
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
	for _, s := range r.suites {
		if err := r.createResources(ctx, s); err != nil {
			return false, err
		}
		if err := s.prepare(ctx, s, s.direct[0], s.direct[1]); err != nil {
			return false, err
		}
	}
	if r.opt.hold {
		for _, s := range r.suites {
			fmt.Printf("# %s %s tests in %s\n", s.title, s.version, s.dir)
			for _, mode := range []string{"direct", "proxy"} {
				a := s.addr(mode)
				fmt.Printf("# %s\n", mode)
				for _, kv := range s.env(a[0], a[1]) {
					k, v, _ := strings.Cut(kv, "=")
					fmt.Printf("%s=%q ", k, v)
				}
				fmt.Println()
			}
		}
		logf("holding; Ctrl-C ends the run")
		<-ctx.Done()
		return false, nil
	}
	var reps []suiteResults
	for _, s := range r.suites {
		res := map[string]results{}
		for _, mode := range r.opt.modes {
			rs, err := r.runSuite(ctx, s, mode)
			if err != nil {
				return false, err
			}
			res[mode] = rs
		}
		reps = append(reps, suiteResults{s, res})
	}
	return report(os.Stdout, reps), nil
}

func (s *suite) addr(mode string) [2]string {
	if mode == "proxy" {
		return s.proxy
	}
	return s.direct
}

// download downloads the driver version this module requires into the
// module cache and notes its directory.
func (s *suite) download(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", s.module).Output()
	if err != nil {
		return fmt.Errorf("go list -m %s: %v", s.module, err)
	}
	s.version = strings.TrimSpace(string(out))
	out, err = exec.CommandContext(ctx, "go", "mod", "download", "-json", s.module+"@"+s.version).Output()
	if err != nil {
		return fmt.Errorf("go mod download %s@%s: %v", s.module, s.version, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return fmt.Errorf("go mod download: %v", err)
	}
	if m.Error != "" || m.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: %s", s.module, s.version, m.Error)
	}
	s.dir = m.Dir
	logf("%s %s in %s", s.title, s.version, s.dir)
	return nil
}

func (r *runner) startRdslocal(ctx context.Context) error {
	// Ports for the DB instances away from the default range, which other
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
func (r *runner) createResources(ctx context.Context, s *suite) error {
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(r.apiURL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	rc := rds.NewFromConfig(cfg)
	sm := secretsmanager.NewFromConfig(cfg)
	id := s.name + "-db"

	t0 := time.Now()
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id),
		DBInstanceClass: aws.String("db.m5.large"), Engine: aws.String(s.engine),
		MasterUsername: aws.String(s.user), MasterUserPassword: aws.String(dbPassword), DBName: aws.String(s.dbName)}); err != nil {
		return fmt.Errorf("CreateDBInstance %s: %w", s.engine, err)
	}
	var inst types.DBInstance
	for {
		out, err := rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
		if err != nil {
			return fmt.Errorf("DescribeDBInstances: %w", err)
		}
		inst = out.DBInstances[0]
		st := aws.ToString(inst.DBInstanceStatus)
		if st == "available" && inst.Endpoint != nil {
			break
		}
		if st == "failed" || time.Since(t0) > 3*time.Minute {
			return fmt.Errorf("DB instance %s is %q after %s\n%s", id, st, time.Since(t0).Round(time.Second), rdsproc.Tail(filepath.Join(r.tmp, "rdslocal.log"), 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	s.direct = [2]string{aws.ToString(inst.Endpoint.Address), fmt.Sprint(aws.ToInt32(inst.Endpoint.Port))}
	logf("%s DB instance available at %s:%s after %s", s.engine, s.direct[0], s.direct[1], time.Since(t0).Round(time.Millisecond))

	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(s.name + "-creds"),
		SecretString: aws.String(fmt.Sprintf(`{"username":%q,"password":%q}`, s.user, dbPassword))})
	if err != nil {
		return fmt.Errorf("CreateSecret: %w", err)
	}
	p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String(s.name + "-proxy"), EngineFamily: s.family,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/conformance"), VpcSubnetIds: []string{"subnet-1", "subnet-2"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled}}})
	if err != nil {
		return fmt.Errorf("CreateDBProxy: %w", err)
	}
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String(s.name + "-proxy"),
		DBInstanceIdentifiers: []string{id}}); err != nil {
		return fmt.Errorf("RegisterDBProxyTargets: %w", err)
	}
	host, port := aws.ToString(p.DBProxy.Endpoint), s.proxyPort
	if h, pt, err := net.SplitHostPort(host); err == nil { // ports mode
		host, port = h, pt
	}
	s.proxy = [2]string{host, port}
	logf("%s proxy endpoint %s:%s", s.family, host, port)

	// Wait until the proxy answers a query.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ping(ctx, host, port)
		if err == nil {
			return nil
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

// superuser matches the SUPERUSER attribute in pgx's setup script.
var superuser = regexp.MustCompile(`(?i)\s+(with\s+)?superuser\b`)

// preparePgx runs pgx's testsetup/postgresql_setup.sql on the
// database as the master user: its SQL statements one by one, without the
// psql meta-commands (the role named after the OS user is not needed:
// every test connects with PGX_TEST_DATABASE) and without SUPERUSER.
func preparePgx(ctx context.Context, s *suite, host, port string) error {
	f, err := os.Open(filepath.Join(s.dir, "testsetup", "postgresql_setup.sql"))
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := pgx.Connect(ctx, pgxDSN(host, port))
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
