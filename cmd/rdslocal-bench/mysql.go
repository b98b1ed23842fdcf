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

	"github.com/aws/aws-sdk-go-v2/service/rds/types"
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
	rc, sm := b.awsClients()
	var ep string
	var err error
	if b.my.direct, ep, err = b.createStack(ctx, rc, sm, stack{instance: "bench-mariadb", engine: "mariadb", class: b.opt.myClass,
		secret: "bench-mariadb-creds", proxy: "bench-mysql-proxy", family: types.EngineFamilyMysql,
		clientAuth: types.ClientPasswordAuthType(b.opt.myAuth)}); err != nil {
		return err
	}
	// A bare Endpoint listens on 3306; in ports mode it carries its port.
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
	logf("MySQL proxy bench-mysql-proxy at %s (%s), pool MaxConnectionsPercent=MaxIdleConnectionsPercent=%d", b.my.proxy.addr(), b.opt.myAuth, b.opt.poolPct)
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
