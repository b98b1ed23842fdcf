package engine

import (
	"context"
	"slices"
	"sort"
	"time"
)

// Synchronous replication. A primary with synchronous replicas
// (Spec.Synchronous) acknowledges a commit only once one of them has
// received it, for as long as one of them is healthy: PostgreSQL through
// synchronous_standby_names = 'ANY 1 (…)', MariaDB through
// semi-synchronous replication (AFTER_SYNC: the commit waits before it
// becomes visible). The Manager keeps the set in step with the replicas'
// health, so a dead or stalled replica stops holding commits back once the
// health monitor sees it (at once for a process that exits, within two
// checks for one that stops answering): the primary then goes on alone,
// as an RDS Multi-AZ primary does while its standby is replaced.
//
// What the Manager records (instance.sync, reported as
// Instance.SyncReplicas) errs on the side of "not synchronous": a set is
// recorded only once the server has it, and an empty one before the
// server is told. So when a primary dies with a non-empty set, the
// replica that received most of its history has every commit it
// acknowledged; Promote takes what a sibling has first (see
// catchUpSiblings).

// semiSyncTimeout is MariaDB's own bound on a wait for a replica's
// acknowledgement (rpl_semi_sync_master_timeout), after which it goes on
// asynchronously by itself. The Manager acts well before: this is only a
// backstop, long enough that the server never switches on its own while
// the Manager still counts it as synchronous.
const semiSyncTimeout = 30 * time.Second

// syncWait bounds how long a change of the synchronous set may take to
// show on the server.
const syncWait = 5 * time.Second

// syncWanted lists the synchronous replicas of primary that are healthy
// now: running, replicating from it, and not on their way out. The caller
// holds m.mu.
func (m *Manager) syncWantedLocked(primary string) []string {
	var out []string
	for _, r := range m.insts {
		md := r.meta
		if md.Role != RoleReplica || md.ReplicaOf != primary || !md.Sync || r.syncOff ||
			r.status != StatusAvailable || r.srv == nil || r.srv.exited() || !r.repl.Running {
			continue
		}
		out = append(out, md.ID)
	}
	sort.Strings(out)
	return out
}

// resync brings the synchronous set of the primary id in line with the
// health of its synchronous replicas. It does nothing for an instance that
// is not a running spawned primary (a dead primary keeps the set it died
// with). Safe to call from anywhere that holds no syncMu.
func (m *Manager) resync(ctx context.Context, id string) {
	m.mu.Lock()
	p := m.insts[id]
	m.mu.Unlock()
	if p == nil {
		return
	}
	p.syncMu.Lock()
	defer p.syncMu.Unlock()
	m.mu.Lock()
	md, status, srv, have := p.meta, p.status, p.srv, p.sync
	want := m.syncWantedLocked(id)
	m.mu.Unlock()
	if md.Role != RolePrimary || md.External || md.Backend == BackendDocker ||
		status != StatusAvailable || srv == nil || srv.exited() || slices.Equal(want, have) {
		return
	}
	f := p.fam
	admin := adminLogin(f.name(), md)
	ctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	if len(want) == 0 {
		// Recorded first: from here on nobody counts on a replica having
		// every acknowledged commit.
		m.setSync(p, srv, nil)
		if err := f.setSync(ctx, admin, nil); err != nil {
			m.log.Warn("engine: cannot stop synchronous replication", "id", id, "err", err)
			return
		}
		m.log.Info("engine: commits no longer wait for a replica", "id", id, "was", have)
		return
	}
	if err := f.setSync(ctx, admin, want); err != nil {
		// The server may have part of the change: count on nothing.
		m.setSync(p, srv, nil)
		m.log.Warn("engine: cannot set up synchronous replication", "id", id, "replicas", want, "err", err)
		return
	}
	m.setSync(p, srv, want)
	m.log.Info("engine: commits wait for a synchronous replica", "id", id, "replicas", want)
}

// setSync records the synchronous set of p, unless its server changed
// meanwhile.
func (m *Manager) setSync(p *instance, srv *server, set []string) {
	m.mu.Lock()
	if p.srv == srv {
		p.sync = set
	}
	m.mu.Unlock()
}

// resyncPrimaryOf resyncs the primary of inst, when inst is a
// synchronous replica.
func (m *Manager) resyncPrimaryOf(ctx context.Context, inst *instance) {
	md := m.metaOf(inst)
	if md.Role == RoleReplica && md.Sync {
		m.resync(ctx, md.ReplicaOf)
	}
}

// leaveSync takes the synchronous replica inst out of its primary's set
// before its server stops, so that the primary's commits do not wait for
// it meanwhile. startServer lets it back in.
func (m *Manager) leaveSync(inst *instance) {
	m.mu.Lock()
	md := inst.meta
	// After Close every server stops: nobody is left to write.
	in := md.Role == RoleReplica && md.Sync && !inst.syncOff && !m.closed
	inst.syncOff = true
	m.mu.Unlock()
	if in {
		ctx, cancel := context.WithTimeout(context.Background(), syncWait)
		defer cancel()
		m.resync(ctx, md.ReplicaOf)
	}
}

// resyncAll resyncs every running primary (after each round of health
// checks).
func (m *Manager) resyncAll(ctx context.Context) {
	m.mu.Lock()
	var ids []string
	for id, inst := range m.insts {
		if inst.meta.Role == RolePrimary && inst.status == StatusAvailable && !inst.meta.External && inst.meta.Backend != BackendDocker {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.resync(ctx, id)
	}
}

// checkSync compares what the Manager recorded for the primary inst with
// what its server does: a server that went asynchronous by itself
// (MariaDB after rpl_semi_sync_master_timeout) no longer counts as
// synchronous until the set is applied again.
func (m *Manager) checkSync(ctx context.Context, inst *instance, srv *server, md meta) {
	inst.syncMu.Lock()
	defer inst.syncMu.Unlock()
	m.mu.Lock()
	have := inst.sync
	m.mu.Unlock()
	if len(have) == 0 {
		return
	}
	on, err := inst.fam.syncActive(ctx, adminLogin(inst.fam.name(), md))
	if err != nil || on {
		return
	}
	m.setSync(inst, srv, nil)
	m.log.Warn("engine: the primary stopped waiting for its synchronous replicas by itself", "id", md.ID, "replicas", have)
}
