package engine

import (
	"context"
	"fmt"
	"time"
)

// Promote turns a replica into a writable primary that no longer follows
// anyone: pg_promote() on PostgreSQL; on MariaDB, the relay log applied,
// STOP SLAVE, RESET SLAVE ALL and read_only off. It returns once the
// instance takes writes.
//
// When its primary is down and another replica of it received more of
// its history, the replica first takes the rest from that one
// (PostgreSQL: it streams from it, cascading; MariaDB: GTID replication
// from it, which logs what it applies): synchronous replication waits
// for any one of the synchronous replicas, so the one that received most
// may be another, and a promotion loses nothing that any running replica
// has.
func (m *Manager) Promote(ctx context.Context, id string) error {
	inst, err := m.acquire(id)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	return m.promoteLocked(ctx, inst)
}

// promoteLocked is Promote for a caller holding inst.op.
func (m *Manager) promoteLocked(ctx context.Context, inst *instance) error {
	md := m.metaOf(inst)
	if md.Role != RoleReplica {
		return fmt.Errorf("%w: %s is not a replica", ErrInvalid, md.ID)
	}
	if err := m.running(inst, md); err != nil {
		return err
	}
	f := inst.fam
	if err := m.catchUpSiblings(ctx, inst, md); err != nil {
		return fmt.Errorf("promote %s: %w", md.ID, err)
	}
	if err := f.promote(ctx, adminLogin(f.name(), md)); err != nil {
		return fmt.Errorf("promote %s: %w", md.ID, err)
	}
	old := md.ReplicaOf
	m.retireFormer(old, md.ID, md.Sync)
	md.Role, md.ReplicaOf = RolePrimary, ""
	if err := saveMeta(inst.dir, md); err != nil {
		return err
	}
	m.setState(inst, func() { inst.meta, inst.repl = md, Replication{} }, StatusAvailable, "change", "promoted", "formerReplicaOf", old)
	return nil
}

// retireFormer marks oldID, the primary a replica was just promoted away
// from, to be rebuilt as a replica of newID (as Switchover does for a
// live one) when its server is not running: it died, and a failover
// replaced it. Its next start then rebuilds it (Demote does it at once),
// so a restart of rdslocal before the Demote does not bring it back as a
// second, diverged primary. A running primary (a promotion beside it) and
// one busy with an operation are left alone.
func (m *Manager) retireFormer(oldID, newID string, sync bool) {
	m.mu.Lock()
	p := m.insts[oldID]
	m.mu.Unlock()
	if p == nil || !p.op.TryLock() {
		return
	}
	defer p.op.Unlock()
	md := m.metaOf(p)
	if md.Role != RolePrimary || md.External || md.Backend == BackendDocker || m.running(p, md) == nil {
		return
	}
	md.Role, md.ReplicaOf, md.Rebuild, md.Sync = RoleReplica, newID, true, sync
	if err := saveMeta(p.dir, md); err != nil {
		m.log.Warn("engine: cannot mark the former primary for a rebuild", "id", oldID, "err", err)
		return
	}
	m.mu.Lock()
	p.meta = md
	m.mu.Unlock()
	m.log.Info("engine: former primary to be rebuilt as a replica", "id", oldID, "replicaOf", newID)
}

// catchUpTimeout bounds the wait for a replica to take what a sibling
// has.
const catchUpTimeout = 15 * time.Second

// catchUpSiblings makes the replica inst (md), whose primary is not
// running, take from the sibling that received most of the primary's
// history what it lacks. The siblings are only read from.
func (m *Manager) catchUpSiblings(ctx context.Context, inst *instance, md meta) error {
	m.mu.Lock()
	p := m.insts[md.ReplicaOf]
	up := p != nil && p.status == StatusAvailable && p.srv != nil && !p.srv.exited()
	var sibs []meta
	for _, s := range m.insts {
		sm := s.meta
		if s != inst && sm.Role == RoleReplica && sm.ReplicaOf == md.ReplicaOf && !sm.External && sm.Backend != BackendDocker &&
			s.status == StatusAvailable && s.srv != nil && !s.srv.exited() {
			sibs = append(sibs, sm)
		}
	}
	m.mu.Unlock()
	if up || len(sibs) == 0 {
		return nil
	}
	f := inst.fam
	st, err := f.replicaStatus(ctx, adminLogin(f.name(), md))
	if err != nil {
		return err
	}
	own := max(st.received, st.replayed)
	var best meta
	var most uint64
	for _, sm := range sibs {
		sst, err := f.replicaStatus(ctx, adminLogin(f.name(), sm))
		if err != nil {
			m.log.Warn("engine: cannot read the position of a sibling replica", "id", md.ID, "sibling", sm.ID, "err", err)
			continue
		}
		if pos := max(sst.received, sst.replayed); pos > most {
			best, most = sm, pos
		}
	}
	if most <= own {
		return nil
	}
	start := time.Now()
	if err := f.takeFrom(ctx, md, best, catchUpTimeout); err != nil {
		return fmt.Errorf("%w: taking what %s received and %s did not: %v", ErrReplication, best.ID, md.ID, err)
	}
	m.log.Info("engine: replica took what a sibling had received before its promotion", "id", md.ID, "from", best.ID,
		"had", own, "sibling", most, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// repointTimeout bounds the wait for a repointed replica to stream from its
// new primary.
const repointTimeout = 15 * time.Second

// Repoint makes the replica id follow primaryID instead of its current
// primary, e.g. after primaryID was promoted in a failover, and waits
// until it replicates from it. primaryID must be a primary of the same
// family that descends from the same original primary (PostgreSQL follows
// the new timeline; MariaDB resumes from its GTID position). A replica
// that has what primaryID never had (it received more of the old
// primary's writes) cannot follow: the error wraps ErrReplication, and
// Demote rebuilds it.
func (m *Manager) Repoint(ctx context.Context, id, primaryID string) error {
	inst, err := m.acquire(id)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	md := m.metaOf(inst)
	if md.Role != RoleReplica {
		return fmt.Errorf("%w: %s is not a replica", ErrInvalid, id)
	}
	if id == primaryID {
		return fmt.Errorf("%w: %s cannot follow itself", ErrInvalid, id)
	}
	pm, err := m.primaryFor(inst.fam, Spec{Engine: md.Engine, ReplicaOf: primaryID})
	if err != nil {
		return err
	}
	if err := m.running(inst, md); err != nil {
		return err
	}
	f := inst.fam
	if err := f.exec(ctx, adminLogin(f.name(), md), f.repointSQL(md, pm)...); err != nil {
		return fmt.Errorf("repoint %s at %s: %w", id, primaryID, err)
	}
	old := md.ReplicaOf
	md.ReplicaOf = primaryID
	if err := saveMeta(inst.dir, md); err != nil {
		return err
	}
	m.setState(inst, func() { inst.meta = md }, StatusAvailable, "change", "repointed", "from", old, "to", primaryID)
	if err := f.waitReplicating(ctx, m, md, pm, repointTimeout); err != nil {
		return fmt.Errorf("repoint %s at %s: %w", id, primaryID, m.withServerLog(inst, err))
	}
	m.setReplicating(inst)
	return nil
}

// withServerLog appends the tail of inst's server log to err.
func (m *Manager) withServerLog(inst *instance, err error) error {
	m.mu.Lock()
	srv := inst.srv
	m.mu.Unlock()
	if srv == nil {
		return err
	}
	return srv.withLog(err)
}
