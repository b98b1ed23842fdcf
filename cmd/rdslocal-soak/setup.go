package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
)

const (
	dbUser     = "soak"
	dbPassword = "soak-password-1"
	dbName     = "soak"
	clusterID  = "soak"
	proxyName  = "soak-proxy"
)

type soak struct {
	opt   options
	start time.Time
	tmp   string

	mu       sync.Mutex
	cleanups []func()

	rdslocal *exec.Cmd
	apiURL   string
	rc       *rds.Client
	sm       *secretsmanager.Client
	proxy    string // the proxy's endpoint address (port 5432)

	lat  []latencyResult
	res  *soakResult
	info runInfo
}

// onCleanup registers f to run at the end, in reverse order.
func (s *soak) onCleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

func (s *soak) cleanup() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (s *soak) run(ctx context.Context) error {
	raiseNoFile(s.opt.clients*4 + 2000)
	tmp, err := os.MkdirTemp("", "rdslocal-soak-")
	if err != nil {
		return err
	}
	// The database servers run as their service users when we are root:
	// they must be able to reach their directories.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return err
	}
	s.tmp = tmp
	s.onCleanup(func() {
		killStragglers(tmp)
		if s.opt.keep {
			logf("kept %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	})
	logf("work directory %s", tmp)
	s.info = collectInfo()
	if err := s.startRdslocal(ctx); err != nil {
		return err
	}
	if s.opt.latency {
		if err := s.latency(ctx); err != nil {
			return err
		}
	}
	if s.opt.soak {
		if err := s.soak(ctx); err != nil {
			return err
		}
	}
	s.printReport()
	if s.opt.out == "" {
		return nil
	}
	return s.writeReport()
}

func (s *soak) startRdslocal(ctx context.Context) error {
	bin, err := filepath.Abs(s.opt.bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: %v (run `make build` first)", s.opt.bin, err)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	data := filepath.Join(s.tmp, "data")
	if err := os.Mkdir(data, 0o711); err != nil {
		return err
	}
	logPath := filepath.Join(s.tmp, "rdslocal.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--listen", addr, "--data-dir", data, "--db-backend", "process", "--log-level", "info")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches us; we stop it in order
	if err := cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	s.rdslocal = cmd
	s.onCleanup(func() {
		logf("stopping rdslocal (pid %d)", cmd.Process.Pid)
		stopProcess("rdslocal", cmd, 60*time.Second)
		lf.Close()
	})
	s.apiURL = "http://" + addr
	logf("rdslocal pid %d, API %s, log %s", cmd.Process.Pid, s.apiURL, logPath)
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(s.apiURL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	s.rc, s.sm = rds.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.apiURL + "/_rdslocal/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) || exited(cmd) {
			return fmt.Errorf("rdslocal did not become healthy: %v\n%s", err, tail(logPath, 20))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// createCluster makes an Aurora cluster with a writer and n readers and
// waits until every member is available.
func (s *soak) createCluster(ctx context.Context, engine, id, class string, readers int) error {
	if _, err := s.rc.CreateDBCluster(ctx, &rds.CreateDBClusterInput{DBClusterIdentifier: aws.String(id), Engine: aws.String(engine),
		MasterUsername: aws.String(dbUser), MasterUserPassword: aws.String(dbPassword), DatabaseName: aws.String(dbName)}); err != nil {
		return fmt.Errorf("CreateDBCluster %s: %w", id, err)
	}
	for i := 0; i <= readers; i++ {
		name := fmt.Sprintf("%s-%d", id, i+1)
		if _, err := s.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(name), DBInstanceClass: aws.String(class),
			Engine: aws.String(engine), DBClusterIdentifier: aws.String(id), PromotionTier: aws.Int32(int32(1 + i%3))}); err != nil {
			return fmt.Errorf("CreateDBInstance %s: %w", name, err)
		}
		if _, err := s.waitInstance(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// createInstance makes a DB instance and waits until it is available.
func (s *soak) createInstance(ctx context.Context, engine, id, class string, multiAZ bool) (types.DBInstance, error) {
	if _, err := s.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String(class),
		Engine: aws.String(engine), MasterUsername: aws.String(dbUser), MasterUserPassword: aws.String(dbPassword), DBName: aws.String(dbName),
		MultiAZ: aws.Bool(multiAZ)}); err != nil {
		return types.DBInstance{}, fmt.Errorf("CreateDBInstance %s: %w", id, err)
	}
	return s.waitInstance(ctx, id)
}

func (s *soak) waitInstance(ctx context.Context, id string) (types.DBInstance, error) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		in, err := s.instance(ctx, id)
		if err != nil {
			return in, err
		}
		switch aws.ToString(in.DBInstanceStatus) {
		case "available":
			return in, nil
		case "failed":
			return in, fmt.Errorf("DB instance %s failed: %s", id, aws.ToString(in.StatusInfos[0].Message))
		}
		if time.Now().After(deadline) {
			return in, fmt.Errorf("DB instance %s is still %s", id, aws.ToString(in.DBInstanceStatus))
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return in, err
		}
	}
}

func (s *soak) instance(ctx context.Context, id string) (types.DBInstance, error) {
	out, err := s.rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil {
		return types.DBInstance{}, err
	}
	return out.DBInstances[0], nil
}

// writer returns the cluster's writer and its port.
func (s *soak) writer(ctx context.Context, cluster string) (string, int, error) {
	out, err := s.rc.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(cluster)})
	if err != nil {
		return "", 0, err
	}
	for _, m := range out.DBClusters[0].DBClusterMembers {
		if aws.ToBool(m.IsClusterWriter) {
			in, err := s.instance(ctx, aws.ToString(m.DBInstanceIdentifier))
			if err != nil {
				return "", 0, err
			}
			return aws.ToString(in.DBInstanceIdentifier), int(aws.ToInt32(in.Endpoint.Port)), nil
		}
	}
	return "", 0, errors.New("the cluster has no writer")
}

// settled reports whether the cluster and every member are available and
// every instance target of the proxy is AVAILABLE; why says what is not.
func (s *soak) settled(ctx context.Context) (bool, string) {
	out, err := s.rc.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(clusterID)})
	if err != nil {
		return false, err.Error()
	}
	cl := out.DBClusters[0]
	if st := aws.ToString(cl.Status); st != "available" {
		return false, "cluster " + st
	}
	for _, m := range cl.DBClusterMembers {
		in, err := s.instance(ctx, aws.ToString(m.DBInstanceIdentifier))
		if err != nil {
			return false, err.Error()
		}
		if st := aws.ToString(in.DBInstanceStatus); st != "available" {
			return false, aws.ToString(in.DBInstanceIdentifier) + " " + st
		}
	}
	tg, err := s.rc.DescribeDBProxyTargets(ctx, &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String(proxyName)})
	if err != nil {
		return false, err.Error()
	}
	for _, t := range tg.Targets {
		if t.Type == types.TargetTypeRdsInstance && (t.TargetHealth == nil || t.TargetHealth.State != types.TargetStateAvailable) {
			why := "no health"
			if t.TargetHealth != nil {
				why = fmt.Sprintf("%s %s %s", t.TargetHealth.State, t.TargetHealth.Reason, aws.ToString(t.TargetHealth.Description))
			}
			return false, "target " + aws.ToString(t.RdsResourceId) + ": " + why
		}
	}
	return true, ""
}

// waitSettled waits until settled, up to d.
func (s *soak) waitSettled(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ok, why := s.settled(ctx)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster did not settle within %s: %s", d, why)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// createProxy makes the secret and the proxy in front of the cluster and
// waits until the proxy answers a query.
func (s *soak) createProxy(ctx context.Context) error {
	sec, err := s.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("soak-creds"),
		SecretString: aws.String(fmt.Sprintf(`{"username":%q,"password":%q}`, dbUser, dbPassword))})
	if err != nil {
		return fmt.Errorf("CreateSecret: %w", err)
	}
	p, err := s.rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String(proxyName), EngineFamily: types.EngineFamilyPostgresql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/proxy"), VpcSubnetIds: []string{"subnet-1"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled}}})
	if err != nil {
		return fmt.Errorf("CreateDBProxy: %w", err)
	}
	if _, err := s.rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String(proxyName),
		DBClusterIdentifiers: []string{clusterID}}); err != nil {
		return fmt.Errorf("RegisterDBProxyTargets: %w", err)
	}
	s.proxy = aws.ToString(p.DBProxy.Endpoint)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.Connect(ctx, s.proxyDSN())
		if err == nil {
			var n int
			err = c.QueryRow(ctx, "SELECT 1").Scan(&n)
			c.Close(ctx)
			if err == nil {
				logf("proxy %s at %s:5432", proxyName, s.proxy)
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy at %s:5432 does not answer: %v", s.proxy, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func (s *soak) proxyDSN() string {
	return fmt.Sprintf("host=%s port=5432 user=%s password=%s dbname=%s sslmode=disable connect_timeout=10", s.proxy, dbUser, dbPassword, dbName)
}

// openDirect connects to an instance's server as the master user.
func openDirect(engine string, in types.DBInstance) (*sql.DB, error) {
	host, port := aws.ToString(in.Endpoint.Address), int(aws.ToInt32(in.Endpoint.Port))
	var db *sql.DB
	var err error
	if strings.Contains(engine, "postgres") {
		db, err = sql.Open("pgx", fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=10", host, port, dbUser, dbPassword, dbName))
	} else {
		db, err = sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=10s", dbUser, dbPassword, net.JoinHostPort(host, strconv.Itoa(port)), dbName))
	}
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// serverPIDs lists the processes of the server of DB instance id (they
// all work in its data directory, under the engine layer's directory).
func (s *soak) serverPIDs(id string) ([]int, error) {
	dirs, _ := filepath.Glob(filepath.Join(s.tmp, "data", "engine", "instances", "*."+id, "data"))
	if len(dirs) != 1 {
		return nil, fmt.Errorf("the data directory of %s: found %v", id, dirs)
	}
	data, err := filepath.EvalSymlinks(dirs[0])
	if err != nil {
		return nil, err
	}
	var pids []int
	cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
	for _, c := range cwds {
		if dir, err := os.Readlink(c); err == nil && dir == data {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no process of %s's server", id)
	}
	return pids, nil
}

// killServer kills every process of an instance's server with SIGKILL,
// as when its host fails (stopped first, so that none acts while the
// others die).
func (s *soak) killServer(id string) error {
	pids, err := s.serverPIDs(id)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func exited(cmd *exec.Cmd) bool {
	return syscall.Kill(cmd.Process.Pid, 0) != nil || procState(cmd.Process.Pid) == "Z"
}

func procState(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	st := string(b)
	if i := strings.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 {
		return st[i+2 : i+3]
	}
	return ""
}

// stopProcess ends a process this run started: SIGTERM, then SIGKILL to
// its process group after grace.
func stopProcess(name string, cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return
	case <-time.After(grace):
	}
	logf("%s did not stop within %s; killing it", name, grace)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
	<-done
}

// killStragglers ends processes whose command line names dir (database
// servers of our instances, if rdslocal did not stop them), by pid.
func killStragglers(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if pid == os.Getpid() {
			continue
		}
		if cl, err := os.ReadFile(p); err == nil && strings.Contains(string(cl), dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// raiseNoFile lifts RLIMIT_NOFILE to at least n (up to the hard limit, or
// beyond as root); rdslocal inherits it.
func raiseNoFile(n int) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	want := uint64(n)
	if l.Max != ^uint64(0) && want > l.Max {
		if os.Geteuid() == 0 {
			l.Max = want
		} else {
			want = l.Max
		}
	}
	if l.Cur < want {
		l.Cur = want
	}
	// Set it even when it is high enough, so that Go does not restore
	// its startup value for child processes.
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		logf("cannot raise the open-file limit to %d: %v", n, err)
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
