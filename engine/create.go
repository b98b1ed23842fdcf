package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Create provisions the instance s describes and returns once its server
// accepts the master credentials (for a replica: once it also has what
// the primary had). On failure nothing is left behind: the server is
// stopped, its directory removed, its port released.
func (m *Manager) Create(ctx context.Context, s Spec) (Instance, error) {
	if err := s.validate(); err != nil {
		return Instance{}, err
	}
	fname, _ := engineFamily(s.Engine)
	md := &meta{
		ID: s.ID, Engine: s.Engine, InstanceClass: s.InstanceClass, Host: loopback, Role: RolePrimary,
		MasterUsername: s.MasterUsername, MasterPassword: s.MasterPassword, DBName: s.DBName,
		Sync: s.Synchronous,
	}
	inst := &instance{fam: m.families[fname], status: StatusCreating, meta: *md,
		dir: filepath.Join(m.root, instancesName, s.ID)}
	inst.op.Lock()
	defer inst.op.Unlock()
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return Instance{}, ErrClosed
	case m.insts[s.ID] != nil:
		m.mu.Unlock()
		return Instance{}, fmt.Errorf("%w: %s", ErrExists, s.ID)
	}
	m.insts[s.ID] = inst
	m.mu.Unlock()

	start := time.Now()
	m.log.Info("engine: instance "+StatusCreating, "id", s.ID, "engine", s.Engine, "replicaOf", s.ReplicaOf, "external", s.External)
	if err := m.create(ctx, inst, s, md); err != nil {
		m.discard(inst, *md)
		m.log.Warn("engine: instance "+StatusFailed, "id", s.ID, "engine", s.Engine, "err", err)
		return Instance{}, fmt.Errorf("create instance %s: %w", s.ID, err)
	}
	m.setState(inst, func() {
		inst.meta = *md
		if md.Role == RoleReplica {
			inst.repl = Replication{Running: true, Checked: time.Now()} // Create checked it caught up
		}
	}, StatusAvailable,
		"version", md.EngineVersion, "role", md.Role, "elapsed", time.Since(start).Round(time.Millisecond))
	if md.Role == RoleReplica && md.Sync {
		m.resync(ctx, md.ReplicaOf) // the primary waits for it from now on
	}
	return m.Get(s.ID)
}

// portAttempts bounds the ports a Create tries when each is taken between
// the probe and the server's bind: every Manager on the machine (other
// rdslocal processes, test runs) starts from the bottom of the same range.
const portAttempts = 10

func (m *Manager) create(ctx context.Context, inst *instance, s Spec, md *meta) error {
	_ = os.RemoveAll(inst.dir) // a crashed Create's leftovers: no meta, so not an instance
	if s.External != "" {
		return m.createExternal(ctx, inst, s, md)
	}
	backend, dockerErr := m.backendFor(ctx, s)
	if backend == BackendDocker {
		return m.createDocker(ctx, inst, s, md)
	}
	var primary *meta
	version := s.EngineVersion
	if s.ReplicaOf != "" {
		pm, err := m.primaryFor(inst.fam, s)
		if err != nil {
			return err
		}
		primary, version = &pm, pm.Major
		md.Role, md.ReplicaOf = RoleReplica, s.ReplicaOf
		md.MasterUsername, md.MasterPassword, md.DBName = pm.MasterUsername, pm.MasterPassword, pm.DBName
	}
	in, err := m.installFor(s.Engine, version)
	if err != nil {
		if dockerErr != nil && errors.Is(err, ErrUnsupported) {
			err = fmt.Errorf("%w; the docker backend cannot stand in: %v", err, dockerErr)
		}
		return err
	}
	r, err := m.runAs(inst.fam)
	if err != nil {
		return err
	}
	if s.Port != 0 {
		md.Port, err = s.Port, m.ports.reserve(s.ID, s.Port, true)
	} else {
		md.Port, err = m.ports.allocate(s.ID)
	}
	if err != nil {
		return err
	}
	tmpl, err := m.template(ctx, inst.fam, in, r)
	if err != nil {
		return fmt.Errorf("template for %s: %w", in, err)
	}
	md.Major, md.ServerID = in.major, myServerID(s.ID)

	var skip []int
	for attempt := 1; ; attempt++ {
		md.MaxConnections = maxConnections(s.InstanceClass)
		if err := os.Mkdir(inst.dir, 0o711); err != nil {
			return err
		}
		err = m.startNew(ctx, inst, in, r, md, primary, tmpl)
		if err == nil {
			return nil
		}
		// Someone bound the port between our probe and the server's bind:
		// start over on another port (the caller's own choice of port
		// cannot be replaced: it hears so through ErrNoFreePort).
		race := portRace(filepath.Join(inst.dir, logName))
		if race && s.Port != 0 {
			return fmt.Errorf("%w: port %d was taken before the server bound it: %w", ErrNoFreePort, s.Port, err)
		}
		if s.Port != 0 || attempt == portAttempts || !race {
			return err
		}
		m.log.Warn("engine: port taken before the server bound it; retrying", "id", s.ID, "port", md.Port)
		m.stopServer(inst, StatusCreating)
		_ = os.RemoveAll(inst.dir)
		m.ports.release(s.ID, md.Port)
		skip = append(skip, md.Port)
		if md.Port, err = m.ports.allocate(s.ID, skip...); err != nil {
			return err
		}
	}
}

// startNew seeds, starts and initialises a new spawned instance.
func (m *Manager) startNew(ctx context.Context, inst *instance, in install, r runAs, md *meta, primary *meta, tmpl tmpl) error {
	f := inst.fam
	var err error
	start := time.Now()
	if primary == nil {
		err = f.seedPrimary(ctx, in, r, inst.dir, md, tmpl)
	} else {
		err = f.seedReplica(ctx, m, in, r, inst.dir, md, *primary, tmpl)
	}
	if err != nil {
		return err
	}
	m.log.Debug("engine: data directory seeded", "id", md.ID, "elapsed", time.Since(start).Round(time.Millisecond))
	srv, err := m.startServer(inst, in, r, *md)
	if err != nil {
		return err
	}
	fatal := f.refused
	if primary == nil {
		if err := f.bootstrap(ctx, m, srv, md); err != nil {
			return err
		}
		m.log.Debug("engine: server bootstrapped", "id", md.ID, "elapsed", time.Since(start).Round(time.Millisecond))
	} else {
		fatal = nil // a MariaDB replica gets its accounts from the binlog: wait for them
	}
	master := masterLogin(f.name(), *md)
	if err := m.waitReady(ctx, srv, func(ctx context.Context) error { return f.ping(ctx, master) }, fatal); err != nil {
		return fmt.Errorf("master user %s cannot log in: %w", md.MasterUsername, err)
	}
	if primary != nil {
		if err := f.catchUp(ctx, m, *md, *primary); err != nil {
			return srv.withLog(err)
		}
	}
	_ = os.Remove(filepath.Join(inst.dir, bootstrapName))
	if md.EngineVersion, md.MaxConnections, err = f.serverInfo(ctx, adminLogin(f.name(), *md)); err != nil {
		return err
	}
	return saveMeta(inst.dir, *md)
}

// primaryFor checks that s.ReplicaOf can have a replica of family f.
func (m *Manager) primaryFor(f family, s Spec) (meta, error) {
	m.mu.Lock()
	p := m.insts[s.ReplicaOf]
	var pm meta
	var status string
	if p != nil {
		pm, status = p.meta, p.status
	}
	m.mu.Unlock()
	switch {
	case p == nil:
		return meta{}, fmt.Errorf("%w: primary instance %s", ErrNotFound, s.ReplicaOf)
	case pm.External:
		return meta{}, fmt.Errorf("%w: %s is an external server; replicas can only follow spawned instances", ErrUnsupported, s.ReplicaOf)
	case pm.Backend == BackendDocker:
		return meta{}, fmt.Errorf("%w: %s runs in a container: replicas need the process backend", ErrUnsupported, s.ReplicaOf)
	case p.fam.name() != f.name():
		return meta{}, fmt.Errorf("%w: a %s instance cannot replicate %s instance %s", ErrInvalid, s.Engine, pm.Engine, s.ReplicaOf)
	case pm.Role != RolePrimary:
		return meta{}, fmt.Errorf("%w: %s is itself a replica; replicate its primary %s", ErrUnsupported, s.ReplicaOf, pm.ReplicaOf)
	case status != StatusAvailable:
		return meta{}, fmt.Errorf("%w: primary %s is %s", ErrUnsupported, s.ReplicaOf, status)
	}
	return pm, nil
}

// discard undoes a failed Create. The caller holds inst.op.
func (m *Manager) discard(inst *instance, md meta) {
	m.mu.Lock()
	srv := inst.srv
	inst.srv = nil // an exit from here on is not news
	m.mu.Unlock()
	srv.stop()
	if md.Backend == BackendDocker {
		if err := m.dockerRemove(inst, md, true); err != nil {
			m.log.Warn("engine: cannot remove the container of a failed instance", "id", md.ID, "err", err)
		}
	}
	if inst.dir != "" {
		_ = os.RemoveAll(inst.dir)
	}
	if !md.External && md.Port != 0 {
		m.ports.release(md.ID, md.Port)
	}
	m.mu.Lock()
	delete(m.insts, md.ID)
	m.mu.Unlock()
}

// Prepare finds the binaries for engine at version and builds their
// template data directory if it is not cached yet, so that the first
// Create of that engine does not pay for initdb / mariadb-install-db
// (about 1–2 s), and makes a spare copy of it for the first Create. It returns the error Create would return for an engine
// that nothing installed can serve. On the docker backend it pulls the
// image unless the daemon has it. Calling it is optional.
func (m *Manager) Prepare(ctx context.Context, engine, version string) error {
	fname, ok := engineFamily(engine)
	if !ok {
		return fmt.Errorf("%w: engine %q is not one of postgres, aurora-postgresql, mysql, mariadb, aurora-mysql", ErrInvalid, engine)
	}
	backend, dockerErr := m.backendFor(ctx, Spec{Engine: engine, EngineVersion: version})
	if backend == BackendDocker {
		return m.prepareDocker(ctx, engine, version)
	}
	in, err := m.installFor(engine, version)
	if err != nil {
		if dockerErr != nil && errors.Is(err, ErrUnsupported) {
			err = fmt.Errorf("%w; the docker backend cannot stand in: %v", err, dockerErr)
		}
		return err
	}
	f := m.families[fname]
	r, err := m.runAs(f)
	if err != nil {
		return err
	}
	t, err := m.template(ctx, f, in, r)
	if err == nil {
		m.refill(t)
	}
	return err
}

// createExternal registers an existing server after checking the master
// credentials on it.
func (m *Manager) createExternal(ctx context.Context, inst *instance, s Spec, md *meta) error {
	md.External = true
	md.Host, md.Port, _ = splitHostPort(s.External)
	f := inst.fam
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var err error
	if md.EngineVersion, md.MaxConnections, err = f.serverInfo(ctx, masterLogin(f.name(), *md)); err != nil {
		return fmt.Errorf("external server %s with master user %s: %w", s.External, s.MasterUsername, err)
	}
	if err := os.Mkdir(inst.dir, 0o711); err != nil {
		return err
	}
	return saveMeta(inst.dir, *md)
}
