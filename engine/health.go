package engine

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// How the Manager watches its servers (see Config.HealthInterval).
const (
	defaultHealthInterval = time.Second
	defaultMaxReplicaLag  = 30 * time.Second
	// healthTimeout bounds one check; healthFailures checks failing in a
	// row make an instance down.
	healthTimeout  = 2 * time.Second
	healthFailures = 2
)

// replState is what a replica reports about its replication.
type replState struct {
	inRecovery bool   // a standby (PostgreSQL) / read_only (MariaDB)
	streaming  bool   // receiving from a primary and applying
	senderPort int    // the port of the primary it receives from
	timeline   int    // the timeline it receives (PostgreSQL)
	lag        int64  // seconds behind its primary; -1: it does not say (PostgreSQL)
	err        string // the replication error, if any
	received   uint64 // how far it has received (WAL bytes; GTID sequence numbers)
	replayed   uint64 // how far it has applied
	fatal      bool   // err will not go away by waiting (MariaDB 1236: the primary lacks what it asks for)
}

// Watch makes fn receive the events of every instance (see Event): one at
// a time, on a goroutine of the Manager, in the order they happened. fn
// must not block for long; a later call replaces fn.
func (m *Manager) Watch(fn func(Event)) {
	m.watchMu.Lock()
	m.watchFn = fn
	m.watchMu.Unlock()
}

// emit queues an event for the watcher.
func (m *Manager) emit(ev Event) {
	ev.Time = time.Now()
	m.log.Info("engine: event", "id", ev.ID, "kind", ev.Kind, "detail", ev.Detail)
	select {
	case m.events <- ev:
	default:
		m.log.Warn("engine: event queue full; event dropped", "id", ev.ID, "kind", ev.Kind)
	}
}

// deliver hands queued events to the watcher until the Manager closes.
func (m *Manager) deliver() {
	defer m.loops.Done()
	for {
		select {
		case ev := <-m.events:
			m.watchMu.Lock()
			fn := m.watchFn
			m.watchMu.Unlock()
			if fn != nil {
				fn(ev)
			}
		case <-m.stopBg:
			return
		}
	}
}

// monitor checks every running spawned server each HealthInterval until
// the Manager closes.
func (m *Manager) monitor() {
	defer m.loops.Done()
	t := time.NewTicker(m.healthInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stopBg:
			return
		case <-t.C:
		}
		m.checkAll()
	}
}

// checkAll runs one round of checks, primaries first: a PostgreSQL
// replica's lag is what its primary reports.
func (m *Manager) checkAll() {
	m.mu.Lock()
	var list []*instance
	for _, inst := range m.insts {
		if inst.status == StatusAvailable && !inst.meta.External && inst.meta.Backend != BackendDocker {
			list = append(list, inst)
		}
	}
	m.mu.Unlock()
	lags := map[string]map[string]time.Duration{}
	var mu sync.Mutex
	for _, role := range []string{RolePrimary, RoleReplica} {
		var wg sync.WaitGroup
		for _, inst := range list {
			if m.metaOf(inst).Role == role {
				wg.Go(func() { m.checkOne(inst, lags, &mu) })
			}
		}
		wg.Wait()
	}
	sctx, scancel := context.WithTimeout(context.Background(), healthTimeout)
	defer scancel()
	m.resyncAll(sctx)
}

// checkOne checks one instance, unless an operation holds it. Each check
// has healthTimeout of its own: a replica's check must not inherit what is
// left after slow checks of the primaries on a loaded machine, or a
// healthy replica would count as not answering.
func (m *Manager) checkOne(inst *instance, lags map[string]map[string]time.Duration, mu *sync.Mutex) {
	if !inst.op.TryLock() {
		return
	}
	defer inst.op.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	m.mu.Lock()
	md, status, srv := inst.meta, inst.status, inst.srv
	m.mu.Unlock()
	if status != StatusAvailable || srv == nil || srv.exited() {
		return
	}
	f := inst.fam
	admin := adminLogin(f.name(), md)
	var err error
	if md.Role == RolePrimary {
		var l map[string]time.Duration
		if l, err = f.replicaLags(ctx, admin); err == nil {
			mu.Lock()
			lags[md.ID] = l
			mu.Unlock()
			m.checkSync(ctx, inst, srv, md)
		}
	} else {
		var st replState
		if st, err = f.replicaStatus(ctx, admin); err == nil {
			mu.Lock()
			lag, known := lags[md.ReplicaOf][md.ID]
			mu.Unlock()
			m.recordReplication(inst, md, st, lag, known)
		}
	}
	// A server that answers with an error is up.
	if err == nil || f.refused(err) {
		m.mu.Lock()
		inst.fails = 0
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	inst.fails++
	n := inst.fails
	m.mu.Unlock()
	if n >= healthFailures {
		m.down(inst, srv, fmt.Sprintf("server not answering: %v", err))
	}
}

// recordReplication stores a replica's state and reports a change of
// Running.
func (m *Manager) recordReplication(inst *instance, md meta, st replState, lag time.Duration, lagKnown bool) {
	r := Replication{Checked: time.Now()}
	m.mu.Lock()
	p := m.insts[md.ReplicaOf]
	var pm meta
	var pstatus string
	if p != nil {
		pm, pstatus = p.meta, p.status
	}
	m.mu.Unlock()
	if st.lag >= 0 {
		r.Lag = time.Duration(st.lag) * time.Second
	} else if lagKnown {
		r.Lag = lag
	}
	switch {
	case p == nil || pstatus != StatusAvailable:
		r.Error = fmt.Sprintf("its primary %s is not available", md.ReplicaOf)
	case !st.inRecovery:
		r.Error = "the server is not a replica"
	case !st.streaming || st.senderPort != pm.Port:
		r.Error = "replication from " + md.ReplicaOf + " is not running"
		if st.err != "" {
			r.Error += ": " + st.err
		}
	case r.Lag > m.maxLag:
		r.Error = fmt.Sprintf("the replica is %s behind its primary", r.Lag.Round(time.Second))
	default:
		r.Running = true
	}
	m.mu.Lock()
	was := inst.repl
	inst.repl = r
	m.mu.Unlock()
	// The first check always reports: until then the replica's state was
	// unknown, and whoever acted on "not known to replicate" must learn.
	if first := was.Checked.IsZero(); first || was.Running != r.Running {
		m.emit(Event{ID: md.ID, Kind: EventReplication, Running: r.Running, First: first, Detail: r.Error})
	}
}

// setReplicating records that the replica inst was just seen replicating
// (Create, Repoint, Demote check it before they return).
func (m *Manager) setReplicating(inst *instance) {
	m.mu.Lock()
	was := inst.repl
	inst.repl = Replication{Running: true, Checked: time.Now()}
	id := inst.meta.ID
	m.mu.Unlock()
	if !was.Running && !was.Checked.IsZero() {
		m.emit(Event{ID: id, Kind: EventReplication, Running: true})
	}
	m.resyncPrimaryOf(context.Background(), inst)
}

// down kills a server that stopped answering and reports it. The caller
// holds inst.op.
func (m *Manager) down(inst *instance, srv *server, why string) {
	m.leaveSync(inst)
	srv.kill()
	m.setState(inst, func() { inst.srv, inst.fails = nil, 0 }, StatusFailed, "err", why)
	m.emit(Event{ID: m.metaOf(inst).ID, Kind: EventDown, Detail: why})
}

// kill ends the server's whole process group at once (a server that does
// not answer its stop signal, or the orphans of a dead postmaster).
func (s *server) kill() {
	if s == nil {
		return
	}
	s.stopping.Store(true)
	_ = syscall.Kill(-s.pid, syscall.SIGKILL)
	<-s.done
	killStragglers(s.data)
}
