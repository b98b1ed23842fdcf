package mysql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rdslocal/rdslocal/engine/enginetest"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/mysql/wire"
)

// The proxy's side of a failover and of READ_ONLY endpoints, with the
// control plane's changes played by Apply and real servers as targets.

// extraMariaDB starts another seeded test server for the test.
func extraMariaDB(t *testing.T) *enginetest.Server {
	t.Helper()
	requireMariaDB(t)
	s, err := env.MariaDB(enginetest.Options{MaxConnections: serverMaxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := seed(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// closedWith waits, sending nothing, until the proxy closes the client's
// connection and returns the ERR packet it sent first (nil: none), which
// must come with sequence number 1 (the answer to the client's next
// command).
func closedWith(t *testing.T, c *client.Conn) *gm.MyError {
	t.Helper()
	nc := c.Conn.Conn
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("the proxy did not close the session: %v", err)
	}
	if len(b) == 0 {
		return nil
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	if len(b) != 4+n || b[3] != 1 || b[4] != 0xff {
		t.Fatalf("the proxy sent %q before closing, want one ERR packet", b)
	}
	return wire.ParseErr(b[4:])
}

func failoverErr(e *gm.MyError, pinned bool) bool {
	want := failoverTxText
	if pinned {
		want = failoverPinnedText
	}
	return e != nil && e.Code == failoverCode && e.State == failoverState && e.Message == want
}

func asMyErr(err error) *gm.MyError {
	var me *gm.MyError
	if errors.As(err, &me) {
		return me
	}
	return nil
}

func portOf(t *testing.T, c *client.Conn) int {
	t.Helper()
	r, err := c.Execute("SELECT @@port")
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.GetInt(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return int(p)
}

// TestFailoverEvictsHeldSessions: when the writer target moves (another
// address) or is demoted in place (its role changes from READ_WRITE), the
// sessions pinned to it and those with a transaction or a statement on it
// get ERROR 1053 (08S01) and are closed at once, and nothing more is sent
// to it; idle sessions carry on against the new writer with no error.
func TestFailoverEvictsHeldSessions(t *testing.T) {
	a := requireMariaDB(t)
	b := extraMariaDB(t)
	for _, tc := range []struct {
		name    string
		targets []proxy.TargetSpec
	}{
		{"writer-moved", []proxy.TargetSpec{{ID: "db-2", Host: "127.0.0.1", Port: b.Port, Role: proxy.RoleReadWrite}}},
		{"writer-demoted", []proxy.TargetSpec{
			{ID: "db-1", Host: "127.0.0.1", Port: a.Port, Role: proxy.RoleReadOnly},
			{ID: "db-2", Host: "127.0.0.1", Port: b.Port, Role: proxy.RoleReadWrite}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, a, harnessOpts{})
			ctx := ctxT(t, time.Minute)
			connect := func() *client.Conn {
				c, err := client.Connect(h.addr, appUser, appPW, testDB)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			idle := connect()
			if portOf(t, idle) != a.Port {
				t.Fatal("idle client not on the first writer")
			}
			pinned := connect()
			if _, err := pinned.Execute("SET @owner = 'pinned'"); err != nil {
				t.Fatal(err)
			}
			inTx := connect()
			for _, q := range []string{"BEGIN", "INSERT INTO items (client, n, note) VALUES (-1, 1, 'in-tx')"} {
				if _, err := inTx.Execute(q); err != nil {
					t.Fatal(err)
				}
			}
			running := connect()
			runErr := make(chan error, 1)
			go func() {
				_, err := running.Execute("SELECT SLEEP(30)")
				runErr <- err
			}()
			var tid uint32
			eventually(t, 10*time.Second, func() error {
				if tid = h.heldBackend(running.GetConnectionID()); tid == 0 {
					return errors.New("the statement is not running yet")
				}
				return nil
			})
			// The evicted statement's server connection sleeps on: the
			// server is shared with later tests.
			t.Cleanup(func() { a.Exec(context.Background(), fmt.Sprintf("KILL %d", tid)) })

			sp := h.spec
			sp.Targets = tc.targets
			if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
				t.Fatal(err)
			}

			if e := closedWith(t, pinned); !failoverErr(e, true) {
				t.Errorf("pinned session closed with %+v, want ERROR 1053 (08S01) (pinned)", e)
			}
			if e := closedWith(t, inTx); !failoverErr(e, false) {
				t.Errorf("session in a transaction closed with %+v, want ERROR 1053 (08S01)", e)
			}
			select {
			case err := <-runErr:
				if !failoverErr(asMyErr(err), false) {
					t.Errorf("running statement: %v, want ERROR 1053 (08S01)", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the running statement was not ended")
			}
			if p := portOf(t, idle); p != b.Port {
				t.Errorf("idle session served by port %d after the failover, want %d", p, b.Port)
			}
			// The transaction was not committed anywhere.
			for _, s := range []*enginetest.Server{a, b} {
				var n int
				db := s.DB(testDB)
				err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM items WHERE note = 'in-tx'").Scan(&n)
				db.Close()
				if err != nil || n != 0 {
					t.Errorf("server %d: %d in-tx rows, %v", s.Port, n, err)
				}
			}
		})
	}
}

// TestReaderRouting: a READ_ONLY endpoint routes to readers only: none at
// all fails at once (ERROR 1105, at login when the client names a schema),
// none in service waits the borrow timeout (9501) and never falls back to
// the writer; among readers the least borrowed serves, round robin among
// equals; a reader that is down is skipped at once for another.
func TestReaderRouting(t *testing.T) {
	w := requireMariaDB(t)
	r1, r2 := extraMariaDB(t), extraMariaDB(t)
	roAddr := "127.0.0.1:" + strconv.Itoa(freePort())
	h := newHarness(t, w, harnessOpts{borrowTimeout: time.Second, mod: func(sp *proxy.ProxySpec) {
		sp.Endpoints = append(sp.Endpoints, proxy.EndpointSpec{Name: "ro", Listen: roAddr, TargetRole: proxy.RoleReadOnly})
	}})
	apply := func(hasReaders bool, readers ...*enginetest.Server) {
		t.Helper()
		sp := h.spec
		sp.HasReaders = hasReaders
		for i, r := range readers {
			sp.Targets = append(sp.Targets, proxy.TargetSpec{ID: "reader-" + strconv.Itoa(i+1), Host: "127.0.0.1", Port: r.Port, Role: proxy.RoleReadOnly})
		}
		if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
			t.Fatal(err)
		}
	}
	loginErr := func() *gm.MyError {
		t.Helper()
		c, err := client.Connect(roAddr, appUser, appPW, testDB)
		if err == nil {
			p := portOf(t, c)
			c.Close()
			t.Fatalf("the READ_ONLY endpoint served a client (port %d)", p)
		}
		e := asMyErr(err)
		if e == nil {
			t.Fatalf("login: %v", err)
		}
		return e
	}

	// No reader at all: at once, at login and on a request.
	if e := loginErr(); e.Code != noReadersCode || e.State != "HY000" || e.Message != noReadersText {
		t.Fatalf("no readers: %+v, want %d", e, noReadersCode)
	}
	nodb, err := client.Connect(roAddr, appUser, appPW, "")
	if err != nil {
		t.Fatal(err)
	}
	defer nodb.Close()
	if _, err := nodb.Execute("SELECT 1"); asMyErr(err) == nil || asMyErr(err).Code != noReadersCode {
		t.Fatalf("no readers, request: %v, want %d", err, noReadersCode)
	}
	// Readers, none in service: the borrow timeout, never the writer.
	apply(true)
	if e := loginErr(); e.Code != 9501 {
		t.Fatalf("no reader in service: %+v, want 9501", e)
	}

	apply(true, r1, r2)
	c, err := client.Connect(roAddr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[int]int{}
	for range 10 {
		seen[portOf(t, c)]++
	}
	if seen[r1.Port] == 0 || seen[r2.Port] == 0 || len(seen) != 2 {
		t.Fatalf("requests served by %v, want both readers (%d, %d) only", seen, r1.Port, r2.Port)
	}

	// Least borrowed: while a transaction holds one reader, the other
	// serves.
	holder, err := client.Connect(roAddr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.Execute("BEGIN"); err != nil {
		t.Fatal(err)
	}
	busy := portOf(t, holder)
	for range 6 {
		if p := portOf(t, c); p == busy {
			t.Fatalf("request served by the reader holding a transaction (%d)", p)
		}
	}
	if _, err := holder.Execute("ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	// A reader that is down is skipped at once.
	r2.Stop()
	for range 6 {
		if p := portOf(t, c); p != r1.Port {
			t.Fatalf("request served by %d with reader %d down", p, r2.Port)
		}
	}
}

// TestNoWriterQueues: while no target serves as the writer, a request
// waits: it is served once a writer is back, and fails with ERROR 9501
// when the borrow timeout passes first; the session goes on.
func TestNoWriterQueues(t *testing.T) {
	a := requireMariaDB(t)
	h := newHarness(t, a, harnessOpts{borrowTimeout: time.Second})
	c, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sp := h.spec
	sp.Targets = nil
	if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute("SELECT 1"); asMyErr(err) == nil || asMyErr(err).Code != 9501 {
		t.Fatalf("no writer: %v, want ERROR 9501", err)
	}
	// A writer that comes back while the request waits serves it.
	sp.Pool.BorrowTimeout = 30 * time.Second
	if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := c.Execute("SELECT 1")
		res <- err
	}()
	time.Sleep(200 * time.Millisecond) // the request waits meanwhile
	if err := h.m.Apply([]proxy.ProxySpec{h.spec}); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("request queued until the writer came back: %v", err)
	}
}

// TestFailoverMidResponse: a failover while rows stream to the client
// closes the connection, with no packet inside the result (no ERR where a
// row should be): the client sees the connection end, as when a server
// dies.
func TestFailoverMidResponse(t *testing.T) {
	a := requireMariaDB(t)
	b := extraMariaDB(t)
	h := newHarness(t, a, harnessOpts{})
	c := h.raw(t, appUser, appPW, testDB)
	id := c.cc.GetConnectionID()
	if _, err := c.nc.Write(wire.AppendCommand(nil, gm.COM_QUERY, []byte("SELECT seq, REPEAT('x', 200) FROM seq_1_to_50000000"))); err != nil {
		t.Fatal(err)
	}
	if tid := h.heldBackend(id); tid != 0 {
		t.Cleanup(func() { a.Exec(context.Background(), fmt.Sprintf("KILL %d", tid)) })
	}
	var resp wire.Response
	resp.Start(wire.KindResult, c.caps&gm.CLIENT_DEPRECATE_EOF != 0)
	rows := 0
	c.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		n, _, err := c.r.Header()
		if err != nil {
			break // the connection closed between packets
		}
		head, err := c.r.Peek(min(n, wire.HeadSize))
		if err != nil {
			break // closed inside a packet
		}
		inRows := resp.InRows()
		ev, err := resp.Next(n, head)
		if err != nil || resp.Ended() {
			t.Fatalf("after %d rows: %v (ended: %v, ERR: %v)", rows, err, resp.Ended(), resp.Err)
		}
		if err := c.r.CopyN(io.Discard, n); err != nil {
			break
		}
		if inRows && ev == wire.More {
			rows++
			if rows == 100 {
				sp := h.spec
				sp.Targets = []proxy.TargetSpec{{ID: "db-2", Host: "127.0.0.1", Port: b.Port, Role: proxy.RoleReadWrite}}
				if err := h.m.Apply([]proxy.ProxySpec{sp}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if rows < 100 {
		t.Fatalf("the connection ended after %d rows, before the failover", rows)
	}
	t.Logf("closed after %d rows", rows)
}
