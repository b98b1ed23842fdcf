package proxy

import (
	"errors"
	"net"
	"testing"
	"time"
)

// readers makes a proxy state routing READ_ONLY to n readers (and a
// writer), with no server behind them: pickReader looks only at health and
// borrow gauges.
func readers(n int) (*proxyState, []*target) {
	p := &proxyState{}
	rt := &routes{byRole: map[string][]*target{}}
	rt.byRole[RoleReadWrite] = []*target{newTarget(p, TargetSpec{ID: "w", Role: RoleReadWrite})}
	var ts []*target
	for i := range n {
		t := newTarget(p, TargetSpec{ID: string(rune('a' + i)), Role: RoleReadOnly})
		ts = append(ts, t)
	}
	rt.byRole[RoleReadOnly] = ts
	p.rt.Store(rt)
	return p, ts
}

// TestPickReader: the least borrowed healthy reader, round robin among
// equals; unhealthy ones only when no healthy one is left; skipped ones
// never; never the writer.
func TestPickReader(t *testing.T) {
	p, ts := readers(3)
	a, b, c := ts[0], ts[1], ts[2]
	count := func(n int, skip map[*target]bool) map[*target]int {
		got := map[*target]int{}
		for range n {
			r, _ := p.pickReader(skip)
			got[r]++
		}
		return got
	}
	// Equals: each in turn.
	if got := count(9, nil); got[a] != 3 || got[b] != 3 || got[c] != 3 {
		t.Fatalf("equal readers picked %v, want 3 each", got)
	}
	// Least borrowed first.
	a.metrics.DatabaseConnectionsCurrentlyBorrowed.Store(2)
	b.metrics.DatabaseConnectionsCurrentlyBorrowed.Store(1)
	c.metrics.DatabaseConnectionsCurrentlyBorrowed.Store(1)
	if got := count(4, nil); got[a] != 0 || got[b] != 2 || got[c] != 2 {
		t.Fatalf("picked %v, want b and c (1 borrowed) in turn, never a (2)", got)
	}
	// Unhealthy readers are skipped while a healthy one is left.
	c.setHealth(healthUnavailable, reasonConnectionFailed, "down")
	if got := count(4, nil); got[b] != 4 {
		t.Fatalf("picked %v, want b only (c unavailable, a busier)", got)
	}
	// Readers a borrow already failed on are skipped.
	if got := count(4, map[*target]bool{b: true}); got[a] != 4 {
		t.Fatalf("picked %v with b skipped, want a", got)
	}
	// Only unhealthy ones left: one of them, reported unhealthy.
	if r, healthy := p.pickReader(map[*target]bool{a: true, b: true}); r != c || healthy {
		t.Fatalf("picked %v healthy %v, want c unhealthy", r, healthy)
	}
	// Every one skipped, or none routed: nil, never the writer.
	if r, _ := p.pickReader(map[*target]bool{a: true, b: true, c: true}); r != nil {
		t.Fatal("picked a skipped reader")
	}
	p.rt.Store(&routes{byRole: map[string][]*target{RoleReadWrite: p.rt.Load().byRole[RoleReadWrite]}})
	if r := p.route(RoleReadOnly); r != nil {
		t.Fatalf("READ_ONLY routed to %s with no reader", r.spec.ID)
	}
}

// TestReadOnlyWithoutReaders: a READ_ONLY endpoint of a proxy without
// readers fails its borrow at once (NoReaders); with readers of which none
// is routed now it waits for the borrow timeout; a reader whose dial fails
// is skipped for another at once.
func TestReadOnlyWithoutReaders(t *testing.T) {
	db := newTestDB(t)
	// A port nothing listens on: a dead reader.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	type result struct {
		served string
		err    error
	}
	res := make(chan result, 1)
	var served string
	m := newTestManager(t, func(c *Client) {
		sc, err := c.Borrow(PoolKey{User: "u"}, nil)
		var id string
		if err == nil {
			id = sc.pooled().t.spec.ID
			c.Release(sc, true)
		}
		res <- result{id, err}
	})
	sp := testSpec(db, testFamily)
	sp.Endpoints = []EndpointSpec{{Name: "ro", Listen: "127.0.0.1:0", TargetRole: RoleReadOnly}}
	sp.Pool.BorrowTimeout = 300 * time.Millisecond
	borrow := func() error {
		t.Helper()
		nc, err := net.Dial("tcp", endpointAddr(m, sp.ID, "ro"))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		select {
		case r := <-res:
			served = r.served
			return r.err
		case <-time.After(30 * time.Second):
			t.Fatal("no answer")
		}
		return nil
	}
	if err := m.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	if err := borrow(); KindOf(err) != NoReaders {
		t.Fatalf("no readers: %v, want NoReaders", err)
	}
	sp.HasReaders = true
	if err := m.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	if err := borrow(); KindOf(err) != BorrowTimeout {
		t.Fatalf("readers, none routed: %v, want BorrowTimeout (never the writer)", err)
	}
	sp.Targets = append(sp.Targets,
		TargetSpec{ID: "dead", Host: "127.0.0.1", Port: deadPort, Role: RoleReadOnly},
		TargetSpec{ID: "live", Host: "127.0.0.1", Port: db.port(), Role: RoleReadOnly})
	sp.Pool.BorrowTimeout = 30 * time.Second
	if err := m.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := borrow(); err != nil || served != "live" {
			t.Fatalf("borrow %d: %v on %q, want the live reader", i, err, served)
		}
	}
}

// TestFailoverEvicts: when the writer target moves, a session holding one
// of its connections is interrupted where it waits (its client read and
// its server connection time out) and Evicted says why; a session holding
// nothing is left alone and its next borrow reaches the new writer.
func TestFailoverEvicts(t *testing.T) {
	db1, db2 := newTestDB(t), newTestDB(t)
	type report struct {
		evicted, clientTimeout, serverTimeout bool
		next                                  int // port of the next borrow (idle session)
	}
	reports := make(chan report, 2)
	borrowed := make(chan struct{}, 2)
	m := newTestManager(t, func(c *Client) {
		buf := make([]byte, 1)
		if _, err := c.Conn().Read(buf); err != nil { // 'h': hold, 'i': idle
			return
		}
		if buf[0] == 'i' {
			borrowed <- struct{}{}
			c.Conn().Read(buf) // until told to go on
			sc, err := c.Borrow(PoolKey{User: "u"}, nil)
			if err != nil {
				t.Error(err)
				reports <- report{}
				return
			}
			reports <- report{evicted: c.Evicted() != nil, next: sc.pooled().t.spec.Port}
			c.Release(sc, true)
			return
		}
		sc, err := c.Borrow(PoolKey{User: "u"}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		borrowed <- struct{}{}
		var r report
		_, err = c.Conn().Read(buf) // the client says nothing
		r.clientTimeout = isTimeout(err)
		r.evicted = c.Evicted() != nil
		_, err = sc.pooled().nc.Read(buf)
		r.serverTimeout = isTimeout(err)
		c.Release(sc, false)
		reports <- r
	})
	sp := testSpec(db1, testFamily, "default")
	if err := m.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	addr := endpointAddr(m, sp.ID, "default")
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("i"))
	<-borrowed
	holder, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	holder.Write([]byte("h"))
	<-borrowed

	sp.Targets = []TargetSpec{{ID: "db-2", Host: "127.0.0.1", Port: db2.port(), Role: RoleReadWrite}}
	if err := m.Apply([]ProxySpec{sp}); err != nil {
		t.Fatal(err)
	}
	if r := <-reports; !r.evicted || !r.clientTimeout || !r.serverTimeout {
		t.Fatalf("holding session: %+v, want evicted, client and server reads timed out", r)
	}
	idle.Write([]byte("x"))
	if r := <-reports; r.evicted || r.next != db2.port() {
		t.Fatalf("idle session: %+v, want not evicted, next borrow on %d", r, db2.port())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
