package testsuite_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/go-sql-driver/mysql"
)

// The MySQL proxy's side of a failover and RDS Proxy's rules for READ_ONLY
// endpoints, through the AWS API, real MariaDB servers and real
// replication, with go-sql-driver/mysql.

// isFailoverErr reports whether err is the MySQL proxy's error for a
// session a failover took the server connection of (ERROR 1053 (08S01));
// pinned tells which text.
func isFailoverErr(err error, pinned bool) bool {
	e := mysqlErr(err)
	if e == nil || e.Number != 1053 || string(e.SQLState[:]) != "08S01" || !strings.HasPrefix(e.Message, "terminating connection because of a failover") {
		return false
	}
	return strings.Contains(e.Message, "pinned") == pinned
}

// TestMySQLProxyFailoverClientClasses: FailoverDBCluster of an
// aurora-mysql cluster under clients of every class, through its MYSQL
// proxy. Idle clients carry on against the new writer with no error;
// clients pinned to the former writer are closed with ERROR 1053 (08S01)
// (their session state cannot move); clients with a transaction open or a
// statement running on it get ERROR 1053 and lose that transaction;
// clients arriving during the failover wait for the new writer. Every
// acknowledged write is on the new writer, nothing uncommitted is, and the
// former writer, rebuilt as a replica, holds exactly what the new writer
// holds.
//
// The pinned and in-transaction clients turn off go-sql-driver's
// checkConnLiveness: with it, the driver finds the proxy's ERR packet
// waiting before it writes its next statement and reports only
// driver.ErrBadConn (database/sql then dials afresh), as it does for a
// MySQL server that closed an idle connection.
func TestMySQLProxyFailoverClientClasses(t *testing.T) {
	h := newHA(t)
	ctx := context.Background()
	const engine = "aurora-mysql"
	cl := "fcc-my"
	h.cluster(t, engine, cl, member{cl + "-1", "db.r6g.large", 1}, member{cl + "-2", "db.r6g.large", 1})
	proxy := cl + "-proxy"
	endpoint := h.proxy(t, engine, proxy, cl, "")
	w := h.open(t, engine, cl+"-1")
	if _, err := w.Exec("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))"); err != nil {
		t.Fatal(err)
	}
	formerPort, newPort := *h.instance(t, cl+"-1").Endpoint.Port, *h.instance(t, cl+"-2").Endpoint.Port

	const n = 3
	var idle, pinned []*proxyClient
	var inTx []*sql.Tx
	var acked []int // rows whose write the proxy acknowledged
	for i := range n {
		c := h.viaProxyAny(t, engine, endpoint)
		if err := c.exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'idle')", 100+i)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, 100+i)
		idle = append(idle, c)

		c = &proxyClient{my: viaMySQLProxy(t, endpoint, "checkConnLiveness=false")}
		if err := c.exec(fmt.Sprintf("SET @owner = 'pinned-%d'", i)); err != nil { // pins
			t.Fatal(err)
		}
		if err := c.exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'pinned')", 200+i)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, 200+i)
		pinned = append(pinned, c)

		c = &proxyClient{my: viaMySQLProxy(t, endpoint, "checkConnLiveness=false")}
		tx, err := c.my.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(fmt.Sprintf("INSERT INTO t VALUES (%d, 'in-tx')", 300+i)); err != nil {
			t.Fatal(err)
		}
		inTx = append(inTx, tx)
	}
	// A statement running on the writer when the failover begins.
	running := h.viaProxyAny(t, engine, endpoint)
	runErr := make(chan error, 1)
	go func() {
		runErr <- running.exec("INSERT INTO t SELECT 400, 'running' FROM (SELECT SLEEP(60)) s")
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var k int
		if err := w.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%SLEEP(60)%' AND ID <> CONNECTION_ID()").Scan(&k); err != nil {
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
			c, err := dialMySQLProxy(endpoint, "", 0)
			if err == nil {
				a.port, err = (&proxyClient{my: c}).writePort(a.id, "arrival")
				c.Close()
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

	// The running statement fails with the failover's error: the proxy
	// has acted on the failover.
	select {
	case err := <-runErr:
		if !isFailoverErr(err, false) {
			t.Errorf("statement running at the failover: %v, want ERROR 1053 (08S01)", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the running statement was not ended")
	}
	// Pinned: the proxy sent the error and closed; the next statement
	// reads it.
	pinnedErrs := 0
	for i, c := range pinned {
		if err := c.exec("SELECT 1"); !isFailoverErr(err, true) {
			t.Errorf("pinned client %d: %v, want ERROR 1053 (08S01) (pinned)", i, err)
		}
		pinnedErrs++
	}
	// In a transaction: the error; the transaction is lost.
	txErrs := 0
	for i, tx := range inTx {
		if err := tx.Commit(); !isFailoverErr(err, false) {
			t.Errorf("client %d in a transaction: COMMIT after the failover: %v, want ERROR 1053 (08S01)", i, err)
		}
		txErrs++
	}
	// Idle: carry on against the new writer, no error.
	idleErrs := 0
	for i, c := range idle {
		port, err := c.writePort(500+i, "after")
		if err != nil {
			idleErrs++
			t.Errorf("idle client %d after the failover: %v", i, err)
			continue
		}
		if port != newPort {
			t.Errorf("idle client %d wrote on port %d after the failover, want the new writer's %d", i, port, newPort)
		}
		acked = append(acked, 500+i)
	}
	// Arrivals until one has written on the new writer.
	deadline = time.Now().Add(time.Minute)
	for {
		time.Sleep(50 * time.Millisecond)
		c, err := dialMySQLProxy(endpoint, "", 0)
		if err == nil {
			var port int32
			err = c.QueryRowContext(ctx, "SELECT @@port").Scan(&port)
			c.Close()
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
			// Only a transaction in flight on the former writer fails:
			// with the failover's error, or, when the proxy's ERR reached
			// the client between two statements of the transaction, with
			// the driver's error for data it did not ask for (its liveness
			// check's bad connection, or "busy buffer" when the ERR came
			// in the same read as the previous answer).
			if !isFailoverErr(a.err, false) && !errors.Is(a.err, driver.ErrBadConn) && !errors.Is(a.err, mysql.ErrBusyBuffer) {
				t.Errorf("arriving client %d: %v, want success or the failover's ERROR 1053", a.id, a.err)
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
	t.Logf("figure: errors per client class at a FailoverDBCluster through the MySQL proxy: idle %d/%d, pinned %d/%d (closed, ERROR 1053), in transaction %d/%d (ERROR 1053), running statement 1/1, arriving %d/%d (%d written before on the former writer, %d on the new one)",
		idleErrs, n, pinnedErrs, n, txErrs, n, arrivalErrs, len(arrivals), onFormer, onNew)

	h.checkFailoverRows(t, engine, cl, proxy, acked)
}

// TestMySQLProxyReaderEndpointRules: RDS Proxy's rules for READ_ONLY
// endpoints of a MYSQL proxy. A proxy whose target has no reader (an RDS
// instance) fails their requests at once (ERROR 1105); readers are chosen
// among healthy ones, never the writer; a killed reader is skipped for
// another at once; with readers but none in service, requests wait
// ConnectionBorrowTimeout and fail with ERROR 9501.
func TestMySQLProxyReaderEndpointRules(t *testing.T) {
	h := newHA(t)
	ctx := context.Background()

	t.Run("no-readers", func(t *testing.T) {
		id := "rdi-my"
		if _, err := h.rc.CreateDBInstance(ctx, &rds.CreateDBInstanceInput{DBInstanceIdentifier: aws.String(id), DBInstanceClass: aws.String("db.t3.micro"),
			Engine: aws.String("mariadb"), MasterUsername: aws.String("master"), MasterUserPassword: aws.String(haPassword), DBName: aws.String("app")}); err != nil {
			t.Fatal(err)
		}
		waitAvailable(t, h.rc, id)
		proxy := id + "-proxy"
		viaMySQLProxy(t, h.proxy(t, "mariadb", proxy, "", id), "") // the proxy serves its writer
		ro := h.roEndpoint(t, proxy, id+"-ro")
		// The default ConnectionBorrowTimeout (120 s) stands: a request
		// that waited would end with 9501, not 1105.
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := dialMySQLProxy(ro, "", 0) // names a schema: the login borrows
			if err == nil {
				c.Close()
				t.Fatal("a READ_ONLY endpoint of a proxy for an RDS instance served a client")
			}
			if e := mysqlErr(err); e != nil {
				if e.Number != 1105 || !strings.Contains(e.Message, "no reader DB instances") {
					t.Fatalf("READ_ONLY endpoint without readers: %v, want ERROR 1105", err)
				}
				t.Logf("READ_ONLY endpoint without readers: %v", err)
				break
			}
			if time.Now().After(deadline) { // not listening yet
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("readers", func(t *testing.T) {
		const engine = "aurora-mysql"
		cl := "rde-my"
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
		c := viaMySQLProxy(t, ro, "")
		served := func() (string, error) {
			var p int32
			var readOnly int
			err := c.QueryRowContext(ctx, "SELECT @@port, @@read_only").Scan(&p, &readOnly)
			if err == nil && readOnly == 0 {
				return port[p], fmt.Errorf("%s served a READ_ONLY endpoint and is not read-only", port[p])
			}
			return port[p], err
		}

		// Both readers serve; never the writer.
		seen := map[string]int{}
		for range 10 {
			id, err := served()
			if err != nil {
				t.Fatal(err)
			}
			seen[id]++
		}
		if seen[r1] == 0 || seen[r2] == 0 || seen[wr] != 0 {
			t.Fatalf("READ_ONLY requests served by %v, want both readers and never the writer", seen)
		}

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
			id, err := served()
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
				db.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not come back: %v", r1, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		h.settle(t, cl, wr, proxy, wr, r1, r2)
		for _, r := range []string{r1, r2} {
			h.adminExec(t, engine, r, "STOP SLAVE")
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
		if _, err := served(); mysqlErr(err) == nil || mysqlErr(err).Number != 9501 {
			t.Fatalf("request with every reader out of service: %v, want ERROR 9501", err)
		}
	})
}
