package testsuite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	_ "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/rdslocal/rdslocal/testsuite"
)

// dbOpen connects to a DB instance's real server with the master user.
func dbOpen(t *testing.T, engine, host string, port int, user, password, dbname string) (*sql.DB, error) {
	t.Helper()
	if engine == "postgres" || engine == "aurora-postgresql" {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable connect_timeout=5", host, port, user, password, dbname))
		if err != nil {
			return nil, err
		}
		conn, err := pgx.ConnectConfig(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		_ = conn.Close(context.Background())
		return sql.Open("pgx", cfg.ConnString())
	}
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s:%d)/%s?timeout=5s", user, password, host, port, dbname))
	if err != nil {
		return nil, err
	}
	return db, db.Ping()
}

func waitAvailable(t *testing.T, c *rds.Client, id string) types.DBInstance {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		inst := out.DBInstances[0]
		switch *inst.DBInstanceStatus {
		case "available":
			return inst
		case "failed":
			msg := ""
			for _, si := range inst.StatusInfos {
				msg += aws.ToString(si.Message)
			}
			t.Fatalf("instance %s failed: %s", id, msg)
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s still %s", id, *inst.DBInstanceStatus)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statusNow checks an instance's status without waiting ("": it is gone).
func statusNow(t *testing.T, c *rds.Client, id, want string) {
	t.Helper()
	out, err := c.DescribeDBInstances(context.Background(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	var nf *types.DBInstanceNotFoundFault
	switch {
	case want == "" && errors.As(err, &nf):
	case err != nil:
		t.Fatalf("describe %s: %v", id, err)
	case want == "":
		t.Fatalf("%s is still there (%s)", id, *out.DBInstances[0].DBInstanceStatus)
	case *out.DBInstances[0].DBInstanceStatus != want:
		t.Fatalf("%s is %s, want %s at once", id, *out.DBInstances[0].DBInstanceStatus, want)
	}
}

// TestInstancesRunRealServers drives a DB instance of each engine through
// the RDS API and checks the real server behind it at every step.
func TestInstancesRunRealServers(t *testing.T) {
	emu := testsuite.Start(t)
	c := rds.NewFromConfig(emu.AWSConfig)
	ctx := context.Background()
	for _, engine := range []string{"postgres", "mariadb"} {
		t.Run(engine, func(t *testing.T) {
			id := "real-" + engine
			start := time.Now()
			_, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{
				DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.micro"), Engine: aws.String(engine),
				MasterUsername: aws.String("master"), MasterUserPassword: aws.String("first-password"), DBName: aws.String("app"),
			})
			if err != nil {
				t.Fatal(err)
			}
			// CreateDBInstance answers "creating" once the server is
			// ready, so the next describe (a waiter's first) says
			// available.
			statusNow(t, c, id, "available")
			inst := waitAvailable(t, c, id)
			t.Logf("%s: CreateDBInstance to available in %v, version %s", engine, time.Since(start).Round(time.Millisecond), *inst.EngineVersion)
			host, port := *inst.Endpoint.Address, int(*inst.Endpoint.Port)
			db, err := dbOpen(t, engine, host, port, "master", "first-password", "app")
			if err != nil {
				t.Fatalf("connect with the master credentials: %v", err)
			}
			if _, err := db.Exec("CREATE TABLE kv (k int primary key, v text)"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO kv VALUES (1, 'one')"); err != nil {
				t.Fatal(err)
			}
			db.Close()

			if _, err := c.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
			statusNow(t, c, id, "available")
			if _, err := c.ModifyDBInstance(ctx, &rds.ModifyDBInstanceInput{DBInstanceIdentifier: aws.String(id), MasterUserPassword: aws.String("second-password"), ApplyImmediately: aws.Bool(true)}); err != nil {
				t.Fatal(err)
			}
			waitAvailable(t, c, id)
			if db, err := dbOpen(t, engine, host, port, "master", "first-password", "app"); err == nil {
				db.Close()
				t.Fatal("the old password still works")
			}
			db, err = dbOpen(t, engine, host, port, "master", "second-password", "app")
			if err != nil {
				t.Fatalf("new password: %v", err)
			}
			var v string
			if err := db.QueryRow("SELECT v FROM kv WHERE k = 1").Scan(&v); err != nil || v != "one" {
				t.Fatalf("row after reboot: %q %v", v, err)
			}
			db.Close()

			if _, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(id), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
				t.Fatal(err)
			}
			statusNow(t, c, id, "")
			if err := rds.NewDBInstanceDeletedWaiter(c).Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)}, time.Minute, func(o *rds.DBInstanceDeletedWaiterOptions) {
				o.MinDelay = 100 * time.Millisecond
				o.MaxDelay = time.Second
			}); err != nil {
				t.Fatal(err)
			}
			if conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), time.Second); err == nil {
				conn.Close()
				t.Fatal("the server still listens after delete")
			}
		})
	}
}

// TestClusterReplicates writes on a cluster's writer and reads the row on
// its reader, for each Aurora engine.
func TestClusterReplicates(t *testing.T) {
	emu := testsuite.Start(t)
	c := rds.NewFromConfig(emu.AWSConfig)
	ctx := context.Background()
	for _, engine := range []string{"aurora-postgresql", "aurora-mysql"} {
		t.Run(engine, func(t *testing.T) {
			cl := "clu-" + engine[len("aurora-"):]
			if _, err := c.CreateDBCluster(ctx, &rds.CreateDBClusterInput{DBClusterIdentifier: aws.String(cl), Engine: aws.String(engine),
				MasterUsername: aws.String("master"), MasterUserPassword: aws.String("cluster-password"), DatabaseName: aws.String("app")}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{cl + "-1", cl + "-2"} {
				if _, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.r6g.large"),
					Engine: aws.String(engine), DBClusterIdentifier: aws.String(cl)}); err != nil {
					t.Fatal(err)
				}
				waitAvailable(t, c, id)
			}
			out, err := c.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(cl)})
			if err != nil {
				t.Fatal(err)
			}
			var writer, reader types.DBInstance
			for _, m := range out.DBClusters[0].DBClusterMembers {
				d, _ := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: m.DBInstanceIdentifier})
				if *m.IsClusterWriter {
					writer = d.DBInstances[0]
				} else {
					reader = d.DBInstances[0]
				}
			}
			if writer.DBInstanceIdentifier == nil || reader.DBInstanceIdentifier == nil || *writer.DBInstanceIdentifier != cl+"-1" {
				t.Fatalf("members: %+v", out.DBClusters[0].DBClusterMembers)
			}
			w, err := dbOpen(t, engine, *writer.Endpoint.Address, int(*writer.Endpoint.Port), "master", "cluster-password", "app")
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if _, err := w.Exec("CREATE TABLE rep (id int primary key)"); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Exec("INSERT INTO rep VALUES (42)"); err != nil {
				t.Fatal(err)
			}
			r, err := dbOpen(t, engine, *reader.Endpoint.Address, int(*reader.Endpoint.Port), "master", "cluster-password", "app")
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			deadline := time.Now().Add(time.Second)
			for {
				var n int
				err := r.QueryRow("SELECT count(*) FROM rep WHERE id = 42").Scan(&n)
				if err == nil && n == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("row not on the reader within a second: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestRestartKeepsInstances stops the emulator and starts it again on the
// same data directory: the instance comes back on the same port with its
// data.
func TestRestartKeepsInstances(t *testing.T) {
	dir := searchableTempDir(t)
	emu := testsuite.Start(t, testsuite.WithDataDir(dir))
	c := rds.NewFromConfig(emu.AWSConfig)
	ctx := context.Background()
	if _, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("keep"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String("keep-password"), DBName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	before := waitAvailable(t, c, "keep")
	// A proxy in front of it, to listen again after the restart.
	sm := secretsmanager.NewFromConfig(emu.AWSConfig)
	sec, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("keep-creds"), SecretString: aws.String(`{"username":"master","password":"keep-password"}`)})
	if err != nil {
		t.Fatal(err)
	}
	px, err := c.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String("keep-proxy"), EngineFamily: types.EngineFamilyPostgresql,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/r"), VpcSubnetIds: []string{"subnet-1"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterDBProxyTargets(ctx, &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String("keep-proxy"), DBInstanceIdentifiers: []string{"keep"}}); err != nil {
		t.Fatal(err)
	}
	db, err := dbOpen(t, "postgres", *before.Endpoint.Address, int(*before.Endpoint.Port), "master", "keep-password", "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE kept AS SELECT 7 AS n"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	emu.Stop()

	emu = testsuite.Start(t, testsuite.WithDataDir(dir))
	c = rds.NewFromConfig(emu.AWSConfig)
	after := waitAvailable(t, c, "keep")
	if *after.Endpoint.Port != *before.Endpoint.Port {
		t.Fatalf("port changed across restart: %d → %d", *before.Endpoint.Port, *after.Endpoint.Port)
	}
	db, err = dbOpen(t, "postgres", *after.Endpoint.Address, int(*after.Endpoint.Port), "master", "keep-password", "app")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT n FROM kept").Scan(&n); err != nil || n != 7 {
		t.Fatalf("data after restart: %d %v", n, err)
	}
	// The proxy listens again at the same address and reaches the data.
	host, port := *px.DBProxy.Endpoint, 5432
	if h, p, err := net.SplitHostPort(host); err == nil {
		host, port = h, atoi(p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pdb, err := dbOpen(t, "postgres", host, port, "master", "keep-password", "app")
		if err == nil {
			err = pdb.QueryRow("SELECT n FROM kept").Scan(&n)
			pdb.Close()
		}
		if err == nil && n == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("through the proxy after restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// searchableTempDir is a temporary data directory the database servers'
// service users can reach (t.TempDir's parent is private to root).
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rdslocal-data-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// TestMultiAZStandby checks that a Multi-AZ instance has a hidden standby
// that replicates it, and that the standby goes with the instance.
func TestMultiAZStandby(t *testing.T) {
	emu := testsuite.Start(t)
	c := rds.NewFromConfig(emu.AWSConfig)
	ctx := context.Background()
	if _, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("maz"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String("maz-password"), DBName: aws.String("app"),
		MultiAZ: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	inst := waitAvailable(t, c, "maz")
	if !*inst.MultiAZ {
		t.Fatal("MultiAZ not reported")
	}
	standby, err := emu.Server.Engines().Get("000000000000.us-east-1.maz.standby")
	if err != nil || standby.Role != "replica" {
		t.Fatalf("standby: %+v %v", standby, err)
	}
	db, err := dbOpen(t, "postgres", *inst.Endpoint.Address, int(*inst.Endpoint.Port), "master", "maz-password", "app")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE t AS SELECT 1 AS n"); err != nil {
		t.Fatal(err)
	}
	sb, err := dbOpen(t, "postgres", standby.Host, standby.Port, "master", "maz-password", "app")
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	deadline := time.Now().Add(time.Second)
	for {
		var n int
		if err := sb.QueryRow("SELECT n FROM t").Scan(&n); err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby does not replicate the primary")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("maz"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if err := rds.NewDBInstanceDeletedWaiter(c).Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("maz")}, time.Minute, func(o *rds.DBInstanceDeletedWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.Server.Engines().Get("000000000000.us-east-1.maz.standby"); err == nil {
		t.Fatal("the standby outlived its instance")
	}
}

// TestExternalInstance registers an existing server (here one the same
// emulator started) as a DB instance with the rdslocal:endpoint tag:
// nothing is spawned, the master credentials are checked, and deleting the
// instance leaves the server running.
func TestExternalInstance(t *testing.T) {
	emu := testsuite.Start(t)
	c := rds.NewFromConfig(emu.AWSConfig)
	ctx := context.Background()
	if _, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String("real"), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String("ext-password"), DBName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	real := waitAvailable(t, c, "real")
	addr := net.JoinHostPort(*real.Endpoint.Address, strconv.Itoa(int(*real.Endpoint.Port)))
	create := func(id, password string) error {
		_, err := c.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.micro"),
			Engine: aws.String("postgres"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String(password), DBName: aws.String("app"),
			Tags: []types.Tag{{Key: aws.String("rdslocal:endpoint"), Value: aws.String(addr)}}})
		return err
	}
	if err := create("ext", "ext-password"); err != nil {
		t.Fatal(err)
	}
	ext := waitAvailable(t, c, "ext")
	if got := net.JoinHostPort(*ext.Endpoint.Address, strconv.Itoa(int(*ext.Endpoint.Port))); got != addr {
		t.Fatalf("external endpoint %s, want %s", got, addr)
	}
	// Wrong master credentials: the instance fails and says why.
	if err := create("ext-bad", "not-the-password"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.DescribeDBInstances(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("ext-bad")})
		if err != nil {
			t.Fatal(err)
		}
		if st := *out.DBInstances[0].DBInstanceStatus; st == "failed" {
			if len(out.DBInstances[0].StatusInfos) == 0 || aws.ToString(out.DBInstances[0].StatusInfos[0].Message) == "" {
				t.Fatal("failed without a reason")
			}
			break
		} else if st == "available" || time.Now().After(deadline) {
			t.Fatalf("external instance with a wrong password: %s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String("ext"), SkipFinalSnapshot: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if err := rds.NewDBInstanceDeletedWaiter(c).Wait(ctx, &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String("ext")}, time.Minute, func(o *rds.DBInstanceDeletedWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	}); err != nil {
		t.Fatal(err)
	}
	db, err := dbOpen(t, "postgres", *real.Endpoint.Address, int(*real.Endpoint.Port), "master", "ext-password", "app")
	if err != nil {
		t.Fatalf("the external server was stopped with its instance: %v", err)
	}
	db.Close()
}

// TestStartUsesProcessBackend: an emulator a test starts runs its DB
// instances as local processes whether or not a Docker daemon answers,
// unless the test asks for another backend.
func TestStartUsesProcessBackend(t *testing.T) {
	if got := testsuite.Start(t).Server.Engines().Backend(); got != "process" {
		t.Fatalf("default backend %q, want process", got)
	}
	if got := testsuite.Start(t, testsuite.WithDBBackend("auto")).Server.Engines().Backend(); got != "auto" {
		t.Fatalf("backend %q, want auto", got)
	}
}
