package testsuite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The proxy's side of a failover and RDS Proxy's rules for READ_ONLY
// endpoints, through the AWS API, real servers and real replication.

// pgClient is a client of a proxy endpoint that records every
// ErrorResponse the proxy sends it, FATALs it sends on its own included.
type pgClient struct {
	*pgx.Conn
	mu   sync.Mutex
	errs []*pgconn.PgError
}

func pgConnString(endpoint string) string {
	return fmt.Sprintf("host=%s port=5432 user=master password=%s dbname=app sslmode=disable connect_timeout=30", endpoint, haPassword)
}

// dialRecording connects to a PostgreSQL proxy endpoint, recording the
// errors the proxy sends.
func dialRecording(ctx context.Context, endpoint string) (*pgClient, error) {
	cfg, err := pgx.ParseConfig(pgConnString(endpoint))
	if err != nil {
		return nil, err
	}
	pc := &pgClient{}
	cfg.OnPgError = func(_ *pgconn.PgConn, e *pgconn.PgError) bool {
		pc.mu.Lock()
		pc.errs = append(pc.errs, e)
		pc.mu.Unlock()
		return e.Severity != "FATAL"
	}
	pc.Conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return pc, nil
}

func connectRecording(t *testing.T, endpoint string) *pgClient {
	t.Helper()
	ctx := context.Background()
	viaProxy(t, endpoint) // waits until the endpoint serves
	pc, err := dialRecording(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(ctx) })
	return pc
}

// fatals are the FATAL errors the client received.
func (pc *pgClient) fatals() []*pgconn.PgError {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var out []*pgconn.PgError
	for _, e := range pc.errs {
		if e.Severity == "FATAL" {
			out = append(out, e)
		}
	}
	return out
}

// closedByProxy waits (reading, sending nothing) until the proxy closes the
// client's connection and returns the FATAL it sent first, if any.
func (pc *pgClient) closedByProxy(t *testing.T) *pgconn.PgError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pc.PgConn().WaitForNotification(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("the proxy did not close the session: %v", err)
	}
	if f := pc.fatals(); len(f) > 0 {
		return f[0]
	}
	return nil
}

// isFailoverFatal reports whether err is the proxy's FATAL for a session
// a failover took the server connection of; pinned tells which text.
func isFailoverFatal(e *pgconn.PgError, pinned bool) bool {
	if e == nil || e.Code != "57P01" || !strings.HasPrefix(e.Message, "terminating connection because of a failover") {
		return false
	}
	return strings.Contains(e.Message, "pinned") == pinned
}

func pgErr(err error) *pgconn.PgError {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// ids lists the ids of table t on a server.
func (h *ha) ids(t *testing.T, engine, id string) []int {
	t.Helper()
	rows, err := h.open(t, engine, id).Query("SELECT id FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestProxyFailoverClientClasses: FailoverDBCluster under clients of
// every class, through the proxy. Idle clients carry on against the new
// writer with no error; clients pinned to the former writer are closed at
// once with FATAL 57P01 (their session state cannot move); clients with a
// transaction open or a statement running on it get FATAL 57P01 and lose
// that transaction; clients arriving during the failover wait for the new
// writer. Every acknowledged write is on the new writer, nothing
// uncommitted is, and the former writer, rebuilt as a replica, holds
// exactly what the new writer holds.
func TestProxyFailoverClientClasses(t *testing.T) {
	h := newHA(t)
	ctx := context.Background()
	const engine = "aurora-postgresql"
	cl := "fcc-pg"
	h.cluster(t, engine, cl, member{cl + "-1", "db.r6g.large", 1}, member{cl + "-2", "db.r6g.large", 1})
	proxy := cl + "-proxy"
	endpoint := h.proxy(t, engine, proxy, cl, "")
	w := h.open(t, engine, cl+"-1")
	if _, err := w.Exec("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))"); err != nil {
		t.Fatal(err)
	}
	formerPort, newPort := *h.instance(t, cl+"-1").Endpoint.Port, *h.instance(t, cl+"-2").Endpoint.Port

	const n = 3
	var idle, pinned, inTx []*pgClient
	var acked []int // rows whose write the proxy acknowledged
	insert := func(c *pgClient, id int, v string) (int32, error) {
		var port int32
		err := c.QueryRow(ctx, fmt.Sprintf("INSERT INTO t VALUES (%d, '%s') RETURNING inet_server_port()", id, v)).Scan(&port)
		return port, err
	}
	for i := range n {
		c := connectRecording(t, endpoint)
		if _, err := insert(c, 100+i, "idle"); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, 100+i)
		idle = append(idle, c)

		c = connectRecording(t, endpoint)
		if _, err := c.Exec(ctx, fmt.Sprintf("SET application_name = 'pinned-%d'", i)); err != nil { // pins
			t.Fatal(err)
		}
		if _, err := insert(c, 200+i, "pinned"); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, 200+i)
		pinned = append(pinned, c)

		c = connectRecording(t, endpoint)
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := insert(c, 300+i, "in-tx"); err != nil {
			t.Fatal(err)
		}
		inTx = append(inTx, c)
	}
	// A statement running on the writer when the failover begins.
	running := connectRecording(t, endpoint)
	runErr := make(chan error, 1)
	go func() {
		_, err := running.Exec(ctx, "INSERT INTO t SELECT 400, 'running' FROM pg_sleep(60)")
		runErr <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var k int
		if err := w.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()").Scan(&k); err != nil {
			t.Fatal(err)
		}
		if k == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the running statement did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Clients arriving before, during and after the failover: each
	// connects, writes one row and leaves.
	type arrival struct {
		id   int
		port int32
		err  error
	}
	var arrivals []arrival
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			a := arrival{id: 1000 + k}
			c, err := dialRecording(ctx, endpoint)
			if err == nil {
				a.port, err = insert(c, a.id, "arrival")
				c.Close(ctx)
			}
			a.err = err
			arrivals = append(arrivals, a)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)

	if _, err := h.rc.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: aws.String(cl)}); err != nil {
		t.Fatal(err)
	}

	// Pinned: closed by the proxy with its FATAL, without a request.
	pinnedErrs := 0
	for i, c := range pinned {
		e := c.closedByProxy(t)
		if !isFailoverFatal(e, true) {
			t.Errorf("pinned client %d: closed with %+v, want FATAL 57P01 (pinned)", i, e)
		}
		pinnedErrs++
	}
	// In a transaction: closed with the FATAL; the transaction is lost.
	txErrs := 0
	for i, c := range inTx {
		e := c.closedByProxy(t)
		if !isFailoverFatal(e, false) {
			t.Errorf("client %d in a transaction: closed with %+v, want FATAL 57P01", i, e)
		}
		if _, err := c.Exec(ctx, "COMMIT"); err == nil {
			t.Errorf("client %d in a transaction: COMMIT after the failover succeeded", i)
		}
		txErrs++
	}
	// The running statement fails with the FATAL.
	if err := <-runErr; err == nil || !isFailoverFatal(pgErr(err), false) {
		t.Errorf("statement running at the failover: %v, want FATAL 57P01", err)
	}
	// Idle: carry on against the new writer, no error.
	idleErrs := 0
	for i, c := range idle {
		port, err := insert(c, 500+i, "after")
		if err != nil {
			idleErrs++
			t.Errorf("idle client %d after the failover: %v", i, err)
			continue
		}
		if port != newPort {
			t.Errorf("idle client %d wrote on port %d after the failover, want the new writer's %d", i, port, newPort)
		}
		acked = append(acked, 500+i)
		if f := c.fatals(); len(f) > 0 {
			t.Errorf("idle client %d got %v", i, f)
		}
	}
	// Arrivals until one has written on the new writer.
	deadline = time.Now().Add(time.Minute)
	for {
		time.Sleep(50 * time.Millisecond)
		c, err := dialRecording(ctx, endpoint)
		if err == nil {
			var port int32
			err = c.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port)
			c.Close(ctx)
			if err == nil && port == newPort {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new client reached the new writer: %v", err)
		}
	}
	time.Sleep(200 * time.Millisecond) // a few more arrivals on the new writer
	close(stop)
	<-done
	arrivalErrs, onFormer, onNew := 0, 0, 0
	for _, a := range arrivals {
		switch {
		case a.err != nil:
			arrivalErrs++
			// Only a write in flight on the former writer fails.
			if !isFailoverFatal(pgErr(a.err), false) {
				t.Errorf("arriving client %d: %v, want success or the failover's FATAL 57P01", a.id, a.err)
			}
		case a.port == formerPort:
			onFormer++
			acked = append(acked, a.id)
		case a.port == newPort:
			onNew++
			acked = append(acked, a.id)
		default:
			t.Errorf("arriving client %d wrote on port %d", a.id, a.port)
		}
	}
	t.Logf("figure: errors per client class at a FailoverDBCluster through the proxy: idle %d/%d, pinned %d/%d (closed, FATAL 57P01), in transaction %d/%d (FATAL 57P01), running statement 1/1, arriving %d/%d (%d written before on the former writer, %d on the new one)",
		idleErrs, n, pinnedErrs, n, txErrs, n, arrivalErrs, len(arrivals), onFormer, onNew)

	h.checkFailoverRows(t, engine, cl, proxy, acked)
}

// roEndpoint creates a READ_ONLY endpoint of a proxy and returns its
// address.
func (h *ha) roEndpoint(t *testing.T, proxy, name string) string {
	t.Helper()
	ep, err := h.rc.CreateDBProxyEndpoint(context.Background(), &rds.CreateDBProxyEndpointInput{DBProxyName: aws.String(proxy),
		DBProxyEndpointName: aws.String(name), VpcSubnetIds: []string{"subnet-1"}, TargetRole: types.DBProxyEndpointTargetRoleReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	return *ep.DBProxyEndpoint.Endpoint
}

// TestProxyReaderEndpointRules: RDS Proxy's rules for READ_ONLY endpoints.
// A proxy whose target has no reader (an RDS instance) fails their
// requests at once; readers are chosen among healthy ones, least borrowed
// first, round robin among equals, never the writer; a killed reader is
// skipped for another at once; with readers but none in service, requests
// wait ConnectionBorrowTimeout and fail with the borrow-timeout error.
func TestProxyReaderEndpointRules(t *testing.T) {
	h := newHA(t)
	ctx := context.Background()
	const engine = "aurora-postgresql"

	t.Run("no-readers", func(t *testing.T) {
		id := "rdi-pg"
		if _, err := h.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.micro"),
			Engine: aws.String("postgres"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String(haPassword), DBName: aws.String("app")}); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, h.rc, id)
		proxy := id + "-proxy"
		viaProxy(t, h.proxy(t, "postgres", proxy, "", id)) // the proxy serves its writer
		ro := h.roEndpoint(t, proxy, id+"-ro")
		// The default ConnectionBorrowTimeout (120 s) stands: a request
		// that waited would end with 53300, not 08004.
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := pgx.Connect(ctx, pgConnString(ro))
			if err == nil {
				c.Close(ctx)
				t.Fatal("a READ_ONLY endpoint of a proxy for an RDS instance served a client")
			}
			e := pgErr(err)
			if e != nil {
				if e.Code != "08004" || !strings.Contains(e.Message, "no reader DB instances") {
					t.Fatalf("READ_ONLY endpoint without readers: %v, want 08004", err)
				}
				t.Logf("READ_ONLY endpoint without readers: %s %s %s", e.Severity, e.Code, e.Message)
				break
			}
			if time.Now().After(deadline) { // not listening yet
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("readers", func(t *testing.T) {
		cl := "rde-pg"
		wr, r1, r2 := cl+"-w", cl+"-r1", cl+"-r2"
		h.cluster(t, engine, cl, member{wr, "db.r6g.large", 1}, member{r1, "db.r6g.large", 1}, member{r2, "db.r6g.large", 1})
		proxy := cl + "-proxy"
		h.proxy(t, engine, proxy, cl, "")
		if _, err := h.rc.ModifyDBProxyTargetGroup(ctx, &rds.ModifyDBProxyTargetGroupInput{DBProxyName: aws.String(proxy), TargetGroupName: aws.String("default"),
			ConnectionPoolConfig: &types.ConnectionPoolConfiguration{ConnectionBorrowTimeout: aws.Int32(2)}}); err != nil {
			t.Fatal(err)
		}
		ro := h.roEndpoint(t, proxy, cl+"-ro")
		h.settle(t, cl, wr, proxy, wr, r1, r2)
		port := map[int32]string{}
		for _, id := range []string{wr, r1, r2} {
			port[*h.instance(t, id).Endpoint.Port] = id
		}
		c := viaProxy(t, ro)
		served := func(c *pgx.Conn) (string, error) {
			var p int32
			var recovery bool
			err := c.QueryRow(ctx, "SELECT inet_server_port(), pg_is_in_recovery()").Scan(&p, &recovery)
			if err == nil && !recovery {
				return port[p], fmt.Errorf("%s served a READ_ONLY endpoint and is not in recovery", port[p])
			}
			return port[p], err
		}

		// Round robin among equally borrowed readers; never the writer.
		seen := map[string]int{}
		for range 10 {
			id, err := served(c)
			if err != nil {
				t.Fatal(err)
			}
			seen[id]++
		}
		if seen[r1] == 0 || seen[r2] == 0 || seen[wr] != 0 {
			t.Fatalf("READ_ONLY requests served by %v, want both readers and never the writer", seen)
		}

		// Least borrowed first: while one reader holds a transaction, the
		// other serves every request.
		holder := viaProxy(t, ro)
		tx, err := holder.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var busyPort int32
		if err := tx.QueryRow(ctx, "SELECT inet_server_port()").Scan(&busyPort); err != nil {
			t.Fatal(err)
		}
		for range 6 {
			id, err := served(c)
			if err != nil {
				t.Fatal(err)
			}
			if id == port[busyPort] {
				t.Fatalf("a request went to %s, which holds a transaction, while the other reader had none borrowed", id)
			}
		}
		tx.Rollback(ctx)

		// A killed reader is skipped at once: the next requests succeed on
		// the other.
		inst, err := h.emu.Server.Engines().Get(eid(r1))
		if err != nil {
			t.Fatal(err)
		}
		pids := serverPIDs(t, inst.Dir)
		killServer(t, inst.Dir)
		waitDead(t, pids)
		for i := range 6 {
			id, err := served(c)
			if err != nil {
				t.Fatalf("request %d after a reader was killed: %v", i, err)
			}
			if i == 0 && id != r2 {
				t.Fatalf("first request after %s was killed served by %s", r1, id)
			}
		}

		// Readers exist but none is in service: requests wait the borrow
		// timeout and fail with RDS's error.
		deadline := time.Now().Add(2 * time.Minute)
		for { // the killed reader is back
			db, err := dbOpen(t, engine, inst.Host, inst.Port, "master", haPassword, "app")
			if err == nil {
				err = db.Ping()
				db.Close()
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not come back: %v", r1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		h.settle(t, cl, wr, proxy, wr, r1, r2)
		for _, r := range []string{r1, r2} {
			h.adminExec(t, engine, r, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()")
		}
		deadline = time.Now().Add(time.Minute)
		for {
			th := h.targetHealth(t, proxy)
			if th[r1].Reason == types.TargetHealthReasonInvalidReplicationState && th[r2].Reason == types.TargetHealthReasonInvalidReplicationState {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("readers did not leave service: %+v", th)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, err = served(c)
		if e := pgErr(err); e == nil || e.Code != "53300" || e.Message != "Timed-out waiting to acquire database connection." {
			t.Fatalf("request with every reader out of service: %v, want 53300", err)
		}
		if _, err := pgx.Connect(ctx, pgConnString(ro)); err == nil || pgErr(err) == nil || pgErr(err).Code != "53300" {
			t.Fatalf("login with every reader out of service: %v, want 53300", err)
		}
	})
}

// waitDead waits until every process of pids has exited (gone, or a
// zombie with no thread left running: its sockets are closed).
func waitDead(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				break
			}
			// A zombie leader is not enough: the other threads of a
			// multi-threaded server (mariadbd) may still be exiting, and
			// its sockets close only when the last of them is gone.
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') && len(tasks) <= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d did not die", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// checkFailoverRows waits for cluster cl to settle after its writer moved
// from cl-1 to cl-2 and checks the rows: every acknowledged one is on the
// new writer, none of the transactions the failover ended (ids 300-302,
// 400) is, and the former writer, a replica now, holds exactly what the
// new writer holds (no write reached it that the new writer lacks).
func (h *ha) checkFailoverRows(t *testing.T, engine, cl, proxy string, acked []int) {
	t.Helper()
	h.settle(t, cl, cl+"-2", proxy, cl+"-1", cl+"-2")
	got := h.ids(t, engine, cl+"-2")
	for _, id := range acked {
		if !slices.Contains(got, id) {
			t.Errorf("acknowledged row %d is not on the new writer", id)
		}
	}
	for _, id := range []int{300, 301, 302, 400} {
		if slices.Contains(got, id) {
			t.Errorf("row %d of a transaction the failover ended is on the new writer", id)
		}
	}
	// The former writer, a replica now, holds what the new writer holds:
	// no write reached it that the new writer lacks.
	deadline := time.Now().Add(time.Minute)
	for {
		former := h.ids(t, engine, cl+"-1")
		if slices.Equal(former, got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the former writer holds %v, the new writer %v", former, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
