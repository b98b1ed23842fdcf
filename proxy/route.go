package proxy

import (
	"math"
	"sync/atomic"
	"time"
)

// Routing: which targets a proxy has, and which one serves an endpoint's
// borrow. The control plane lists as targets only the instances that serve
// their role now (a writer that is down or handing over, or a reader that
// does not replicate, is left out), so the core routes to what it is
// given; with no target for a role, borrowers wait (up to their deadline)
// for Apply to give one. A READ_ONLY endpoint never falls back to the
// writer: with no reader at all (ProxySpec.HasReaders false) its requests
// fail at once, as RDS documents.
//
// Failover: a target that leaves the list, changes address, or stops being
// the writer is retired (its idle connections close, borrowed ones as they
// come back) and the sessions holding one of its connections — pinned to
// it, or in a transaction or statement on it — are evicted
// (Client.Evicted): their state cannot move to another server. Idle
// sessions hold nothing and carry on against the new target.

// routes maps a target role to the targets serving it. A new routes value
// replaces the old at each Apply; borrowers read it without locks.
type routes struct {
	byRole map[string][]*target
	rr     atomic.Uint32
}

// route returns the target for an endpoint role, nil when there is none:
// the writer for READ_WRITE; for READ_ONLY the reader pickReader chooses.
func (p *proxyState) route(role string) *target {
	if role == RoleReadOnly {
		t, _ := p.pickReader(nil)
		return t
	}
	rt := p.rt.Load()
	if rt == nil {
		return nil
	}
	ts := rt.byRole[role]
	switch len(ts) {
	case 0:
		return nil
	case 1:
		return ts[0]
	}
	return ts[int(rt.rr.Add(1))%len(ts)]
}

// pickReader chooses a reader: among the healthy ones (not UNAVAILABLE
// from their last probe or dial) the one with the fewest borrowed
// connections, ties broken round robin; when none is healthy, the next
// one round robin (healthy false), whose dial tells whether it is back.
// skip, if not nil, excludes readers a borrow already failed on. It
// returns nil when the proxy routes to no reader now.
func (p *proxyState) pickReader(skip map[*target]bool) (t *target, healthy bool) {
	rt := p.rt.Load()
	if rt == nil {
		return nil, false
	}
	ts := rt.byRole[RoleReadOnly]
	n := len(ts)
	if n == 0 {
		return nil, false
	}
	start := int(rt.rr.Add(1))
	// The fewest borrowed among the healthy, and how many have as few.
	var sick *target
	least, ties := int64(math.MaxInt64), 0
	for i := range n {
		c := ts[(start+i)%n]
		if skip[c] {
			continue
		}
		if c.health.Load().State == healthUnavailable {
			if sick == nil {
				sick = c
			}
			continue
		}
		switch b := c.metrics.DatabaseConnectionsCurrentlyBorrowed.Load(); {
		case b < least:
			least, ties = b, 1
		case b == least:
			ties++
		}
	}
	if ties == 0 {
		return sick, false
	}
	// Round robin among them.
	k := start % ties
	for _, c := range ts {
		if skip[c] || c.health.Load().State == healthUnavailable || c.metrics.DatabaseConnectionsCurrentlyBorrowed.Load() != least {
			continue
		}
		if k == 0 {
			return c, true
		}
		k--
	}
	// The gauges moved meanwhile: any healthy one will do.
	for _, c := range ts {
		if !skip[c] && c.health.Load().State != healthUnavailable {
			return c, true
		}
	}
	return sick, false
}

// eachTarget calls f for every routed target.
func (p *proxyState) eachTarget(f func(*target)) {
	if rt := p.rt.Load(); rt != nil {
		for _, ts := range rt.byRole {
			for _, t := range ts {
				f(t)
			}
		}
	}
}

// applyTargets reconciles the proxy's targets with sp (under m.mu): a
// target that left the list, changed address or stopped being the writer
// is retired (its idle connections close now, borrowed ones as they come
// back, its waiters re-route) and the sessions holding its connections are
// evicted; new ones are made, every one takes the pool settings, and the
// routes are replaced.
func (p *proxyState) applyTargets(sp *ProxySpec) {
	want := map[string]TargetSpec{}
	for _, ts := range sp.Targets {
		want[ts.ID] = ts
	}
	var gone []*target
	for id, t := range p.targets {
		ts, ok := want[id]
		if !ok || ts.Host != t.spec.Host || ts.Port != t.spec.Port ||
			roleOf(t.spec.Role) == RoleReadWrite && roleOf(ts.Role) != RoleReadWrite {
			t.retire()
			delete(p.targets, id)
			gone = append(gone, t)
		}
	}
	rt := &routes{byRole: map[string][]*target{}}
	for _, ts := range sp.Targets {
		t := p.targets[ts.ID]
		if t == nil {
			t = newTarget(p, ts)
			p.targets[ts.ID] = t
		}
		t.mu.Lock()
		t.spec.Role = ts.Role
		t.configure(sp.Pool)
		t.grantSlotsLocked()
		t.mu.Unlock()
		role := roleOf(ts.Role)
		rt.byRole[role] = append(rt.byRole[role], t)
	}
	p.rt.Store(rt)
	if len(gone) > 0 {
		p.evict(gone)
	}
}

func roleOf(role string) string {
	if role == "" {
		return RoleReadWrite
	}
	return role
}

// evict ends, through their protocol, the sessions that hold a connection
// of a retired target (under m.mu): see Client.Evicted. Borrow catches the
// sessions that were taking one of its connections meanwhile.
func (p *proxyState) evict(gone []*target) {
	retired := func(b *Pooled) bool {
		if b == nil {
			return false
		}
		for _, t := range gone {
			if b.t == t {
				return true
			}
		}
		return false
	}
	for _, ep := range p.endpoints {
		ep.mu.Lock()
		for c := range ep.clients {
			c.mu.Lock()
			if retired(c.held) || retired(c.pinned) {
				c.evictLocked()
			}
			c.mu.Unlock()
		}
		ep.mu.Unlock()
	}
}

// evictLocked marks the session evicted and interrupts it (c.mu held): the
// held connection's reads and writes fail from now on, and so does the
// wait for the client's next message. The protocol, seeing the error,
// asks Evicted and ends the session with its failover error.
func (c *Client) evictLocked() {
	if c.evicted.Swap(true) {
		return
	}
	now := time.Now()
	if c.held != nil {
		c.held.nc.SetDeadline(now)
	}
	if c.pinned != nil && c.pinned != c.held {
		c.pinned.nc.SetDeadline(now)
	}
	c.conn.SetReadDeadline(now)
}
