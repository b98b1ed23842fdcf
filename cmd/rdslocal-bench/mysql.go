package main

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	_ "github.com/go-sql-driver/mysql"
	"github.com/rdslocal/rdslocal/cmd/internal/rdsproc"
)

// myBench is the MySQL section: sysbench against MariaDB directly and
// through the MYSQL proxy.
type myBench struct {
	direct, proxy    endpointT
	version          string // MariaDB's VERSION()
	sbVersion        string
	maxConns, pool   int
	runs             []runResult // mode = the sysbench test, clients = threads
	idle             []idleResult
	sample0, sample1 cpuSample
	start            time.Time
	db               *sql.DB // one direct connection, for the server's counters
	took             time.Duration
	done             bool
}

// ensureSysbench installs Debian's sysbench when it is missing.
func ensureSysbench(ctx context.Context) error {
	return ensurePackage(ctx, "sysbench", func() string {
		p, _ := exec.LookPath("sysbench")
		return p
	})
}

// runMySQL is the MySQL section: a MariaDB instance and a MYSQL proxy
// through the AWS API, sysbench against both, idle clients.
func (b *bench) runMySQL(ctx context.Context) error {
	b.my.start = time.Now()
	b.my.sample0 = machineCPU()
	if err := b.createMySQL(ctx); err != nil {
		return err
	}
	if err := b.prepareSysbench(ctx); err != nil {
		return err
	}
	if err := b.runSysbenchMatrix(ctx); err != nil {
		return err
	}
	if b.opt.myIdle > 0 {
		if err := b.idleMySQLClients(ctx); err != nil {
			return err
		}
	}
	if b.opt.perf {
		if err := b.perfMySQL(ctx); err != nil {
			return err
		}
	}
	b.my.sample1 = machineCPU()
	b.my.took = time.Since(b.my.start)
	b.my.done = true
	return nil
}

// mysqlDSN is a go-sql-driver DSN for e.
func (e endpointT) mysqlDSN() string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?timeout=30s", dbUser, dbPassword, net.JoinHostPort(e.host, strconv.Itoa(e.port)), dbName)
}

func (e endpointT) addr() string { return net.JoinHostPort(e.host, strconv.Itoa(e.port)) }

// createMySQL does through the AWS API what an application does: a
// MariaDB instance, a secret, a MYSQL proxy with that secret, its target
// and pool.
func (b *bench) createMySQL(ctx context.Context) error {
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(b.apiURL),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	rc := rds.NewFromConfig(cfg)
	sm := secretsmanager.NewFromConfig(cfg)

	t0 := time.Now()
	if _, err := rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("bench-mariadb"),
		DBInstanceClass: aws.String(b.opt.myClass), Engine: aws.String("mariadb"),
		MasterUsername: aws.String(dbUser), MasterUserPassword: aws.String(dbPassword), DBName: aws.String(dbName)}); err != nil {
		return fmt.Errorf("CreateDBInstance (mariadb): %w", err)
	}
	var inst types.DBInstance
	for {
		out, err := rc.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("bench-mariadb")})
		if err != nil {
			return fmt.Errorf("DescribeDBInstances: %w", err)
		}
		inst = out.DBInstances[0]
		st := aws.ToString(inst.DBInstanceStatus)
		if st == "available" && inst.Endpoint != nil {
			break
		}
		if st == "failed" || time.Since(t0) > 3*time.Minute {
			return fmt.Errorf("MariaDB instance is %q after %s\n%s", st, time.Since(t0).Round(time.Second), rdsproc.Tail(filepath.Join(b.tmp, "rdslocal.log"), 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	b.my.direct = endpointT{name: "direct", host: aws.ToString(inst.Endpoint.Address), port: int(aws.ToInt32(inst.Endpoint.Port))}
	logf("MariaDB instance available at %s after %s", b.my.direct.addr(), time.Since(t0).Round(time.Millisecond))

	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("bench-mariadb-creds"),
		SecretString: aws.String(fmt.Sprintf(`{"username":%q,"password":%q}`, dbUser, dbPassword))})
	if err != nil {
		return fmt.Errorf("CreateSecret: %w", err)
	}
	p, err := rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String("bench-mysql-proxy"), EngineFamily: types.EngineFamilyMysql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/bench-proxy"), VpcSubnetIds: []string{"subnet-1", "subnet-2"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled,
			ClientPasswordAuthType: types.ClientPasswordAuthType(b.opt.myAuth)}}})
	if err != nil {
		return fmt.Errorf("CreateDBProxy (MYSQL): %w", err)
	}
	if _, err := rc.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("bench-mysql-proxy"),
		DBInstanceIdentifiers: []string{"bench-mariadb"}}); err != nil {
		return fmt.Errorf("RegisterDBProxyTargets: %w", err)
	}
	pct := int32(b.opt.poolPct)
	if _, err := rc.ModifyDBProxyTargetGroup(ctx, &rds.ModifyDBProxyTargetGroupInput{DBProxyName: aws.String("bench-mysql-proxy"),
		TargetGroupName: aws.String("default"), ConnectionPoolConfig: &types.ConnectionPoolConfiguration{
			MaxConnectionsPercent: aws.Int32(pct), MaxIdleConnectionsPercent: aws.Int32(pct), ConnectionBorrowTimeout: aws.Int32(120)}}); err != nil {
		return fmt.Errorf("ModifyDBProxyTargetGroup: %w", err)
	}
	// A bare Endpoint listens on 3306; in ports mode it carries its port.
	ep := aws.ToString(p.DBProxy.Endpoint)
	b.my.proxy = endpointT{name: "rdslocal", host: ep, port: 3306}
	if h, port, err := net.SplitHostPort(ep); err == nil {
		n, _ := strconv.Atoi(port)
		b.my.proxy = endpointT{name: "rdslocal", host: h, port: n}
	}

	db, err := sql.Open("mysql", b.my.direct.mysqlDSN())
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	b.my.db = db
	b.onCleanup(func() { db.Close() })
	if err := db.QueryRowContext(ctx, "SELECT VERSION(), @@max_connections").Scan(&b.my.version, &b.my.maxConns); err != nil {
		return fmt.Errorf("query MariaDB: %w", err)
	}
	b.my.pool = max(1, b.my.maxConns*b.opt.poolPct/100)
	logf("MariaDB %s, max_connections %d, pool %d%% = %d connections", b.my.version, b.my.maxConns, b.opt.poolPct, b.my.pool)

	// Wait until the proxy answers a query (its target is healthy).
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := func() error {
			pdb, err := sql.Open("mysql", b.my.proxy.mysqlDSN())
			if err != nil {
				return err
			}
			defer pdb.Close()
			var n int
			return pdb.QueryRowContext(ctx, "SELECT 1").Scan(&n)
		}()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the MySQL proxy at %s does not answer: %v\n%s", b.my.proxy.addr(), err, rdsproc.Tail(filepath.Join(b.tmp, "rdslocal.log"), 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	logf("MySQL proxy bench-mysql-proxy at %s (%s), pool MaxConnectionsPercent=MaxIdleConnectionsPercent=%d", b.my.proxy.addr(), b.opt.myAuth, pct)
	return nil
}

// ensurePackage installs a Debian package when found reports it missing.
func ensurePackage(ctx context.Context, pkg string, found func() string) error {
	if found() != "" {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%s is not installed and we are not root: apt-get install %s", pkg, pkg)
	}
	logf("installing %s (apt-get install -y %s)", pkg, pkg)
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %v\n%s", pkg, err, out)
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
	if found() == "" {
		return fmt.Errorf("%s still not found after installing it", pkg)
	}
	return nil
}
