package testsuite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/testsuite"
)

// ha drives the high-availability tests: clusters and Multi-AZ instances
// made through the AWS API, their real servers, and a proxy (PostgreSQL
// or MySQL) in front of them.
type ha struct {
	emu *testsuite.Emulator
	rc  *rds.Client
	sm  *secretsmanager.Client
}

const haPassword = "ha-password-1"

func newHA(t *testing.T) *ha {
	var opts []testsuite.Option
	if os.Getenv("RDSLOCAL_TEST_LOG") != "" {
		opts = append(opts, testsuite.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	emu := testsuite.Start(t, opts...)
	return &ha{emu: emu, rc: rds.NewFromConfig(emu.AWSConfig), sm: secretsmanager.NewFromConfig(emu.AWSConfig)}
}

func isPG(engine string) bool { return strings.Contains(engine, "postgres") }

// eid is the engine layer's name of an instance.
func eid(id string) string { return "000000000000.us-east-1." + id }

type member struct {
	id, class string
	tier      int32
}

// cluster creates a cluster and its members (the first is the writer)
// and waits until every member is available.
func (h *ha) cluster(t *testing.T, engine, id string, members ...member) {
	t.Helper()
	ctx := context.Background()
	if _, err := h.rc.CreateDBCluster(ctx, &rds.CreateDBClusterInput{DBClusterIdentifier: aws.String(id), Engine: aws.String(engine),
		MasterUsername: aws.String("master"), MasterUserPassword: aws.String(haPassword), DatabaseName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if _, err := h.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(m.id), DBInstanceClass: aws.String(m.class),
			Engine: aws.String(engine), DBClusterIdentifier: aws.String(id), PromotionTier: aws.Int32(m.tier)}); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, h.rc, m.id)
	}
}

// proxy creates a proxy of the engine's family in front of a cluster or
// an instance and returns its endpoint.
func (h *ha) proxy(t *testing.T, engine, name, clusterID, instanceID string) string {
	t.Helper()
	ctx := context.Background()
	sec, err := h.sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name + "-creds"),
		SecretString: aws.String(`{"username":"master","password":"` + haPassword + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	family := types.EngineFamilyMysql
	if isPG(engine) {
		family = types.EngineFamilyPostgresql
	}
	p, err := h.rc.CreateDBProxy(ctx, &rds.CreateDBProxyInput{DBProxyName: aws.String(name), EngineFamily: family,
		RoleArn: aws.String("arn:aws:iam::000000000000:role/proxy"), VpcSubnetIds: []string{"subnet-1"},
		Auth: []types.UserAuthConfig{{AuthScheme: types.AuthSchemeSecrets, SecretArn: sec.ARN, IAMAuth: types.IAMAuthModeDisabled}}})
	if err != nil {
		t.Fatal(err)
	}
	in := &rds.RegisterDBProxyTargetsInput{DBProxyName: aws.String(name)}
	if clusterID != "" {
		in.DBClusterIdentifiers = []string{clusterID}
	} else {
		in.DBInstanceIdentifiers = []string{instanceID}
	}
	if _, err := h.rc.RegisterDBProxyTargets(ctx, in); err != nil {
		t.Fatal(err)
	}
	return *p.DBProxy.Endpoint
}

// viaProxy connects to a PostgreSQL proxy endpoint as the master user.
func viaProxy(t *testing.T, endpoint string) *pgx.Conn {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=5432 user=master password=%s dbname=app sslmode=disable connect_timeout=10", endpoint, haPassword))
		if err == nil {
			var n int
			if err = c.QueryRow(context.Background(), "SELECT 1").Scan(&n); err == nil {
				t.Cleanup(func() { c.Close(context.Background()) })
				return c
			}
			c.Close(context.Background())
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect through the proxy %s: %v", endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// instance describes one DB instance.
func (h *ha) instance(t *testing.T, id string) types.DBInstance {
	t.Helper()
	out, err := h.rc.DescribeDBInstances(context.Background(), &rds.DescribeDBInstancesInput{DBInstanceIdentifier: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out.DBInstances[0]
}

// open connects to an instance's server directly as the master user.
func (h *ha) open(t *testing.T, engine, id string) *sql.DB {
	t.Helper()
	in := h.instance(t, id)
	db, err := dbOpen(t, engine, *in.Endpoint.Address, int(*in.Endpoint.Port), "master", haPassword, "app")
	if err != nil {
		t.Fatalf("connect to %s: %v", id, err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// writer is the cluster's writer as DescribeDBClusters reports it.
func (h *ha) writer(t *testing.T, clusterID string) string {
	t.Helper()
	out, err := h.rc.DescribeDBClusters(context.Background(), &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(clusterID)})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.DBClusters[0].DBClusterMembers {
		if *m.IsClusterWriter {
			return *m.DBInstanceIdentifier
		}
	}
	return ""
}

// settle waits until the cluster's writer is want and every member is
// available and in service: the writer a target, every reader replicating
// from it (its proxy target health is not UNAVAILABLE for a reason of
// ours).
func (h *ha) settle(t *testing.T, clusterID, want, proxy string, members ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var why string
		if w := h.writer(t, clusterID); w != want {
			why = "writer is " + w
		}
		for _, m := range members {
			if st := *h.instance(t, m).DBInstanceStatus; st != "available" && why == "" {
				why = m + " is " + st
			}
		}
		if why == "" {
			for id, th := range h.targetHealth(t, proxy) {
				if th.Reason == types.TargetHealthReasonInvalidReplicationState || th.Reason == types.TargetHealthReasonUnreachable && th.Description != nil && !strings.Contains(*th.Description, "running proxy") {
					why = fmt.Sprintf("proxy target %s: %s %s", id, th.Reason, aws.ToString(th.Description))
				}
			}
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster %s did not settle: %s", clusterID, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// targetHealth is the health of each RDS_INSTANCE target of a proxy.
func (h *ha) targetHealth(t *testing.T, proxy string) map[string]types.TargetHealth {
	t.Helper()
	out, err := h.rc.DescribeDBProxyTargets(context.Background(), &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String(proxy)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]types.TargetHealth{}
	for _, tg := range out.Targets {
		if tg.Type == types.TargetTypeRdsInstance && tg.TargetHealth != nil {
			m[*tg.RdsResourceId] = *tg.TargetHealth
		}
	}
	return m
}

// rolesAgree checks that DescribeDBClusters, DescribeDBProxyTargets and
// each server (pg_is_in_recovery(), @@read_only) say the same about every
// member.
func (h *ha) rolesAgree(t *testing.T, engine, clusterID, proxy string) {
	t.Helper()
	ctx := context.Background()
	out, err := h.rc.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(clusterID)})
	if err != nil {
		t.Fatal(err)
	}
	targets, err := h.rc.DescribeDBProxyTargets(ctx, &rds.DescribeDBProxyTargetsInput{DBProxyName: aws.String(proxy)})
	if err != nil {
		t.Fatal(err)
	}
	role := map[string]types.TargetRole{}
	for _, tg := range targets.Targets {
		if tg.Type == types.TargetTypeRdsInstance {
			role[*tg.RdsResourceId] = tg.Role
		}
	}
	for _, m := range out.DBClusters[0].DBClusterMembers {
		id := *m.DBInstanceIdentifier
		db := h.open(t, engine, id)
		q := "SELECT NOT pg_is_in_recovery()"
		if !isPG(engine) {
			q = "SELECT @@read_only = 0"
		}
		var writable bool
		if err := db.QueryRow(q).Scan(&writable); err != nil {
			t.Fatal(err)
		}
		wantRole := types.TargetRoleReadOnly
		if *m.IsClusterWriter {
			wantRole = types.TargetRoleReadWrite
		}
		if writable != *m.IsClusterWriter || role[id] != wantRole {
			t.Errorf("%s: IsClusterWriter %v, proxy target role %s, server writable %v", id, *m.IsClusterWriter, role[id], writable)
		}
	}
}

// hasRow waits until row id is readable on db.
func hasRow(t *testing.T, db *sql.DB, id int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := db.QueryRow(fmt.Sprintf("SELECT count(*) FROM t WHERE id = %d", id)).Scan(&n)
		if err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("row %d not there: %d %v", id, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// refusesWrites checks that a replica refuses a write with the engine's
// read-only error.
func refusesWrites(t *testing.T, engine string, db *sql.DB) {
	t.Helper()
	_, err := db.Exec("INSERT INTO t VALUES (999, 'nope')")
	if err == nil {
		t.Fatal("a replica took a write")
	}
	want := "25006" // read_only_sql_transaction
	if !isPG(engine) {
		want = "1290" // ER_OPTION_PREVENTS_STATEMENT (--read-only)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("write on a replica: %v, want %s", err, want)
	}
}

// events returns the messages of DescribeEvents for a source.
func (h *ha) events(t *testing.T, srcType types.SourceType, id string) []string {
	t.Helper()
	var msgs []string
	p := rds.NewDescribeEventsPaginator(h.rc, &rds.DescribeEventsInput{SourceType: srcType, SourceIdentifier: aws.String(id), Duration: aws.Int32(60)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range out.Events {
			msgs = append(msgs, *e.Message)
		}
	}
	return msgs
}

// wantEvents waits until the source's events include every message of want
// in that order.
func (h *ha) wantEvents(t *testing.T, srcType types.SourceType, id string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got := h.events(t, srcType, id)
		i := 0
		for _, m := range got {
			if i < len(want) && m == want[i] {
				i++
			}
		}
		if i == len(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events of %s %s: %q, want in order %q", srcType, id, got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// errFormerWriter: a write succeeded, but on the writer a failover is
// replacing (the failover had not begun yet).
var errFormerWriter = errors.New("written on the former writer")

// writeUntilOK writes through exec until a write succeeds and returns how
// long it took and how many attempts failed.
func writeUntilOK(t *testing.T, what string, exec func() error) (time.Duration, int) {
	t.Helper()
	start := time.Now()
	failed := 0
	for {
		err := exec()
		if err == nil {
			return time.Since(start), failed
		}
		if errors.Is(err, errFormerWriter) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if failed == 0 {
			t.Logf("%s: first failed write after %v: %v", what, time.Since(start).Round(time.Millisecond), err)
		}
		failed++
		if time.Since(start) > time.Minute {
			t.Fatalf("%s: no successful write within a minute: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxyClient is one client connection of a proxy endpoint: pgx for
// PostgreSQL, one go-sql-driver connection for MySQL.
type proxyClient struct {
	pg *pgx.Conn
	my *myConn
}

// myConn is one go-sql-driver connection and its pool, closed together.
type myConn struct {
	*sql.Conn
	db *sql.DB
}

func (c *myConn) Close() error {
	c.Conn.Close()
	return c.db.Close()
}

// viaProxyAny connects to a proxy endpoint of the engine's family as the
// master user.
func (h *ha) viaProxyAny(t *testing.T, engine, endpoint string) *proxyClient {
	t.Helper()
	if isPG(engine) {
		return &proxyClient{pg: viaProxy(t, endpoint)}
	}
	return &proxyClient{my: viaMySQLProxy(t, endpoint, "")}
}

// viaMySQLProxy connects to a MySQL proxy endpoint as the master user:
// one connection, kept (params are extra DSN parameters).
func viaMySQLProxy(t *testing.T, endpoint, params string) *myConn {
	t.Helper()
	c, err := dialMySQLProxy(endpoint, params, 20*time.Second)
	if err != nil {
		t.Fatalf("connect through the proxy %s: %v", endpoint, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialMySQLProxy is viaMySQLProxy without a test: the caller closes the
// connection (which closes its pool).
func dialMySQLProxy(endpoint, params string, wait time.Duration) (*myConn, error) {
	dsn := fmt.Sprintf("master:%s@tcp(%s)/app?timeout=10s", haPassword, mysqlProxyAddr(endpoint))
	if params != "" {
		dsn += "&" + params
	}
	deadline := time.Now().Add(wait)
	for {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		c, err := db.Conn(context.Background())
		if err == nil {
			if err = c.PingContext(context.Background()); err == nil {
				return &myConn{c, db}, nil
			}
			c.Close()
		}
		db.Close()
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *proxyClient) exec(q string) error {
	if c.pg != nil {
		_, err := c.pg.Exec(context.Background(), q)
		return err
	}
	_, err := c.my.ExecContext(context.Background(), q)
	return err
}

// writePort writes row id and returns the port of the server that took it.
func (c *proxyClient) writePort(id int, v string) (int32, error) {
	ctx := context.Background()
	var port int32
	if c.pg != nil {
		err := c.pg.QueryRow(ctx, fmt.Sprintf("INSERT INTO t VALUES (%d, '%s') RETURNING inet_server_port()", id, v)).Scan(&port)
		return port, err
	}
	// One transaction, so that the write and @@port are the same server's.
	tx, err := c.my.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(fmt.Sprintf("INSERT INTO t VALUES (%d, '%s')", id, v)); err != nil {
		tx.Rollback()
		return 0, err
	}
	if err := tx.QueryRow("SELECT @@port").Scan(&port); err != nil {
		tx.Rollback()
		return 0, err
	}
	return port, tx.Commit()
}

// carriesOn checks that a client that stayed idle through a failover
// carries on against the new writer without an error.
func (c *proxyClient) carriesOn(t *testing.T, row int) {
	t.Helper()
	if err := c.exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'idle')", row)); err != nil {
		t.Fatalf("a client idle through the failover: %v", err)
	}
}

func (c *proxyClient) close() {
	if c.pg != nil {
		c.pg.Close(context.Background())
	} else {
		c.my.Close()
	}
}

// probeWritesAny writes through the proxy until a write succeeds on a
// server other than the former writer's (port formerPort): a client that
// keeps working through a failover. A statement in flight when the writer
// goes away fails, as on RDS Proxy, and may end the session; the client
// then connects again. It returns how long it took and how many attempts
// failed.
func probeWritesAny(t *testing.T, engine, endpoint string, formerPort int32, next func() int) (time.Duration, int) {
	t.Helper()
	var c *proxyClient
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	return writeUntilOK(t, "client writing through the proxy", func() error {
		if c == nil {
			c = &proxyClient{}
			var err error
			if isPG(engine) {
				c.pg, err = pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=5432 user=master password=%s dbname=app sslmode=disable connect_timeout=10", endpoint, haPassword))
			} else {
				c.my, err = dialMySQLProxy(endpoint, "", 0)
			}
			if err != nil {
				c = nil
				return err
			}
		}
		port, err := c.writePort(next(), "probe")
		if err == nil && port == formerPort {
			return errFormerWriter
		}
		if err != nil {
			c.close()
			c = nil
		}
		return err
	})
}

// adminExec runs statements as the engine layer's internal administrator
// on an instance's server (its password is in the instance's state file,
// as an operator with a shell would find it): the tests break replication
// as only a superuser can.
func (h *ha) adminExec(t *testing.T, engine, id string, stmts ...string) {
	t.Helper()
	inst, err := h.emu.Server.Engines().Get(eid(id))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(inst.Dir, "instance.json"))
	if err != nil {
		t.Fatal(err)
	}
	var md struct{ AdminPassword string }
	if err := json.Unmarshal(b, &md); err != nil {
		t.Fatal(err)
	}
	dbname := "postgres"
	if !isPG(engine) {
		dbname = ""
	}
	db, err := dbOpen(t, engine, inst.Host, inst.Port, "rdsadmin", md.AdminPassword, dbname)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestClusterFailoverDemotes: FailoverDBCluster hands the writer role to a
// reader with no write lost; the former writer is rebuilt as a replica of
// the new one, gets what is written there and refuses writes; the API,
// the proxy's targets and the servers agree on every role; the events say
// what happened. Clients write through the cluster's proxy (PostgreSQL or
// MySQL); an idle one carries on against the new writer with no error.
func TestClusterFailoverDemotes(t *testing.T) {
	h := newHA(t)
	ctx := context.Background()
	for _, engine := range []string{"aurora-postgresql", "aurora-mysql"} {
		t.Run(engine, func(t *testing.T) {
			cl := "fo-" + engine[len("aurora-"):]
			h.cluster(t, engine, cl, member{cl + "-1", "db.r6g.large", 1}, member{cl + "-2", "db.r6g.large", 1})
			proxy := cl + "-proxy"
			endpoint := h.proxy(t, engine, proxy, cl, "")
			w := h.open(t, engine, cl+"-1")
			if _, err := w.Exec("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))"); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Exec("INSERT INTO t VALUES (1, 'before')"); err != nil {
				t.Fatal(err)
			}
			idle := h.viaProxyAny(t, engine, endpoint)
			if err := idle.exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'via-proxy')", 2)); err != nil {
				t.Fatal(err)
			}
			formerPort := *h.instance(t, cl+"-1").Endpoint.Port
			if _, err := h.rc.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: aws.String(cl)}); err != nil {
				t.Fatal(err)
			}
			n := 10
			took, failed := probeWritesAny(t, engine, endpoint, formerPort, func() int { n++; return n })
			t.Logf("figure: %s FailoverDBCluster call → first write through the proxy: %v (%d failed attempts)", engine, took.Round(time.Millisecond), failed)
			h.settle(t, cl, cl+"-2", proxy, cl+"-1", cl+"-2")
			h.rolesAgree(t, engine, cl, proxy)

			nw, old := h.open(t, engine, cl+"-2"), h.open(t, engine, cl+"-1")
			hasRow(t, nw, 1)
			hasRow(t, nw, 2)
			hasRow(t, nw, n) // the probe's acknowledged write
			idle.carriesOn(t, 4)
			hasRow(t, nw, 4)
			if _, err := nw.Exec("INSERT INTO t VALUES (3, 'on-new-writer')"); err != nil {
				t.Fatal(err)
			}
			hasRow(t, old, 3)
			refusesWrites(t, engine, old)
			h.wantEvents(t, types.SourceTypeDbCluster, cl,
				"Started same AZ failover to DB instance: "+cl+"-2.", "Completed failover to DB instance: "+cl+"-2.")
			h.wantEvents(t, types.SourceTypeDbInstance, cl+"-1", "DB instance restarted.")
		})
	}
}

// TestWriterKilledFailsOver: the writer's server is killed with SIGKILL.
// The reader chosen by promotion tier, then size, is promoted on its own;
// the other readers follow it; the dead writer is restarted and rebuilt
// as a reader. An idle client of the proxy (PostgreSQL or MySQL) carries
// on against the new writer; the time from the death to the first
// successful write through the proxy is printed.
func TestWriterKilledFailsOver(t *testing.T) {
	h := newHA(t)
	for _, engine := range []string{"aurora-postgresql", "aurora-mysql"} {
		t.Run(engine, func(t *testing.T) {
			cl := "kill-" + engine[len("aurora-"):]
			w, big, pick, small := cl+"-w", cl+"-big", cl+"-pick", cl+"-small"
			// big is larger but in a worse tier; pick beats small on size.
			h.cluster(t, engine, cl, member{w, "db.r6g.large", 1}, member{big, "db.r6g.4xlarge", 2},
				member{pick, "db.r6g.xlarge", 1}, member{small, "db.t3.medium", 1})
			proxy := cl + "-proxy"
			endpoint := h.proxy(t, engine, proxy, cl, "")
			wdb := h.open(t, engine, w)
			for _, s := range []string{"CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'before')"} {
				if _, err := wdb.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			// Every reader has the row (synchronous replication waits for
			// one of them; the others catch up in a moment).
			for _, id := range []string{big, pick, small} {
				hasRow(t, h.open(t, engine, id), 1)
			}
			idle := h.viaProxyAny(t, engine, endpoint)
			srv, err := h.emu.Server.Engines().Get(eid(w))
			if err != nil || srv.PID == 0 {
				t.Fatalf("writer's server: %+v %v", srv, err)
			}
			killServer(t, srv.Dir)
			n := 10
			took, failed := probeWritesAny(t, engine, endpoint, int32(srv.Port), func() int { n++; return n })
			t.Logf("figure: %s writer SIGKILLed → first write through the proxy: %v (%d failed attempts)", engine, took.Round(time.Millisecond), failed)
			if err := h.viaProxyAny(t, engine, endpoint).exec("INSERT INTO t VALUES (2, 'new-client')"); err != nil {
				t.Fatal(err)
			}
			h.settle(t, cl, pick, proxy, w, big, pick, small)
			h.rolesAgree(t, engine, cl, proxy)
			nw := h.open(t, engine, pick)
			hasRow(t, nw, 1)
			hasRow(t, nw, 2)
			hasRow(t, nw, n) // the probe's acknowledged write
			idle.carriesOn(t, 4)
			hasRow(t, nw, 4)
			if _, err := nw.Exec("INSERT INTO t VALUES (3, 'later')"); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{w, big, small} {
				db := h.open(t, engine, id)
				hasRow(t, db, 3)
				refusesWrites(t, engine, db)
			}
			h.wantEvents(t, types.SourceTypeDbCluster, cl,
				"Started same AZ failover to DB instance: "+pick+".", "Completed failover to DB instance: "+pick+".")
			h.wantEvents(t, types.SourceTypeDbInstance, w, "DB instance restarted.")
		})
	}
}

// TestMultiAZForceFailover: RebootDBInstance with ForceFailover promotes
// the hidden standby and rebuilds the former primary as the new standby,
// twice (there and back); then the primary's server is killed and the
// standby takes over by itself. The proxy endpoint stays the same; the
// instance's own endpoint moves to the server that now serves it.
func TestMultiAZForceFailover(t *testing.T) {
	h := newHA(t)
	ctx := context.Background()
	for _, engine := range []string{"postgres", "mariadb"} {
		t.Run(engine, func(t *testing.T) {
			id := "maz-" + engine
			if _, err := h.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.micro"),
				Engine: aws.String(engine), MasterUsername: aws.String("master"), MasterUserPassword: aws.String(haPassword), DBName: aws.String("app"),
				MultiAZ: aws.Bool(true)}); err != nil {
				t.Fatal(err)
			}
			waitAvailable(t, h.rc, id)
			endpoint := h.proxy(t, engine, id+"-proxy", "", id)
			db := h.open(t, engine, id)
			for _, s := range []string{"CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'before')"} {
				if _, err := db.Exec(s); err != nil {
					t.Fatal(err)
				}
			}
			idle := h.viaProxyAny(t, engine, endpoint)
			n := 100
			for round, standby := range []string{eid(id), eid(id) + ".standby"} {
				// standby is the server that serves as the standby after
				// this round.
				before := h.instance(t, id)
				if _, err := h.rc.RebootDBInstance(ctx, &rds.RebootDBInstanceInput{DBInstanceIdentifier: aws.String(id), ForceFailover: aws.Bool(true)}); err != nil {
					t.Fatal(err)
				}
				took, failed := probeWritesAny(t, engine, endpoint, *before.Endpoint.Port, func() int { n++; return n })
				t.Logf("figure: %s Multi-AZ force failover %d: call → first write through the proxy: %v (%d failed attempts)", engine, round+1, took.Round(time.Millisecond), failed)
				after := waitAvailable(t, h.rc, id)
				if *after.Endpoint.Port == *before.Endpoint.Port {
					t.Fatalf("round %d: the instance's endpoint did not move to the promoted standby", round+1)
				}
				if aws.ToString(after.AvailabilityZone) != aws.ToString(before.SecondaryAvailabilityZone) ||
					aws.ToString(after.SecondaryAvailabilityZone) != aws.ToString(before.AvailabilityZone) || *after.AvailabilityZone == *before.AvailabilityZone {
					t.Fatalf("round %d: zones %s/%s before, %s/%s after: the standby's zone did not become the instance's", round+1,
						aws.ToString(before.AvailabilityZone), aws.ToString(before.SecondaryAvailabilityZone), aws.ToString(after.AvailabilityZone), aws.ToString(after.SecondaryAvailabilityZone))
				}
				deadline := time.Now().Add(time.Minute)
				for {
					sb, err := h.emu.Server.Engines().Get(standby)
					if err == nil && sb.Role == "replica" && sb.Status == "available" && sb.Replication.Running {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("round %d: the former primary is not a replicating standby: %+v %v", round+1, sb, err)
					}
					time.Sleep(100 * time.Millisecond)
				}
				idle.carriesOn(t, 50+round)
				pdb := h.open(t, engine, id)
				row := 10 + round
				if _, err := pdb.Exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'round')", row)); err != nil {
					t.Fatal(err)
				}
				sb, _ := h.emu.Server.Engines().Get(standby)
				sdb, err := dbOpen(t, engine, sb.Host, sb.Port, "master", haPassword, "app")
				if err != nil {
					t.Fatal(err)
				}
				hasRow(t, sdb, 1)
				hasRow(t, sdb, row)
				refusesWrites(t, engine, sdb)
				sdb.Close()
			}

			// The primary's server dies: the standby takes over by itself.
			before := h.instance(t, id)
			prim, err := h.emu.Server.Engines().Get(eid(id))
			if err != nil || prim.Role != "primary" {
				t.Fatalf("primary after two failovers: %+v %v", prim, err)
			}
			killServer(t, prim.Dir)
			took, failed := probeWritesAny(t, engine, endpoint, *before.Endpoint.Port, func() int { n++; return n })
			t.Logf("figure: %s Multi-AZ primary SIGKILLed → first write through the proxy: %v (%d failed attempts)", engine, took.Round(time.Millisecond), failed)
			deadline := time.Now().Add(time.Minute)
			for {
				after := h.instance(t, id)
				sb, err := h.emu.Server.Engines().Get(eid(id))
				if *after.DBInstanceStatus == "available" && *after.Endpoint.Port != *before.Endpoint.Port &&
					err == nil && sb.Role == "replica" && sb.Status == "available" && sb.Replication.Running {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the primary's death: instance %s port %d, former primary %+v %v", *after.DBInstanceStatus, *after.Endpoint.Port, sb, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			idle.carriesOn(t, 60)
			hasRow(t, h.open(t, engine, id), 11)
			h.wantEvents(t, types.SourceTypeDbInstance, id,
				"Multi-AZ instance failover started.", "Multi-AZ instance failover completed.",
				"Multi-AZ instance failover started.", "Multi-AZ instance failover completed.",
				"Multi-AZ instance failover started.", "Multi-AZ instance failover completed.",
				"Recovery of standby DB instance has completed.")
		})
	}
}

// TestReaderReplicationBroken: a reader whose replication stops for real
// is reported UNAVAILABLE / INVALID_REPLICATION_STATE by
// DescribeDBProxyTargets, with a "Replication has stopped." event, and
// comes back when replication resumes.
func TestReaderReplicationBroken(t *testing.T) {
	h := newHA(t)
	for _, engine := range []string{"aurora-postgresql", "aurora-mysql"} {
		t.Run(engine, func(t *testing.T) {
			cl := "brk-" + engine[len("aurora-"):]
			h.cluster(t, engine, cl, member{cl + "-w", "db.r6g.large", 1}, member{cl + "-r", "db.r6g.large", 1})
			proxy := cl + "-proxy"
			h.proxy(t, engine, proxy, cl, "")
			reader := cl + "-r"
			waitHealth := func(want bool) types.TargetHealth {
				deadline := time.Now().Add(time.Minute)
				for {
					th := h.targetHealth(t, proxy)[reader]
					if (th.Reason == types.TargetHealthReasonInvalidReplicationState) == want {
						return th
					}
					if time.Now().After(deadline) {
						t.Fatalf("reader health %s %s %s; want INVALID_REPLICATION_STATE %v", th.State, th.Reason, aws.ToString(th.Description), want)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			waitHealth(false)
			var restore []string
			if isPG(engine) {
				inst, _ := h.emu.Server.Engines().Get(eid(reader))
				b, _ := os.ReadFile(filepath.Join(inst.Dir, "data", "postgresql.auto.conf"))
				var conninfo string
				for _, line := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "primary_conninfo = "); ok {
						conninfo = v
					}
				}
				if conninfo == "" {
					t.Fatalf("no primary_conninfo in postgresql.auto.conf:\n%s", b)
				}
				h.adminExec(t, engine, reader, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
				restore = []string{"ALTER SYSTEM SET primary_conninfo = " + conninfo, "SELECT pg_reload_conf()"}
			} else {
				h.adminExec(t, engine, reader, "STOP SLAVE")
				restore = []string{"START SLAVE"}
			}
			th := waitHealth(true)
			if th.State != types.TargetStateUnavailable || th.Description == nil {
				t.Fatalf("broken reader health: %+v", th)
			}
			t.Logf("broken reader: %s %s %s", th.State, th.Reason, *th.Description)
			h.wantEvents(t, types.SourceTypeDbInstance, reader, "Replication has stopped.")
			h.adminExec(t, engine, reader, restore...)
			waitHealth(false)
			h.wantEvents(t, types.SourceTypeDbInstance, reader, "Replication has stopped.", "Replication for the Read Replica resumed.")
		})
	}
}

// killServer kills every process of an instance's server at once with
// SIGKILL, as when its host fails: PostgreSQL's backends each lead their
// own session, so killing the postmaster alone would leave them running a
// moment longer. They all work in the instance's data directory.
func killServer(t *testing.T, instanceDir string) {
	t.Helper()
	pids := serverPIDs(t, instanceDir)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP) // none may act while the others die
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// serverPIDs lists the processes of an instance's server: they all work
// in its data directory.
func serverPIDs(t *testing.T, instanceDir string) []int {
	t.Helper()
	data, err := filepath.EvalSymlinks(filepath.Join(instanceDir, "data"))
	if err != nil {
		t.Fatal(err)
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
		t.Fatalf("no process of the server in %s", data)
	}
	return pids
}

// TestRestartMidFailover: rdslocal stops between a failover's step in
// the engine layer and the records that follow it (here the engine layer
// hands over alone, as if rdslocal had died before saving the records).
// After the restart the records follow the servers: DescribeDBClusters
// names the promoted writer, the former writer rejoins as its reader, the
// proxy writes to the new writer, and a Multi-AZ instance serves from its
// promoted standby.
func TestRestartMidFailover(t *testing.T) {
	dir := searchableTempDir(t)
	start := func() *ha {
		emu := testsuite.Start(t, testsuite.WithDataDir(dir))
		return &ha{emu: emu, rc: rds.NewFromConfig(emu.AWSConfig), sm: secretsmanager.NewFromConfig(emu.AWSConfig)}
	}
	h := start()
	ctx := context.Background()
	const engine, cl, maz = "aurora-postgresql", "mid", "mid-maz"
	h.cluster(t, engine, cl, member{"mid-1", "db.r6g.large", 1}, member{"mid-2", "db.r6g.large", 1})
	endpoint := h.proxy(t, engine, "mid-proxy", cl, "")
	if _, err := h.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(maz), DBInstanceClass: aws.String("db.t3.micro"),
		Engine: aws.String("postgres"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String(haPassword), DBName: aws.String("app"),
		MultiAZ: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	before := waitAvailable(t, h.rc, maz)
	for _, id := range []string{"mid-1", maz} {
		db := h.open(t, "postgres", id)
		for _, s := range []string{"CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'before')"} {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
	}
	eng := h.emu.Server.Engines()
	if err := eng.Switchover(ctx, eid("mid-1"), eid("mid-2")); err != nil {
		t.Fatal(err)
	}
	if err := eng.Switchover(ctx, eid(maz), eid(maz)+".standby"); err != nil {
		t.Fatal(err)
	}
	h.emu.Stop()

	h = start()
	h.settle(t, cl, "mid-2", "mid-proxy", "mid-1", "mid-2")
	h.rolesAgree(t, engine, cl, "mid-proxy")
	c := viaProxy(t, endpoint)
	if _, err := c.Exec(ctx, "INSERT INTO t VALUES (2, 'via-proxy')"); err != nil {
		t.Fatalf("write through the proxy after the restart: %v", err)
	}
	hasRow(t, h.open(t, engine, "mid-1"), 2)

	after := waitAvailable(t, h.rc, maz)
	if *after.Endpoint.Port == *before.Endpoint.Port {
		t.Fatalf("the Multi-AZ instance's endpoint is still the former primary's port %d", *before.Endpoint.Port)
	}
	if _, err := h.open(t, "postgres", maz).Exec("INSERT INTO t VALUES (2, 'after')"); err != nil {
		t.Fatalf("write on the Multi-AZ instance after the restart: %v", err)
	}
}
