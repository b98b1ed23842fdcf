package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The core's own tests drive it with a minimal protocol over real TCP
// connections: a "database" that accepts connections and holds them, and
// a Serve that runs the test's function with the accepted client. The
// wire protocols' tests (proxy/postgres, proxy/mysql) cover the rest with
// real servers and drivers.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testFamily is the engine family of the test protocol.
const testFamily = "TEST"

// testProto serves testFamily: Serve runs serve; Dial and Probe open a TCP
// connection to the target.
type testProto struct {
	serve func(c *Client)
}

func (p *testProto) Family() string  { return testFamily }
func (p *testProto) Serve(c *Client) { p.serve(c) }

func (p *testProto) Dial(ctx context.Context, req DialRequest) (ServerConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", joinHostPort(req.Host, req.Port))
	if err != nil {
		return nil, err
	}
	max := 0
	if req.NeedMaxConnections {
		max = 10
	}
	req.Pooled.Init(nc, max)
	return &testConn{Pooled: req.Pooled, nc: nc}, nil
}

func (p *testProto) Probe(ctx context.Context, req DialRequest) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", joinHostPort(req.Host, req.Port))
	if err != nil {
		return err
	}
	return nc.Close()
}

type testConn struct {
	*Pooled
	nc net.Conn
}

func (c *testConn) Close() { c.nc.Close() }

// testDB accepts connections and keeps them open until the peer closes.
type testDB struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newTestDB(t *testing.T) *testDB {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	db := &testDB{ln: ln}
	db.wg.Add(1)
	go func() {
		defer db.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			db.wg.Add(1)
			go func() {
				defer db.wg.Done()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		db.wg.Wait()
	})
	return db
}

func (db *testDB) port() int { return db.ln.Addr().(*net.TCPAddr).Port }

type testCreds map[string][2]string

func (c testCreds) Credentials(_, _, arn string) (string, string, error) {
	v, ok := c[arn]
	if !ok {
		return "", "", errors.New("no such secret")
	}
	return v[0], v[1], nil
}

func testSpec(db *testDB, family string, endpoints ...string) ProxySpec {
	sp := ProxySpec{ID: "prx-1", Name: "p1", Account: "000000000000", Region: "us-east-1", EngineFamily: family,
		Auth:    []AuthSpec{{SecretArn: "arn:s"}},
		Pool:    PoolSpec{MaxConnectionsPercent: 100, MaxIdleConnectionsPercent: 100, BorrowTimeout: 30 * time.Second},
		Targets: []TargetSpec{{ID: "db-1", Host: "127.0.0.1", Port: db.port(), Role: RoleReadWrite}}}
	for _, name := range endpoints {
		sp.Endpoints = append(sp.Endpoints, EndpointSpec{Name: name, Listen: "127.0.0.1:0"})
	}
	return sp
}

func newTestManager(t *testing.T, serve func(*Client)) *Manager {
	m := NewManager(ManagerConfig{Protocols: []Protocol{&testProto{serve: serve}},
		Credentials: testCreds{"arn:s": {"u", "pw"}}})
	t.Cleanup(func() { m.Close() })
	return m
}

// endpointAddr is the bound address of a running endpoint.
func endpointAddr(m *Manager, proxyID, name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proxies[proxyID].endpoints[name].ln.Addr().String()
}

// TestApplyDrainsOutsideTheLock: while Apply (or Close) waits for the
// sessions of a removed endpoint or proxy to end, Status, TargetHealth
// and WriteMetrics answer (the RDS front-end calls them while answering
// Describe calls). The session here takes as long as the test wants to
// end after it was told to.
func TestApplyDrainsOutsideTheLock(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(m *Manager, sp ProxySpec) error
	}{
		{"endpoint removed", func(m *Manager, sp ProxySpec) error {
			sp.Endpoints = sp.Endpoints[:1]
			return m.Apply([]ProxySpec{sp})
		}},
		{"proxy removed", func(m *Manager, sp ProxySpec) error { return m.Apply(nil) }},
		{"manager closed", func(m *Manager, sp ProxySpec) error { return m.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newTestDB(t)
			started := make(chan struct{})
			told := make(chan struct{}) // the session was told to end
			release := make(chan struct{})
			m := newTestManager(t, func(c *Client) {
				close(started)
				<-c.Context().Done()
				close(told)
				<-release
			})
			sp := testSpec(db, testFamily, "default", "second")
			if err := m.Apply([]ProxySpec{sp}); err != nil {
				t.Fatal(err)
			}
			nc, err := net.Dial("tcp", endpointAddr(m, sp.ID, "second"))
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			<-started
			applied := make(chan error, 1)
			go func() { applied <- tc.change(m, sp) }()
			select {
			case <-told:
			case err := <-applied:
				t.Fatalf("Apply returned (%v) before the session ended", err)
			}
			answered := make(chan struct{})
			go func() {
				defer close(answered)
				m.Status(sp.ID, "default")
				m.TargetHealth(sp.ID, "db-1")
				m.WriteMetrics(io.Discard)
			}()
			select {
			case <-answered:
			case <-time.After(10 * time.Second): // a hang guard, not a measurement
				close(release)
				t.Fatal("Status/TargetHealth/WriteMetrics waited for the draining session")
			}
			select {
			case err := <-applied:
				t.Fatalf("Apply returned (%v) before the session ended", err)
			default:
			}
			close(release)
			if err := <-applied; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFamilies: a proxy runs only when a protocol serves its engine
// family; Status says so.
func TestFamilies(t *testing.T) {
	db := newTestDB(t)
	m := newTestManager(t, func(c *Client) {})
	served := testSpec(db, testFamily, "default")
	other := testSpec(db, EngineMySQL, "default")
	other.ID = "prx-2"
	if err := m.Apply([]ProxySpec{served, other}); err != nil {
		t.Fatal(err)
	}
	if ok, err := m.Status(served.ID, "default"); !ok || err != nil {
		t.Fatalf("served family: %v %v", ok, err)
	}
	if ok, err := m.Status(other.ID, "default"); ok || !errors.Is(err, ErrNotRunning) {
		t.Fatalf("family without a protocol: %v %v", ok, err)
	}
}

// TestBorrowPrefer: Borrow returns the preferred connection when it is
// idle in the pool (not the most recently returned one), and the most
// recently returned one otherwise; Held sees what the session holds.
func TestBorrowPrefer(t *testing.T) {
	db := newTestDB(t)
	errc := make(chan error, 1)
	m := newTestManager(t, func(c *Client) {
		errc <- func() error {
			key := PoolKey{User: "u", Database: "d"}
			a, err := c.Borrow(key, nil)
			if err != nil {
				return err
			}
			var held ServerConn
			c.Held(func(sc ServerConn) { held = sc })
			if held != a {
				return errors.New("Held does not see the borrowed connection")
			}
			b, err := c.Borrow(key, nil)
			if err != nil {
				return err
			}
			c.Release(a, true)
			c.Release(b, true)
			got, err := c.Borrow(key, a)
			if err != nil {
				return err
			}
			if got != a {
				return errors.New("prefer: got another idle connection")
			}
			c.Release(got, true)
			if got, err = c.Borrow(key, nil); err != nil {
				return err
			} else if got != a {
				return errors.New("without prefer: not the most recently returned connection")
			}
			c.Release(got, false)
			if got, err = c.Borrow(key, a); err != nil {
				return err
			} else if got != b {
				return errors.New("prefer of a closed connection: not the idle one")
			}
			c.Release(got, true)
			return nil
		}()
	})
	sp := testSpec(db, testFamily, "default")
	if err := m.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", endpointAddr(m, sp.ID, "default"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestBorrowTimeoutAndDialErrors: with the budget taken, Borrow fails
// with Kind BorrowTimeout; a target that refuses connections makes
// Borrow fail after retrying and the target CONNECTION_FAILED.
func TestBorrowTimeoutAndDialErrors(t *testing.T) {
	db := newTestDB(t)
	errc := make(chan error, 1)
	m := newTestManager(t, func(c *Client) {
		errc <- func() error {
			key := PoolKey{User: "u"}
			a, err := c.Borrow(key, nil) // learns max_connections 10: 1 % of it is 1
			if err != nil {
				return err
			}
			defer c.Release(a, true)
			if _, err := c.Borrow(PoolKey{User: "u", Database: "other"}, nil); KindOf(err) != BorrowTimeout {
				return errors.New("a full pool: " + errString(err))
			}
			return nil
		}()
	})
	sp := testSpec(db, testFamily, "default")
	sp.Pool.MaxConnectionsPercent = 1
	sp.Pool.BorrowTimeout = 300 * time.Millisecond
	if err := m.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", endpointAddr(m, sp.ID, "default"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	m.WriteMetrics(&buf)
	if !strings.Contains(buf.String(), `rdslocal_MaxDatabaseConnectionsAllowed{proxy="p1",target="db-1"} 1`) {
		t.Fatalf("metrics:\n%s", buf.String())
	}

	// A target nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	m2 := newTestManager(t, func(c *Client) {
		_, err := c.Borrow(PoolKey{User: "u"}, nil)
		errc <- err
	})
	sp.Targets[0].Port = dead
	if err := m2.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	nc2, err := net.Dial("tcp", endpointAddr(m2, sp.ID, "default"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if err := <-errc; KindOf(err) != BorrowTimeout {
		t.Fatalf("unreachable target: %v", err)
	}
	if st, reason, _ := m2.TargetHealth(sp.ID, "db-1"); st != healthUnavailable || reason != reasonConnectionFailed {
		t.Fatalf("health %s %s", st, reason)
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestDialFailure is the one classifier of dial errors.
func TestDialFailure(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason string
	}{
		{&DialError{Auth: true, Code: "28P01", Msg: "password authentication failed"}, reasonAuthFailure},
		{&DialError{Code: "3D000", Msg: "database does not exist"}, reasonConnectionFailed},
		{&Error{Kind: NoCredentials, Msg: "cannot read secret"}, reasonAuthFailure},
		{context.DeadlineExceeded, reasonUnreachable},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, reasonConnectionFailed},
	} {
		if reason, _ := dialFailure(tc.err); reason != tc.reason {
			t.Errorf("%v: %s, want %s", tc.err, reason, tc.reason)
		}
	}
}

// TestListenRetry: an endpoint whose address is taken reports the bind
// error through Status (the API's incompatible-network) instead of
// staying "being set up", and listens once the address is free, with no
// further Apply.
func TestListenRetry(t *testing.T) {
	db := newTestDB(t)
	m := newTestManager(t, func(c *Client) {})
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp := testSpec(db, testFamily, "default", "other")
	sp.Endpoints[1].Listen = blocker.Addr().String()
	if err := m.Apply([]ProxySpec{sp}); err == nil {
		t.Fatal("Apply: no error for an address in use")
	}
	if ok, err := m.Status(sp.ID, "default"); !ok || err != nil {
		t.Fatalf("default endpoint: %v %v", ok, err)
	}
	if ok, err := m.Status(sp.ID, "other"); ok || err == nil {
		t.Fatalf("endpoint on a taken address: %v %v", ok, err)
	}
	blocker.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := m.Status(sp.ID, "other")
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint not listening after its address was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := net.Dial("tcp", sp.Endpoints[1].Listen)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
