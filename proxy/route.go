package proxy

import "sync/atomic"

// Routing: which targets a proxy has, and which one serves an endpoint's
// borrow. The control plane lists as targets only the instances that serve
// their role now (a writer that is down or handing over, or a reader that
// does not replicate, is left out), so the core routes to what it is
// given; with no target for a role, borrowers wait (up to their deadline)
// for Apply to give one.

// routes maps a target role to the targets serving it. A new routes value
// replaces the old at each Apply; borrowers read it without locks.
type routes struct {
	byRole map[string][]*target
	rr     atomic.Uint32
}

// route returns the target for an endpoint role: the writer for
// READ_WRITE, a reader (round robin, else the writer) for READ_ONLY; nil
// when there is none.
func (p *proxyState) route(role string) *target {
	rt := p.rt.Load()
	if rt == nil {
		return nil
	}
	ts := rt.byRole[role]
	if len(ts) == 0 && role == RoleReadOnly {
		ts = rt.byRole[RoleReadWrite]
	}
	switch len(ts) {
	case 0:
		return nil
	case 1:
		return ts[0]
	}
	return ts[int(rt.rr.Add(1))%len(ts)]
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
// target that left the list or changed address is retired (its idle
// connections close now, borrowed ones as they come back, its waiters
// re-route), new ones are made, every one takes the pool settings, and the
// routes are replaced.
func (p *proxyState) applyTargets(sp *ProxySpec) {
	want := map[string]TargetSpec{}
	for _, ts := range sp.Targets {
		want[ts.ID] = ts
	}
	for id, t := range p.targets {
		ts, ok := want[id]
		if !ok || ts.Host != t.spec.Host || ts.Port != t.spec.Port {
			t.retire()
			delete(p.targets, id)
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
		role := ts.Role
		if role == "" {
			role = RoleReadWrite
		}
		rt.byRole[role] = append(rt.byRole[role], t)
	}
	p.rt.Store(rt)
}
