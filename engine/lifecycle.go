package engine

import (
	"context"
	"fmt"
	"os"
)

// startServer launches inst's server as md describes it.
// A server starts with asynchronous replication: the health monitor (or
// whoever makes a replica of it) sets its synchronous set up.
func (m *Manager) startServer(inst *instance, in install, r runAs, md meta) (*server, error) {
	clearStalePid(inst.fam.pidFile(inst.dataDir()), inst.dataDir())
	if err := inst.fam.beforeStart(inst.dataDir()); err != nil {
		return nil, err
	}
	cmd := inst.fam.command(in, r, inst.dir, md)
	srv, err := m.launch(inst.dir, cmd, inst.fam.stopSignal(), func(s *server) { m.onExit(inst, s) })
	if err != nil {
		return nil, err
	}
	srv.port = md.Port
	m.mu.Lock()
	inst.srv, inst.sync, inst.syncOff = srv, nil, false
	m.mu.Unlock()
	return srv, nil
}

// onExit records a server that exited without being asked to, and
// reports it if the instance was in service.
func (m *Manager) onExit(inst *instance, s *server) {
	// What is left of a dead server is of no use, holds its shared
	// memory, and may still commit a transaction nobody will see again.
	killStragglers(s.data)
	m.mu.Lock()
	current, was, id := inst.srv == s, inst.status, inst.meta.ID
	m.mu.Unlock()
	if !current {
		return
	}
	err := s.withLog(fmt.Errorf("server exited unexpectedly: %v", s.err))
	m.setState(inst, nil, StatusFailed, "err", err.Error())
	m.resyncPrimaryOf(context.Background(), inst)
	if was == StatusAvailable {
		m.emit(Event{ID: id, Kind: EventDown, Detail: fmt.Sprintf("server exited unexpectedly: %v", s.err)})
	}
}

// Delete stops the instance's server and removes its data. For an
// external instance it only forgets it.
func (m *Manager) Delete(ctx context.Context, id string) error {
	inst, err := m.acquire(id)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	md := m.metaOf(inst)
	m.setState(inst, nil, StatusDeleting)
	m.stopServer(inst, StatusDeleting)
	if md.Backend == BackendDocker {
		if err := m.dockerRemove(inst, md, true); err != nil {
			return fmt.Errorf("delete instance %s: %w", id, err)
		}
	}
	if inst.dir != "" {
		if err := os.RemoveAll(inst.dir); err != nil {
			return fmt.Errorf("remove %s: %w", inst.dir, err)
		}
	}
	if !md.External {
		m.ports.release(id, md.Port)
	}
	m.mu.Lock()
	delete(m.insts, id)
	m.mu.Unlock()
	m.log.Info("engine: instance deleted", "id", id, "engine", md.Engine, "port", md.Port)
	return nil
}

// Reboot restarts the instance's server (starts it, if it was stopped or
// failed) and returns once it accepts logins again.
func (m *Manager) Reboot(ctx context.Context, id string) error {
	inst, err := m.acquire(id)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	md := m.metaOf(inst)
	if md.External {
		return fmt.Errorf("%w: %s is an external server, which rdslocal does not run", ErrUnsupported, id)
	}
	m.setState(inst, nil, StatusRebooting)
	m.stopServer(inst, StatusRebooting)
	return m.startExisting(ctx, inst, md)
}

// startExisting starts the server of an instance that has its data and
// waits for it. The caller holds inst.op.
func (m *Manager) startExisting(ctx context.Context, inst *instance, md meta) error {
	if md.Backend == BackendDocker {
		return m.startDocker(ctx, inst, md)
	}
	if md.Rebuild {
		// A former primary (or a replica that could not follow its new
		// primary): it runs again only as a replica of ReplicaOf.
		pm, err := m.primaryFor(inst.fam, Spec{Engine: md.Engine, ReplicaOf: md.ReplicaOf})
		if err != nil {
			err = fmt.Errorf("start instance %s: it must first be rebuilt as a replica of %s: %w", md.ID, md.ReplicaOf, err)
			m.stopServer(inst, StatusFailed, "err", err.Error())
			return err
		}
		return m.rebuild(ctx, inst, md, pm)
	}
	err := func() error {
		in, err := m.installFor(md.Engine, md.Major)
		if err != nil {
			return err
		}
		r, err := m.runAs(inst.fam)
		if err != nil {
			return err
		}
		srv, err := m.startServer(inst, in, r, md)
		if err != nil {
			return err
		}
		f := inst.fam
		admin := adminLogin(f.name(), md)
		if err := m.waitReady(ctx, srv, func(ctx context.Context) error { return f.ping(ctx, admin) }, f.refused); err != nil {
			return err
		}
		md.EngineVersion, md.MaxConnections, err = f.serverInfo(ctx, admin)
		return err
	}()
	if err != nil {
		err = fmt.Errorf("start instance %s: %w", md.ID, err)
		m.stopServer(inst, StatusFailed, "err", err.Error())
		return err
	}
	if err := saveMeta(inst.dir, md); err != nil {
		m.log.Warn("engine: cannot save instance state", "id", md.ID, "err", err)
	}
	m.setState(inst, func() { inst.meta = md }, StatusAvailable, "version", md.EngineVersion)
	return nil
}

// SetPassword changes the master user's password on the server itself
// (ALTER ROLE / ALTER USER). On a primary the change replicates to its
// replicas; a replica refuses it.
func (m *Manager) SetPassword(ctx context.Context, id, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	inst, err := m.acquire(id)
	if err != nil {
		return err
	}
	defer inst.op.Unlock()
	md := m.metaOf(inst)
	if md.Role == RoleReplica {
		return fmt.Errorf("%w: %s is a read replica of %s; change the password there", ErrUnsupported, id, md.ReplicaOf)
	}
	if err := m.running(inst, md); err != nil {
		return err
	}
	f := inst.fam
	if err := f.setPassword(ctx, adminLogin(f.name(), md), md.MasterUsername, password, md.External); err != nil {
		return fmt.Errorf("set master password of %s: %w", id, err)
	}
	md.MasterPassword = password
	if err := saveMeta(inst.dir, md); err != nil {
		return err
	}
	m.setState(inst, func() { inst.meta = md }, StatusAvailable, "change", "master password")
	return nil
}

// Check verifies that the instance's server answers the Manager's own
// login. An external instance's status follows the result.
func (m *Manager) Check(ctx context.Context, id string) error {
	m.mu.Lock()
	inst := m.insts[id]
	var md meta
	var status string
	if inst != nil {
		md, status = inst.meta, inst.status
	}
	m.mu.Unlock()
	if inst == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := m.running(inst, md); err != nil {
		return err
	}
	err := inst.fam.ping(ctx, adminLogin(inst.fam.name(), md))
	// A container is not our child: like an external server, its
	// status follows what Check finds.
	if (md.External || md.Backend == BackendDocker) && (status == StatusAvailable || status == StatusFailed) {
		next := StatusAvailable
		if err != nil {
			next = StatusFailed
		}
		if next != status {
			m.setState(inst, nil, next)
		}
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", id, err)
	}
	return nil
}

// running returns an error unless inst's server runs (external servers
// are assumed to).
func (m *Manager) running(inst *instance, md meta) error {
	if md.External {
		return nil
	}
	m.mu.Lock()
	srv, ctr := inst.srv, inst.ctr
	m.mu.Unlock()
	if md.Backend == BackendDocker {
		if ctr == nil || !ctr.running.Load() {
			return fmt.Errorf("%w: %s: %w", ErrUnsupported, md.ID, errNotRunning)
		}
		return nil
	}
	if srv == nil || srv.exited() {
		return fmt.Errorf("%w: %s: %w", ErrUnsupported, md.ID, errNotRunning)
	}
	return nil
}
