package engine

import (
	"context"
	"fmt"
	"sort"
)

// Switchover hands the primary role from oldID to its replica newID with
// no write lost: old stops taking writes (MariaDB: its user sessions are
// killed, then read_only, then the replica catches up with its binlog
// position; PostgreSQL: a fast shutdown, which sends the standbys all WAL
// first), old stops, and new is
// promoted. On return old is stopped and marked to be rebuilt as a
// replica of new (Demote does it; so does any later start), so it never
// runs as a primary again. If the hand-over fails before new is promoted,
// old is back in service as the primary.
func (m *Manager) Switchover(ctx context.Context, oldID, newID string) error {
	if oldID == newID {
		return fmt.Errorf("%w: %s cannot take over from itself", ErrInvalid, oldID)
	}
	ids := []string{oldID, newID}
	sort.Strings(ids) // a fixed order: two switchovers cannot deadlock
	locked := map[string]*instance{}
	for _, id := range ids {
		inst, err := m.acquire(id)
		if err != nil {
			for _, l := range locked {
				l.op.Unlock()
			}
			return err
		}
		locked[id] = inst
	}
	defer func() {
		for _, l := range locked {
			l.op.Unlock()
		}
	}()
	old, next := locked[oldID], locked[newID]
	om, nm := m.metaOf(old), m.metaOf(next)
	switch {
	case om.External || om.Backend == BackendDocker:
		return fmt.Errorf("%w: %s is not a process-backend instance", ErrUnsupported, oldID)
	case om.Role != RolePrimary:
		return fmt.Errorf("%w: %s is not a primary", ErrInvalid, oldID)
	case nm.Role != RoleReplica || nm.ReplicaOf != oldID:
		return fmt.Errorf("%w: %s is not a replica of %s", ErrInvalid, newID, oldID)
	}
	for _, x := range []*instance{old, next} {
		if err := m.running(x, m.metaOf(x)); err != nil {
			return err
		}
	}
	m.setState(old, nil, StatusRebooting, "change", "handing over to "+newID)
	if err := old.fam.handOver(ctx, m, old, om, nm); err != nil {
		m.resumePrimary(ctx, old, om)
		return fmt.Errorf("switchover from %s to %s: %w", oldID, newID, err)
	}
	// old is stopped with everything new has: it must not come back as
	// a primary.
	stopped := om
	stopped.Role, stopped.ReplicaOf, stopped.Rebuild, stopped.Sync = RoleReplica, newID, true, nm.Sync
	if err := saveMeta(old.dir, stopped); err != nil {
		m.resumePrimary(ctx, old, om)
		return err
	}
	m.setState(old, func() { old.meta = stopped }, StatusStopped, "change", "handed over to "+newID)
	if err := m.promoteLocked(ctx, next); err != nil {
		// new is still a replica of old, which has every write.
		if serr := saveMeta(old.dir, om); serr == nil {
			m.setState(old, func() { old.meta = om }, StatusStopped)
			m.resumePrimary(ctx, old, om)
		}
		return fmt.Errorf("switchover from %s to %s: %w", oldID, newID, err)
	}
	return nil
}

// resumePrimary puts a primary whose hand-over failed back in service.
func (m *Manager) resumePrimary(ctx context.Context, inst *instance, md meta) {
	if m.running(inst, md) == nil {
		if err := inst.fam.exec(ctx, adminLogin(inst.fam.name(), md), inst.fam.resumeSQL()...); err != nil {
			m.log.Warn("engine: cannot put the primary back in service", "id", md.ID, "err", err)
		}
		m.setState(inst, nil, StatusAvailable, "change", "hand-over abandoned")
		return
	}
	if err := m.startExisting(ctx, inst, md); err != nil {
		m.log.Warn("engine: cannot restart the primary after a failed hand-over", "id", md.ID, "err", err)
	}
}

// Demote rebuilds id as a replica of primaryID and returns once it
// replicates and has what primaryID had: a former primary after a
// failover (stopped, dead or even running: it is stopped first), or a
// replica that cannot follow primaryID. PostgreSQL rewinds the data
// directory to the new primary's timeline with pg_rewind, or takes a
// fresh pg_basebackup when rewinding is impossible; MariaDB resumes GTID
// replication from its own position, or replays the new primary's binlog
// into a fresh data directory when the new primary lacks that position
// (the instance had writes that never reached it). Either way the
// instance's own writes that the new primary never had are gone, as they
// are on RDS.
func (m *Manager) Demote(ctx context.Context, id, primaryID string) error {
	if id == primaryID {
		return fmt.Errorf("%w: %s cannot follow itself", ErrInvalid, id)
	}
	inst, err := m.acquire(id)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	md := m.metaOf(inst)
	if md.External || md.Backend == BackendDocker {
		return fmt.Errorf("%w: %s: rebuilding as a replica needs the process backend", ErrUnsupported, id)
	}
	pm, err := m.primaryFor(inst.fam, Spec{Engine: md.Engine, ReplicaOf: primaryID})
	if err != nil {
		return err
	}
	m.setState(inst, nil, StatusRebooting, "change", "rebuilding as a replica of "+primaryID)
	m.stopServer(inst, StatusRebooting)
	// It takes the place of the promoted replica in its primary's group:
	// synchronous (a Multi-AZ standby, an Aurora reader) if that one was.
	md.Role, md.ReplicaOf, md.Rebuild, md.Sync = RoleReplica, primaryID, true, pm.Sync
	if err := saveMeta(inst.dir, md); err != nil {
		return err
	}
	m.setState(inst, func() { inst.meta = md }, StatusRebooting)
	return m.rebuild(ctx, inst, md, pm)
}

// rebuild does the work of Demote on a stopped instance whose meta says
// Rebuild. The caller holds inst.op.
func (m *Manager) rebuild(ctx context.Context, inst *instance, md, pm meta) error {
	f := inst.fam
	err := func() error {
		in, err := m.installFor(md.Engine, md.Major)
		if err != nil {
			return err
		}
		r, err := m.runAs(f)
		if err != nil {
			return err
		}
		t, err := m.template(ctx, f, in, r)
		if err != nil {
			return err
		}
		md.AdminPassword, md.MasterPassword = pm.AdminPassword, pm.MasterPassword
		if err := f.rejoin(ctx, m, in, r, inst, &md, pm, t); err != nil {
			return err
		}
		md.Rebuild = false
		if md.EngineVersion, md.MaxConnections, err = f.serverInfo(ctx, adminLogin(f.name(), md)); err != nil {
			return err
		}
		return saveMeta(inst.dir, md)
	}()
	if err != nil {
		err = fmt.Errorf("rebuild %s as a replica of %s: %w", md.ID, pm.ID, err)
		m.stopServer(inst, StatusFailed, "err", err.Error())
		return err
	}
	m.setState(inst, func() { inst.meta = md }, StatusAvailable, "change", "replica of "+pm.ID)
	m.setReplicating(inst)
	return nil
}

// Position says how much of its primary's history the replica id has
// received, to pick the most caught-up one for promotion: WAL bytes on
// PostgreSQL, the sum of the GTID sequence numbers received on MariaDB.
// It is comparable between replicas of the same primary only.
func (m *Manager) Position(ctx context.Context, id string) (uint64, error) {
	m.mu.Lock()
	inst := m.insts[id]
	var md meta
	if inst != nil {
		md = inst.meta
	}
	m.mu.Unlock()
	if inst == nil {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := m.running(inst, md); err != nil {
		return 0, err
	}
	st, err := inst.fam.replicaStatus(ctx, adminLogin(inst.fam.name(), md))
	if err != nil {
		return 0, fmt.Errorf("position of %s: %w", id, err)
	}
	return max(st.received, st.replayed), nil
}
