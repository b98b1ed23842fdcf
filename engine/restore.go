package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// loadInstances registers, stopped, every instance found on disk, and
// reserves its port so Create does not hand it out before Restore.
func (m *Manager) loadInstances() error {
	dirs, err := os.ReadDir(filepath.Join(m.root, instancesName))
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(m.root, instancesName, d.Name())
		md, err := loadMeta(dir)
		if errors.Is(err, os.ErrNotExist) {
			// A Create that died before its instance was ready.
			m.log.Warn("engine: removing an unfinished instance", "dir", dir)
			_ = os.RemoveAll(dir)
			continue
		}
		if err != nil {
			return err
		}
		fname, ok := engineFamily(md.Engine)
		if !ok || md.ID != d.Name() {
			return fmt.Errorf("%s: unexpected engine %q or id %q", dir, md.Engine, md.ID)
		}
		if !md.External {
			_ = m.ports.reserve(md.ID, md.Port, false)
		}
		m.insts[md.ID] = &instance{dir: dir, fam: m.families[fname], meta: md, status: StatusStopped}
	}
	return nil
}

// Restore brings back the instances of specs. One found on disk (a
// previous Manager's DataDir) is started with its own data, port, role and
// passwords as they were last saved; the Spec only names it. One not on
// disk is created from its Spec. Primaries start before replicas; each
// group starts in parallel. Instances already running are left alone;
// instances on disk that specs do not name stay stopped. The error joins
// every instance's failure; a failed instance stays registered with
// status failed, so Reboot can retry it or Delete remove it.
func (m *Manager) Restore(ctx context.Context, specs []Spec) error {
	finish := m.unfinishedSwitchovers()
	var first, second []Spec
	for _, s := range specs {
		m.mu.Lock()
		inst := m.insts[s.ID]
		replica := s.ReplicaOf != ""
		if inst != nil {
			replica = inst.meta.Role == RoleReplica && !finish[s.ID]
		}
		m.mu.Unlock()
		if replica {
			second = append(second, s)
		} else {
			first = append(first, s)
		}
	}
	var errs []error
	for _, group := range [][]Spec{first, second} {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range group {
			wg.Go(func() {
				if err := m.restoreOne(ctx, s, finish[s.ID]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

// unfinishedSwitchovers finds the replicas a Switchover was promoting
// when rdslocal stopped: their primary is stopped and marked to be rebuilt
// as their replica (Rebuild, ReplicaOf them), but they are still its
// replica. The hand-over had sent them every write before the mark, so
// Restore promotes them first; the former primary is then rebuilt under
// them as usual.
func (m *Manager) unfinishedSwitchovers() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, a := range m.insts {
		if !a.meta.Rebuild {
			continue
		}
		if b := m.insts[a.meta.ReplicaOf]; b != nil && b.meta.Role == RoleReplica && b.meta.ReplicaOf == a.meta.ID {
			out[b.meta.ID] = true
		}
	}
	return out
}

// restoreOne brings one instance back; promote finishes a switchover to it
// (see unfinishedSwitchovers).
func (m *Manager) restoreOne(ctx context.Context, s Spec, promote bool) error {
	m.mu.Lock()
	known := m.insts[s.ID] != nil
	m.mu.Unlock()
	if !known {
		_, err := m.Create(ctx, s)
		return err
	}
	inst, err := m.acquire(s.ID)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	md := m.metaOf(inst)
	if md.External {
		err := inst.fam.ping(ctx, masterLogin(inst.fam.name(), md))
		if err != nil {
			m.setState(inst, nil, StatusFailed, "err", err.Error())
			return fmt.Errorf("restore external instance %s: %w", s.ID, err)
		}
		m.setState(inst, nil, StatusAvailable)
		return nil
	}
	if m.running(inst, md) == nil {
		return nil
	}
	if err := m.startExisting(ctx, inst, md); err != nil || !promote {
		return err
	}
	m.log.Warn("engine: finishing a switchover that stopped before its promotion", "id", md.ID, "formerPrimary", md.ReplicaOf)
	return m.promoteLocked(ctx, inst)
}
