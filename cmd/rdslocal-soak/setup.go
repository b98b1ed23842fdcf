package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/rdslocal/rdslocal/cmd/internal/rdsproc"
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
	proxy    string // the proxy's endpoint address (port 5432, MySQL 3306)

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
	rdsproc.RaiseNoFile(s.opt.clients*4+2000, logf)
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
		rdsproc.KillStragglers(tmp, logf)
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
	p, err := rdsproc.Start(ctx, rdsproc.Options{Bin: s.opt.bin, Dir: s.tmp, Args: []string{"--db-backend", "process", "--log-level", "info"}, Logf: logf})
	if err != nil {
		return err
	}
	s.rdslocal, s.apiURL = p.Cmd, p.APIURL
	s.onCleanup(func() { p.Stop(60 * time.Second) })
	cfg := p.AWSConfig()
	s.rc, s.sm = rds.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg)
	return nil
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
	family := types.EngineFamilyPostgresql
	if s.mysql() {
		family = types.EngineFamilyMysql
	}
	p, err := s.rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String(proxyName), EngineFamily: family,
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
	driver := "pgx"
	if s.mysql() {
		driver = "mysql"
	}
	for {
		db, err := sql.Open(driver, s.proxyDSN())
		if err == nil {
			var n int
			err = db.QueryRowContext(ctx, "SELECT 1").Scan(&n)
			db.Close()
			if err == nil {
				logf("proxy %s at %s", proxyName, s.proxyAddr())
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxy at %s does not answer: %v", s.proxyAddr(), err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// mysql reports whether the soak runs a MySQL-family cluster and proxy.
func (s *soak) mysql() bool { return !strings.Contains(s.opt.engine, "postgres") }

// proxyAddr is the proxy endpoint's host:port.
func (s *soak) proxyAddr() string {
	if s.mysql() {
		return net.JoinHostPort(s.proxy, "3306")
	}
	return net.JoinHostPort(s.proxy, "5432")
}

// proxyDSN is the proxy's DSN: pgx's, or go-sql-driver/mysql's.
func (s *soak) proxyDSN() string {
	if s.mysql() {
		// interpolateParams: without it the driver prepares every
		// statement with arguments on the server, which pins the session
		// (as on RDS Proxy) and would make every client a pinned one.
		return fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=10s&interpolateParams=true", dbUser, dbPassword, s.proxyAddr(), dbName)
	}
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
