package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

// Manager provisions and runs the database servers behind DB instances.
// It is safe for concurrent use; operations on one instance are
// serialised, operations on different instances run in parallel.
type Manager struct {
	cfg          Config
	log          *slog.Logger
	root         string // DataDir, or a temporary directory
	temp         bool   // root is temporary: Close removes it
	tmplDir      string
	readyTimeout time.Duration
	lock         *os.File
	spawn        *spawner
	ports        *portPool
	families     map[string]family

	mu      sync.Mutex
	closed  bool
	insts   map[string]*instance
	disc    map[string]discovery     // by family, found on first use
	users   map[string]runAs         // by family
	tmplMu  map[string]*sync.Mutex   // by template name
	filling map[string]chan struct{} // spares being made, by template key
	bg      sync.WaitGroup           // spare makers; Close waits for them
	stopBg  chan struct{}            // closed by Close: spare makers give up

	docker     *dockerCheck // is a Docker daemon there (cached)
	dockerMu   sync.Mutex
	dockerP    *testcontainers.DockerProvider // made on first use
	pullFailed map[string]pullFailure         // by image, guarded by mu

	healthInterval, maxLag time.Duration
	events                 chan Event
	watchMu                sync.Mutex
	watchFn                func(Event)
	loops                  sync.WaitGroup // monitor and deliver; Close waits for them
}

// NewManager prepares the Manager's directory and takes its lock, stops
// any server a previous run left behind in it, and loads the instances
// found there (stopped, until Restore starts them). Nothing is started and
// no binary is looked for until an instance needs one.
func NewManager(ctx context.Context, cfg Config) (*Manager, error) {
	docker := newDockerCheck()
	switch cfg.Backend {
	case "", BackendAuto, BackendProcess:
	case BackendDocker:
		if err := docker.healthy(ctx); err != nil {
			return nil, errNoDocker(err)
		}
	default:
		return nil, fmt.Errorf("%w: backend %q is not one of auto, process, docker", ErrInvalid, cfg.Backend)
	}
	if cfg.PortMin == 0 && cfg.PortMax == 0 {
		cfg.PortMin, cfg.PortMax = DefaultPortMin, DefaultPortMax
	}
	if cfg.PortMin < 1 || cfg.PortMax > 65536 || cfg.PortMin >= cfg.PortMax {
		return nil, fmt.Errorf("%w: port range %d–%d is empty or out of bounds", ErrInvalid, cfg.PortMin, cfg.PortMax)
	}
	m := &Manager{
		cfg:            cfg,
		log:            cfg.Logger,
		docker:         docker,
		readyTimeout:   cfg.ReadyTimeout,
		ports:          newPortPool(cfg.PortMin, cfg.PortMax),
		families:       map[string]family{famPostgres: postgres{}, famMySQL: mariadb{}},
		insts:          map[string]*instance{},
		disc:           map[string]discovery{},
		users:          map[string]runAs{},
		tmplMu:         map[string]*sync.Mutex{},
		filling:        map[string]chan struct{}{},
		pullFailed:     map[string]pullFailure{},
		stopBg:         make(chan struct{}),
		events:         make(chan Event, 1024),
		healthInterval: cfg.HealthInterval,
		maxLag:         cfg.MaxReplicaLag,
	}
	if m.healthInterval <= 0 {
		m.healthInterval = defaultHealthInterval
	}
	if m.maxLag <= 0 {
		m.maxLag = defaultMaxReplicaLag
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.readyTimeout == 0 {
		m.readyTimeout = 60 * time.Second
	}
	if err := m.openRoot(); err != nil {
		return nil, err
	}
	m.spawn = newSpawner()
	m.reapInstances(m.root)
	if m.temp {
		m.reapTempRoots()
	}
	if err := m.loadInstances(); err != nil {
		m.spawn.stop()
		m.releaseRoot()
		return nil, err
	}
	if m.cfg.Backend == BackendDocker || m.hasDocker() {
		m.reapContainers(ctx)
	}
	m.loops.Add(2)
	go m.monitor()
	go m.deliver()
	return m, nil
}

// openRoot creates and locks the Manager's directory.
func (m *Manager) openRoot() error {
	if m.cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", tempPrefix)
		if err != nil {
			return err
		}
		m.root, m.temp = dir, true
	} else {
		dir, err := filepath.Abs(m.cfg.DataDir)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return err
		}
		m.root = dir
	}
	// Servers run as another user when we are root: they must be able
	// to pass through to their data directories.
	if fi, err := os.Stat(m.root); err == nil && fi.Mode().Perm()&0o111 != 0o111 {
		_ = os.Chmod(m.root, fi.Mode().Perm()|0o111)
	}
	if err := os.MkdirAll(filepath.Join(m.root, instancesName), 0o711); err != nil {
		return err
	}
	lock, err := lockRoot(m.root)
	if err != nil {
		if m.temp {
			_ = os.RemoveAll(m.root)
		}
		return err
	}
	m.lock = lock
	m.tmplDir = m.cfg.TemplateDir
	switch {
	case m.tmplDir != "":
	case !m.temp:
		m.tmplDir = filepath.Join(m.root, "templates")
	default:
		m.tmplDir = filepath.Join(os.TempDir(), "rdslocal-templates-"+strconv.Itoa(os.Geteuid()))
	}
	return nil
}

func (m *Manager) releaseRoot() {
	if m.lock != nil {
		m.lock.Close()
	}
	if m.temp {
		_ = os.RemoveAll(m.root)
	}
}

// Backend returns Config.Backend, what runs a new instance: BackendAuto
// (the default), BackendProcess or BackendDocker.
func (m *Manager) Backend() string {
	if m.cfg.Backend == "" {
		return BackendAuto
	}
	return m.cfg.Backend
}

// Dir returns the directory holding the Manager's instances: DataDir, or
// the temporary directory used in its place.
func (m *Manager) Dir() string { return m.root }

// Get returns the instance named id.
func (m *Manager) Get(id string) (Instance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst := m.insts[id]
	if inst == nil {
		return Instance{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return inst.snapshotLocked(), nil
}

// List returns every instance, ordered by ID.
func (m *Manager) List() []Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Instance, 0, len(m.insts))
	for _, inst := range m.insts {
		out = append(out, inst.snapshotLocked())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (i *instance) snapshotLocked() Instance {
	md := i.meta
	out := Instance{
		ID: md.ID, Engine: md.Engine, EngineVersion: md.EngineVersion, InstanceClass: md.InstanceClass,
		Host: md.Host, Port: md.Port, MaxConnections: md.MaxConnections,
		Role: md.Role, ReplicaOf: md.ReplicaOf, Status: i.status, External: md.External,
		MasterUsername: md.MasterUsername, DBName: md.DBName, Dir: i.dir,
		Backend: md.backend(), Container: md.Container, Synchronous: md.Sync,
	}
	if md.Role == RolePrimary && len(i.sync) > 0 {
		out.SyncReplicas = append([]string(nil), i.sync...)
	}
	if md.Role == RoleReplica {
		out.Replication = i.repl
	}
	if i.srv != nil && !i.srv.exited() {
		out.PID = i.srv.pid
	}
	return out
}

// Close stops every spawned server and waits for it to exit. Without a
// DataDir it also removes all data; with one, data stays for Restore.
// Operations in progress finish first. Close is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.stopBg)
	insts := make([]*instance, 0, len(m.insts))
	for _, inst := range m.insts {
		insts = append(insts, inst)
	}
	m.mu.Unlock()

	var wg sync.WaitGroup
	for _, inst := range insts {
		wg.Go(func() {
			inst.op.Lock()
			defer inst.op.Unlock()
			if md := m.metaOf(inst); !md.External {
				m.stopServer(inst, StatusStopped)
				if md.Backend == BackendDocker {
					// The container goes; a named volume (DataDir) stays.
					_ = m.dockerRemove(inst, md, false)
				}
			}
		})
	}
	wg.Wait()
	m.bg.Wait()
	m.loops.Wait()
	m.dockerMu.Lock()
	if m.dockerP != nil {
		m.dockerP.Close() // idle connections only: it stays usable
	}
	m.dockerMu.Unlock()
	m.spawn.stop()
	m.releaseRoot()
	m.log.Info("engine: manager closed", "dir", m.root, "instances", len(insts))
	return nil
}

// stopServer stops inst's server, if running, and records status (attrs
// go to the log line). The caller holds inst.op.
func (m *Manager) stopServer(inst *instance, status string, attrs ...any) {
	m.leaveSync(inst)
	m.mu.Lock()
	srv, ctr := inst.srv, inst.ctr
	m.mu.Unlock()
	if srv != nil {
		srv.stop()
	}
	if ctr != nil && ctr.running.Load() {
		if err := ctr.stop(); err != nil {
			m.log.Warn("engine: cannot stop container", "container", ctr.name, "err", err)
		}
	}
	m.setState(inst, func() { inst.srv = nil }, status, attrs...)
}

// acquire looks up id and locks it for an operation. The caller must
// unlock inst.op.
func (m *Manager) acquire(id string) (*instance, error) {
	m.mu.Lock()
	inst, closed := m.insts[id], m.closed
	m.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if inst == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	inst.op.Lock()
	m.mu.Lock()
	gone := m.insts[id] != inst
	m.mu.Unlock()
	if gone { // deleted, or its creation failed, while we waited
		inst.op.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return inst, nil
}

// metaOf reads inst's meta.
func (m *Manager) metaOf(inst *instance) meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return inst.meta
}

// setState applies change (may be nil) and sets status under m.mu, and
// logs the state change.
func (m *Manager) setState(inst *instance, change func(), status string, attrs ...any) {
	m.mu.Lock()
	if change != nil {
		change()
	}
	old := inst.status
	inst.status = status
	md := inst.meta
	m.mu.Unlock()
	if old == status && len(attrs) == 0 {
		return
	}
	attrs = append([]any{"id", md.ID, "engine", md.Engine, "status", status, "port", md.Port}, attrs...)
	m.log.Info("engine: instance "+status, attrs...)
}

// runAs returns the OS user a family's servers run as.
func (m *Manager) runAs(f family) (runAs, error) {
	m.mu.Lock()
	r, ok := m.users[f.name()]
	m.mu.Unlock()
	if ok {
		return r, nil
	}
	r, err := lookupRunAs(f.serviceUser())
	if err != nil {
		return runAs{}, err
	}
	if err := r.checkReach(filepath.Join(m.root, instancesName)); err != nil {
		return runAs{}, err
	}
	m.mu.Lock()
	m.users[f.name()] = r
	m.mu.Unlock()
	return r, nil
}

// installFor finds the installation that serves engine at version.
func (m *Manager) installFor(engine, version string) (install, error) {
	fam, _ := engineFamily(engine)
	m.mu.Lock()
	d, ok := m.disc[fam]
	m.mu.Unlock()
	if !ok {
		if fam == famPostgres {
			d = discoverPostgres(m.cfg.BinPath)
		} else {
			d = discoverMySQL(m.cfg.BinPath)
		}
		m.mu.Lock()
		m.disc[fam] = d
		m.mu.Unlock()
	}
	return pickInstall(d, engine, version)
}

// hasDocker reports whether any instance runs on the docker backend.
func (m *Manager) hasDocker() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, inst := range m.insts {
		if inst.meta.Backend == BackendDocker {
			return true
		}
	}
	return false
}

// errNotRunning is returned by operations that need a running server.
var errNotRunning = errors.New("server is not running")
