package engine

import (
	"context"
	"fmt"
)

// Promote turns a replica into a writable primary that no longer follows
// anyone: pg_promote() on PostgreSQL; STOP SLAVE, RESET SLAVE ALL and
// read_only off on MariaDB. It returns once the instance takes writes.
func (m *Manager) Promote(ctx context.Context, id string) error {
	inst, err := m.acquire(id)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	md := m.metaOf(inst)
	if md.Role != RoleReplica {
		return fmt.Errorf("%w: %s is not a replica", ErrInvalid, id)
	}
	if err := m.running(inst, md); err != nil {
		return err
	}
	f := inst.fam
	if err := f.exec(ctx, adminLogin(f.name(), md), f.promoteSQL()...); err != nil {
		return fmt.Errorf("promote %s: %w", id, err)
	}
	old := md.ReplicaOf
	md.Role, md.ReplicaOf = RolePrimary, ""
	if err := saveMeta(inst.dir, md); err != nil {
		return err
	}
	m.setState(inst, func() { inst.meta = md }, StatusAvailable, "change", "promoted", "formerReplicaOf", old)
	return nil
}

// Repoint makes the replica id follow primaryID instead of its current
// primary, e.g. after primaryID was promoted in a failover. primaryID
// must be a primary of the same family that descends from the same
// original primary (PostgreSQL follows the new timeline; MariaDB resumes
// from its GTID position).
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
	return nil
}
