package proxy

import (
	"context"
	"time"
)

// healthInterval is how often each target is probed.
const healthInterval = 15 * time.Second

// targetHealth is the last health outcome of a target.
type targetHealth struct{ State, Reason, Description string }

func (t *target) setHealth(state, reason, desc string) {
	cur := t.health.Load()
	if cur != nil && cur.State == state && cur.Reason == reason && cur.Description == desc {
		return
	}
	t.health.Store(&targetHealth{state, reason, desc})
}

// dialFailed records a failed dial or probe in the target's health.
func (t *target) dialFailed(err error) {
	if busyDialError(err) {
		return // it answered; its slots are taken by others for now
	}
	reason, desc := dialFailure(err)
	t.setHealth(healthUnavailable, reason, desc)
}

// TargetHealth returns a target's state as DescribeDBProxyTargets reports
// it: REGISTERING before the first probe, then AVAILABLE, or UNAVAILABLE
// with reason CONNECTION_FAILED, AUTH_FAILURE or UNREACHABLE, from the last
// connection attempt (a probe every 15 s or a pool dial). It does no I/O
// and never waits for Apply (see Manager).
func (m *Manager) TargetHealth(proxyID, targetID string) (state, reason, description string) {
	m.mu.Lock()
	p := m.proxies[proxyID]
	var t *target
	if p != nil {
		t = p.targets[targetID]
	}
	m.mu.Unlock()
	if t == nil {
		return healthUnavailable, reasonUnreachable, "The target is not registered with a running proxy."
	}
	h := t.health.Load()
	return h.State, h.Reason, h.Description
}

// probeLoop checks every target's health now and every healthInterval
// (and at once after each Apply), and closes idle connections past their
// time (target.reap).
func (p *proxyState) probeLoop() {
	defer p.probeWG.Done()
	lim := p.m.cfg.Limits
	probeT := time.NewTimer(0)
	defer probeT.Stop()
	reapEvery := max(time.Millisecond, min(time.Minute, lim.IdleConnectionAfter/2, lim.ConnectionMaxAge/2))
	reapT := time.NewTicker(reapEvery)
	defer reapT.Stop()
	relistenT := time.NewTicker(time.Second)
	defer relistenT.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-relistenT.C:
			p.relisten()
			continue
		case <-reapT.C:
			p.eachTarget(func(t *target) { t.reap(lim) })
			continue
		case <-probeT.C:
		case <-p.wake:
		}
		p.eachTarget(p.probe)
		probeT.Reset(healthInterval)
	}
}

// probe logs in to t with the first secret that can be read, through the
// proxy's protocol, and disconnects. The probe takes a slot of the
// target's budget, so it never exceeds MaxConnectionsPercent; when the
// pool is full it is skipped (the pool's own dials and borrows report
// health then).
func (p *proxyState) probe(t *target) {
	t.mu.Lock()
	if t.retired || t.open >= t.capacity() {
		t.mu.Unlock()
		return
	}
	t.open++
	t.mu.Unlock()
	defer t.freeSlot()
	sp := p.spec()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var lastErr error
	for _, a := range sp.Auth {
		user, pw, err := p.m.cfg.Credentials.Credentials(sp.Account, sp.Region, a.SecretArn)
		if err != nil {
			lastErr = err
			continue
		}
		err = p.proto.Probe(ctx, DialRequest{Host: t.spec.Host, Port: t.spec.Port, Key: PoolKey{User: user},
			Password: pw, TLS: sp.RequireTLS})
		if err != nil {
			t.dialFailed(err)
			return
		}
		t.setHealth(healthAvailable, "", "")
		return
	}
	if lastErr != nil {
		t.setHealth(healthUnavailable, reasonAuthFailure, lastErr.Error())
	}
}
