package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	dockerclient "github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// The docker backend runs each instance's server in a container made
// with testcontainers-go from the official postgres, mariadb or mysql
// image. See the package documentation for what it does and when auto
// picks it.

const (
	// dockerHealthTimeout bounds one look for a Docker daemon.
	dockerHealthTimeout = 2 * time.Second
	// dockerHealthTTL is how long the answer is reused.
	dockerHealthTTL = 30 * time.Second
	// dockerReadyTimeout replaces the 60 s default ReadyTimeout for
	// containers: their first start initialises the data directory.
	dockerReadyTimeout = 2 * time.Minute
	// dockerOpTimeout bounds the Docker calls of a stop or removal.
	dockerOpTimeout = stopTimeout + 30*time.Second
)

// Labels on every container and volume the docker backend makes.
const (
	labelDir      = "rdslocal.dir"      // the Manager's directory
	labelInstance = "rdslocal.instance" // the instance ID
	labelEngine   = "rdslocal.engine"
)

// dockerDefaultTags are the image tags used when Spec.EngineVersion is
// empty.
var dockerDefaultTags = map[string]string{"postgres": "17", "mariadb": "11.4", "mysql": "8.0"}

// dockerInitScript is where the first start's SQL goes: the images run
// /docker-entrypoint-initdb.d/*.sql once, when they initialise an empty
// data directory, and never again.
const dockerInitScript = "/docker-entrypoint-initdb.d/00-rdslocal.sql"

// dockerCheck caches whether a Docker daemon answers. Each Manager has
// one (a field, not package state, so that Managers and tests do not share
// answers); the daemon's address itself is looked up by testcontainers
// once per process.
type dockerCheck struct {
	// probe asks for the daemon (dockerProbe; tests replace it).
	probe func(ctx context.Context) error

	mu       sync.Mutex
	at       time.Time     // when err was found; zero: never looked
	err      error         // nil: healthy
	inflight chan struct{} // closed when the running probe ends
}

func newDockerCheck() *dockerCheck { return &dockerCheck{probe: dockerProbe} }

// dockerProbe asks testcontainers for its provider and pings the daemon.
// testcontainers panics in some set-ups without a runtime
// (MustExtractDockerSocket), so a panic is an answer too.
func dockerProbe(ctx context.Context) error {
	return safely(func() error {
		p, err := testcontainers.ProviderDefault.GetProvider(testcontainers.WithLogger(tcLogger{slog.New(slog.DiscardHandler)}))
		if err != nil {
			return err
		}
		defer p.Close()
		return p.Health(ctx)
	})
}

// healthy reports whether a Docker daemon answers: nil if so, else why
// not. It never takes much longer than dockerHealthTimeout, even if the
// probe hangs (it then goes on in the background, and its answer is used
// once it comes), and reuses an answer for dockerHealthTTL.
//
// testcontainers looks for the daemon's address once per process: a
// daemon that appears later is seen only after a restart.
func (h *dockerCheck) healthy(ctx context.Context) error {
	h.mu.Lock()
	if !h.at.IsZero() && time.Since(h.at) < dockerHealthTTL {
		err := h.err
		h.mu.Unlock()
		return err
	}
	done := h.inflight
	if done == nil {
		done = make(chan struct{})
		h.inflight = done
		probe := h.probe
		go func() {
			pctx, cancel := context.WithTimeout(context.Background(), dockerHealthTimeout)
			err := safely(func() error { return probe(pctx) })
			cancel()
			h.mu.Lock()
			h.err, h.at, h.inflight = err, time.Now(), nil
			h.mu.Unlock()
			close(done)
		}()
	}
	h.mu.Unlock()
	t := time.NewTimer(dockerHealthTimeout)
	defer t.Stop()
	select {
	case <-done:
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.err
	case <-t.C:
		err := fmt.Errorf("no answer within %s", dockerHealthTimeout)
		h.mu.Lock()
		if h.inflight == done { // still hanging: do not wait again for a while
			h.err, h.at = err, time.Now()
		}
		h.mu.Unlock()
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errNoDocker is the error of a docker backend without a daemon.
func errNoDocker(err error) error {
	return fmt.Errorf("%w: docker backend: no healthy Docker daemon (%v)", ErrUnsupported, err)
}

// safely runs f, turning a panic into an error.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	return f()
}

// tcLogger sends testcontainers' messages to the Manager's log at debug
// level.
type tcLogger struct{ l *slog.Logger }

func (t tcLogger) Printf(format string, args ...any) {
	t.l.Debug("engine: testcontainers: " + strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// dockerProvider returns the Manager's testcontainers provider, made on
// first use once a daemon answers.
func (m *Manager) dockerProvider(ctx context.Context) (*testcontainers.DockerProvider, error) {
	m.dockerMu.Lock()
	defer m.dockerMu.Unlock()
	if m.dockerP != nil {
		return m.dockerP, nil
	}
	if err := m.docker.healthy(ctx); err != nil {
		return nil, errNoDocker(err)
	}
	var gp testcontainers.GenericProvider
	err := safely(func() (err error) {
		gp, err = testcontainers.ProviderDefault.GetProvider(testcontainers.WithLogger(tcLogger{m.log}))
		return err
	})
	if err != nil {
		return nil, errNoDocker(err)
	}
	p, ok := gp.(*testcontainers.DockerProvider)
	if !ok {
		gp.Close()
		return nil, fmt.Errorf("%w: docker backend: testcontainers gave a %T provider, not a Docker one", ErrUnsupported, gp)
	}
	m.dockerP = p
	return p, nil
}

// backendFor picks what runs a new spawned instance. A replica runs where
// its primary runs. Otherwise Config.Backend decides; auto means docker
// when a daemon is healthy, else process. dockerErr says why docker was
// not picked by auto, for the error of a process backend that finds no
// binaries.
func (m *Manager) backendFor(ctx context.Context, s Spec) (backend string, dockerErr error) {
	if s.ReplicaOf != "" {
		m.mu.Lock()
		defer m.mu.Unlock()
		if p := m.insts[s.ReplicaOf]; p != nil && p.meta.Backend == BackendDocker {
			return BackendDocker, nil
		}
		return BackendProcess, nil
	}
	switch m.cfg.Backend {
	case BackendProcess:
		return BackendProcess, nil
	case BackendDocker:
		return BackendDocker, nil
	}
	if err := m.docker.healthy(ctx); err != nil {
		return BackendProcess, fmt.Errorf("no healthy Docker daemon (%v)", err)
	}
	// A daemon that cannot have the image (no registry reachable, as on
	// many CI runners and offline machines) would fail every Create.
	image, _, err := dockerImage(s.Engine, s.EngineVersion)
	if err == nil {
		err = m.ensureImage(ctx, image)
	}
	if err != nil {
		m.log.Warn("engine: the Docker daemon cannot run the image; using the process backend", "engine", s.Engine, "version", s.EngineVersion, "err", err)
		return BackendProcess, fmt.Errorf("the Docker daemon answers but %v", err)
	}
	return BackendDocker, nil
}

// imagePullTimeout bounds a pull that auto waits for before it decides.
const imagePullTimeout = 5 * time.Minute

// pullFailure is a pull that failed, kept for dockerHealthTTL so that
// every Create does not try again.
type pullFailure struct {
	err error
	at  time.Time
}

// ensureImage makes sure the daemon has image: it has it, or pulls it
// (from TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX's mirror, as testcontainers
// does for a container).
func (m *Manager) ensureImage(ctx context.Context, image string) error {
	p, err := m.dockerProvider(ctx)
	if err != nil {
		return err
	}
	if prefix := testcontainers.ReadConfig().Config.HubImageNamePrefix; prefix != "" {
		image = path.Join(prefix, image)
	}
	if _, err := p.Client().ImageInspect(ctx, image); err == nil {
		return nil
	}
	m.mu.Lock()
	f, failed := m.pullFailed[image]
	m.mu.Unlock()
	if failed && time.Since(f.at) < dockerHealthTTL {
		return f.err
	}
	pctx, cancel := context.WithTimeout(ctx, imagePullTimeout)
	defer cancel()
	err = safely(func() error { return p.PullImage(pctx, image) })
	if err == nil {
		// A pull can end without an error in its status stream: check.
		_, err = p.Client().ImageInspect(ctx, image)
	}
	if err != nil {
		err = fmt.Errorf("image %s is not on the daemon and cannot be pulled: %w", image, err)
		m.mu.Lock()
		m.pullFailed[image] = pullFailure{err: err, at: time.Now()}
		m.mu.Unlock()
		return err
	}
	m.mu.Lock()
	delete(m.pullFailed, image)
	m.mu.Unlock()
	return nil
}

var dockerSeriesRE = regexp.MustCompile(`^\d+(\.\d+)?$`)

// dockerImage names the image that serves engine at version: postgres,
// mariadb or mysql (for mysql, aurora-mysql), tagged with the version's
// series, as the process backend matches installations: "15.4" →
// postgres:15, "10.11.8" → mariadb:10.11, "8.0.mysql_aurora.3.04.0" →
// mysql:8.0.
func dockerImage(engine, version string) (image, series string, err error) {
	fam, _ := engineFamily(engine)
	repo := "mysql"
	switch {
	case fam == famPostgres:
		repo = "postgres"
	case engine == "mariadb":
		repo = "mariadb"
	}
	if version == "" {
		series = dockerDefaultTags[repo]
	} else if fam == famPostgres {
		series = pgMajor(version)
	} else {
		series = myMajor(version)
	}
	if !dockerSeriesRE.MatchString(series) {
		return "", "", fmt.Errorf("%w: engine %s version %q: no %s image tag can be made of it", ErrUnsupported, engine, version, repo)
	}
	return repo + ":" + series, series, nil
}

// dockerName names an instance's container and volume: the ID and a hash
// of the Manager's directory, so two data directories never share one.
func (m *Manager) dockerName(id string) string {
	return "rdslocal-" + id + "-" + shortHash(m.root)
}

// shortHash is 8 hex digits of s's SHA-256.
func shortHash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// dockerServer is an instance's container.
type dockerServer struct {
	c    testcontainers.Container
	name string
	// running is false once the container was stopped (its data stays).
	running atomic.Bool
}

// stop stops the container; it can be started again.
func (d *dockerServer) stop() error {
	if d == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTimeout)
	defer cancel()
	t := stopTimeout
	err := safely(func() error { return d.c.Stop(ctx, &t) })
	d.running.Store(false)
	return err
}

// stopped returns an error saying how the container ended if it is not
// running, else nil (also when its state cannot be read).
func (d *dockerServer) stopped(ctx context.Context) error {
	var st *container.State
	err := safely(func() (err error) {
		st, err = d.c.State(ctx)
		return err
	})
	if err != nil || st == nil || st.Running || st.Restarting {
		return nil
	}
	return fmt.Errorf("container %s stopped (%s, exit code %d)", d.name, st.Status, st.ExitCode)
}

// withLog appends the tail of the container's log to err.
func (d *dockerServer) withLog(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tail []string
	_ = safely(func() error {
		rc, err := d.c.Logs(ctx)
		if err != nil {
			return err
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			tail = append(tail, sc.Text())
			if len(tail) > 20 {
				tail = tail[1:]
			}
		}
		return nil
	})
	if len(tail) == 0 {
		return err
	}
	return fmt.Errorf("%w\n--- docker logs %s (last lines) ---\n%s", err, d.name, strings.Join(tail, "\n"))
}

// dockerSpec is what differs between the images.
type dockerSpec struct {
	port network.Port      // the server's port in the container
	data string            // its data directory, where the volume goes
	env  map[string]string // for the image's entrypoint
	cmd  []string
	init string // SQL of the first start
}

// dockerSpecFor builds the container of the instance md. The entrypoint
// of a postgres image makes its superuser from the environment: that is
// rdsadmin, the Manager's own login, as on the process backend; the init
// script then adds RDS's roles, the master user (a member of
// rds_superuser, no superuser) and gives it the postgres database and the
// master's database (POSTGRES_DB, which the entrypoint makes). The mariadb
// and mysql images get a random root password and an init script that
// creates rdsadmin, the master user with RDS's grant list (their
// MYSQL_USER would have every privilege on one database only, and may not
// be root) and the database.
func dockerSpecFor(md meta) dockerSpec {
	maxConn := strconv.Itoa(md.MaxConnections)
	if fam, _ := engineFamily(md.Engine); fam == famPostgres {
		user := pgIdent(md.MasterUsername)
		stmts := append(pgRDSRoles(md.Major), pgMasterRole(md.MasterUsername, md.MasterPassword)...)
		stmts = append(stmts, "ALTER DATABASE postgres OWNER TO "+user)
		d := dockerSpec{
			port: network.MustParsePort("5432/tcp"),
			data: "/var/lib/postgresql/data",
			env:  map[string]string{"POSTGRES_USER": adminUser, "POSTGRES_PASSWORD": md.AdminPassword},
			// fsync off as on the process backend: commits still reach
			// the OS.
			cmd: []string{"postgres", "-c", "max_connections=" + maxConn, "-c", "fsync=off"},
		}
		if n, _ := strconv.Atoi(md.Major); n >= 18 {
			// From 18 the images keep PGDATA in a versioned directory
			// under /var/lib/postgresql, their VOLUME.
			d.data = "/var/lib/postgresql"
		}
		if md.DBName != "" && md.DBName != "postgres" {
			d.env["POSTGRES_DB"] = md.DBName
			stmts = append(stmts, "ALTER DATABASE "+pgIdent(md.DBName)+" OWNER TO "+user)
		}
		d.init = strings.Join(stmts, ";\n") + ";\n"
		return d
	}
	admin := myAccount(adminUser, "%")
	master := myAccount(md.MasterUsername, "%")
	stmts := []string{
		"CREATE USER " + admin + " IDENTIFIED BY " + myLiteral(md.AdminPassword),
		"GRANT ALL PRIVILEGES ON *.* TO " + admin + " WITH GRANT OPTION",
		// root@'%' exists already (MYSQL_ROOT_HOST defaults to %).
		"CREATE USER IF NOT EXISTS " + master + " IDENTIFIED BY " + myLiteral(md.MasterPassword),
		"ALTER USER " + master + " IDENTIFIED BY " + myLiteral(md.MasterPassword),
		"GRANT " + dockerMasterPrivileges(md) + " ON *.* TO " + master + " WITH GRANT OPTION",
	}
	if md.DBName != "" {
		stmts = append(stmts, "CREATE DATABASE IF NOT EXISTS "+myIdent(md.DBName))
	}
	return dockerSpec{
		port: network.MustParsePort("3306/tcp"),
		data: "/var/lib/mysql",
		env:  map[string]string{"MYSQL_RANDOM_ROOT_PASSWORD": "yes"},
		// Options only: the entrypoint puts mysqld/mariadbd before them.
		cmd:  []string{"--max-connections=" + maxConn, "--character-set-server=utf8mb4"},
		init: strings.Join(stmts, ";\n") + ";\n",
	}
}

// dockerMasterPrivileges is RDS's grant list for the master user of the
// image md runs: RDS for MariaDB's on mariadb images; on mysql images
// (real MySQL) RDS for MySQL 8.0's static privileges plus the dynamic ones
// every 8.0 and 8.4 server knows (SET_USER_ID, which RDS also grants on
// 8.0, is left out: 8.4 removed it); on mysql:5.7, the static ones only.
func dockerMasterPrivileges(md meta) string {
	switch {
	case md.Engine == "mariadb":
		return myMasterPrivileges(md.Major)
	case versionLess(md.Major, "8.0"):
		return myMasterPrivileges("0")
	}
	return myMasterPrivileges("0") + ", CREATE ROLE, DROP ROLE, APPLICATION_PASSWORD_ADMIN, ROLE_ADMIN, XA_RECOVER_ADMIN"
}

// dockerLocal reports whether the daemon publishes ports on this machine,
// so they can be bound to 127.0.0.1, and the host to reach them on.
func dockerLocal(ctx context.Context, p *testcontainers.DockerProvider) (local bool, host string, err error) {
	err = safely(func() (err error) {
		host, err = p.DaemonHost(ctx)
		return err
	})
	if err != nil {
		return false, "", fmt.Errorf("docker daemon host: %w", err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return true, loopback, nil
	}
	return false, host, nil
}

// createDocker makes a new primary in a container.
func (m *Manager) createDocker(ctx context.Context, inst *instance, s Spec, md *meta) error {
	if s.ReplicaOf != "" {
		if _, err := m.primaryFor(inst.fam, s); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s runs in a container: replicas need the process backend", ErrUnsupported, s.ReplicaOf)
	}
	p, err := m.dockerProvider(ctx)
	if err != nil {
		return err
	}
	image, series, err := dockerImage(s.Engine, s.EngineVersion)
	if err != nil {
		return err
	}
	md.Backend, md.Image, md.Major = BackendDocker, image, series
	md.Container = m.dockerName(s.ID)
	if !m.temp {
		// With a DataDir the data lives in a named volume, which outlives
		// the container: Restore makes a new container on it. Without
		// one, the image's anonymous volume goes with the container.
		md.Volume = md.Container
	}
	md.AdminPassword = newPassword()
	md.MaxConnections = maxConnections(s.InstanceClass)
	if err := os.Mkdir(inst.dir, 0o711); err != nil {
		return err
	}
	local, host, err := dockerLocal(ctx, p)
	if err != nil {
		return err
	}
	md.Host = host
	switch {
	case s.Port != 0:
		md.Port = s.Port
		if local {
			err = m.ports.reserve(s.ID, s.Port, true)
		}
	case local:
		md.Port, err = m.ports.allocate(s.ID)
		if errors.Is(err, ErrNoFreePort) {
			md.Port, err = 0, nil // Docker picks one
		}
	}
	if err != nil {
		return err
	}
	// Leftovers of an earlier Create of this ID that died half-way.
	cli := p.Client()
	if err := dockerRemoveContainer(ctx, cli, md.Container); err != nil {
		return err
	}
	if md.Volume != "" {
		if _, err := cli.VolumeRemove(ctx, md.Volume, dockerclient.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove stale volume %s: %w", md.Volume, err)
		}
		// Made here rather than by the container's mount, so that it has
		// only our labels: testcontainers' session label would let its
		// reaper (Ryuk) delete the data when rdslocal exits.
		if _, err := cli.VolumeCreate(ctx, dockerclient.VolumeCreateOptions{Name: md.Volume, Labels: m.dockerLabels(*md)}); err != nil {
			return fmt.Errorf("create volume %s: %w", md.Volume, err)
		}
	}
	d, err := m.runContainer(ctx, p, md, local, s.Port != 0)
	if err != nil {
		return err
	}
	m.mu.Lock()
	inst.ctr = d
	m.mu.Unlock()
	f := inst.fam
	if err := m.dockerWaitReady(ctx, d, f, masterLogin(f.name(), *md)); err != nil {
		return fmt.Errorf("master user %s cannot log in: %w", md.MasterUsername, err)
	}
	if md.EngineVersion, md.MaxConnections, err = f.serverInfo(ctx, adminLogin(f.name(), *md)); err != nil {
		return d.withLog(err)
	}
	return saveMeta(inst.dir, *md)
}

func (m *Manager) dockerLabels(md meta) map[string]string {
	return map[string]string{labelDir: m.root, labelInstance: md.ID, labelEngine: md.Engine}
}

// runContainer creates and starts the container of md, publishing the
// server's port on md.Port (0: one Docker picks), on 127.0.0.1 when the
// daemon is local. A port of the range that someone took since it was
// probed is replaced by the next free one, up to three times, and then by
// one Docker picks; a port the Spec asked for (fixed) is not replaced.
// md.Port is set to the published port.
func (m *Manager) runContainer(ctx context.Context, p *testcontainers.DockerProvider, md *meta, local, fixed bool) (*dockerServer, error) {
	var skip []int
	for attempt := 1; ; attempt++ {
		bind := network.PortBinding{HostPort: "0"}
		if md.Port != 0 {
			bind.HostPort = strconv.Itoa(md.Port)
		}
		if local {
			bind.HostIP = netip.MustParseAddr(loopback)
		}
		d, err := m.startContainer(ctx, p, *md, bind)
		if err == nil {
			if err := m.dockerPort(ctx, d, md); err != nil {
				// No published port: most likely the container
				// stopped at once.
				if serr := d.stopped(ctx); serr != nil {
					err = fmt.Errorf("%w right after it started", serr)
				}
				err = d.withLog(err)
				m.dockerTerminate(d)
				return nil, err
			}
			return d, nil
		}
		if fixed || md.Port == 0 || !dockerPortTaken(err) {
			return nil, err
		}
		m.log.Warn("engine: port taken before the container bound it; retrying", "id", md.ID, "port", md.Port)
		m.ports.release(md.ID, md.Port)
		skip = append(skip, md.Port)
		md.Port = 0
		if attempt < 3 && local {
			if port, aerr := m.ports.allocate(md.ID, skip...); aerr == nil {
				md.Port = port
			}
		}
	}
}

// dockerPort sets md.Port to the port the container's server is published
// on, which changes when Docker picked it.
func (m *Manager) dockerPort(ctx context.Context, d *dockerServer, md *meta) error {
	var port network.Port
	err := safely(func() (err error) {
		port, err = d.c.MappedPort(ctx, dockerSpecFor(*md).port.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("published port of container %s: %w", d.name, err)
	}
	if n := int(port.Num()); n != md.Port {
		m.ports.release(md.ID, md.Port)
		md.Port = n
		_ = m.ports.reserve(md.ID, n, false)
	}
	return nil
}

// dockerPortTaken reports whether a container failed to start because its
// host port is in use.
func dockerPortTaken(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use") ||
		strings.Contains(s, "ports are not available")
}

// startContainer creates the container of md (replacing one of the same
// name) and starts it. The image is pulled if missing.
func (m *Manager) startContainer(ctx context.Context, p *testcontainers.DockerProvider, md meta, bind network.PortBinding) (*dockerServer, error) {
	if err := dockerRemoveContainer(ctx, p.Client(), md.Container); err != nil {
		return nil, err
	}
	ds := dockerSpecFor(md)
	req := testcontainers.ContainerRequest{
		Image:        md.Image,
		Name:         md.Container,
		Env:          ds.env,
		Cmd:          ds.cmd,
		Labels:       m.dockerLabels(md),
		ExposedPorts: []string{ds.port.String()},
		Files: []testcontainers.ContainerFile{{
			Reader: bytes.NewReader([]byte(ds.init)), ContainerFilePath: dockerInitScript, FileMode: 0o644,
		}},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{ds.port: {bind}}
			if md.Volume != "" {
				hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: md.Volume, Target: ds.data})
			}
		},
	}
	var c testcontainers.Container
	err := safely(func() (err error) {
		c, err = p.CreateContainer(ctx, req)
		return err
	})
	d := &dockerServer{c: c, name: md.Container}
	if err != nil {
		if c != nil {
			m.dockerTerminate(d)
		}
		return nil, fmt.Errorf("create container %s from %s: %w", md.Container, md.Image, err)
	}
	if err := safely(func() error { return c.Start(ctx) }); err != nil {
		err = d.withLog(fmt.Errorf("start container %s: %w", md.Container, err))
		m.dockerTerminate(d)
		return nil, err
	}
	d.running.Store(true)
	m.log.Debug("engine: container started", "id", md.ID, "container", md.Container, "image", md.Image)
	return d, nil
}

// dockerWaitReady polls try, logged in as l, until it succeeds,
// fatal(err) says retrying is pointless, the container stops, or the
// ready timeout passes.
func (m *Manager) dockerWaitReady(ctx context.Context, d *dockerServer, f family, l login) error {
	timeout := m.cfg.ReadyTimeout
	if timeout == 0 {
		timeout = dockerReadyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lastState := time.Now()
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		if f.name() == famMySQL {
			// Docker's proxy accepts connections before the server
			// listens, and the MySQL driver logs each one it then
			// closes: wait for the server's greeting first.
			err = dockerGreets(actx, l.host, l.port)
		}
		if err == nil {
			err = f.ping(actx, l)
		}
		acancel()
		if err == nil {
			return nil
		}
		if f.refused(err) {
			return d.withLog(err)
		}
		if time.Since(lastState) > time.Second {
			lastState = time.Now()
			if serr := d.stopped(ctx); serr != nil {
				return d.withLog(fmt.Errorf("%w before it accepted connections; last attempt: %v", serr, err))
			}
		}
		select {
		case <-ctx.Done():
			return d.withLog(fmt.Errorf("server in container %s not ready after %s: %v", d.name, timeout, err))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dockerGreets reports whether a server at host:port sends its first
// bytes (a MySQL handshake) on a new connection.
func dockerGreets(ctx context.Context, host string, port int) error {
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetReadDeadline(deadline)
	if _, err := c.Read(make([]byte, 1)); err != nil {
		return fmt.Errorf("no greeting from %s: %w", c.RemoteAddr(), err)
	}
	return nil
}

// startDocker starts the container of an instance that has its data: the
// same container again after Reboot stopped it, or a new one on the
// instance's volume (Restore). The caller holds inst.op.
func (m *Manager) startDocker(ctx context.Context, inst *instance, md meta) error {
	err := func() error {
		p, err := m.dockerProvider(ctx)
		if err != nil {
			return err
		}
		m.mu.Lock()
		d := inst.ctr
		m.mu.Unlock()
		if d != nil {
			if err := safely(func() error { return d.c.Start(ctx) }); err != nil {
				return d.withLog(fmt.Errorf("start container %s: %w", d.name, err))
			}
			d.running.Store(true)
			if err := m.dockerPort(ctx, d, &md); err != nil {
				return err
			}
		} else {
			if md.Volume == "" {
				return fmt.Errorf("container %s is gone, and with it the instance's data", md.Container)
			}
			if _, err := p.Client().VolumeInspect(ctx, md.Volume, dockerclient.VolumeInspectOptions{}); err != nil {
				return fmt.Errorf("volume %s, which holds the instance's data: %w", md.Volume, err)
			}
			local, host, err := dockerLocal(ctx, p)
			if err != nil {
				return err
			}
			md.Host = host
			if d, err = m.runContainer(ctx, p, &md, local, false); err != nil {
				return err
			}
			m.mu.Lock()
			inst.ctr = d
			m.mu.Unlock()
		}
		f := inst.fam
		admin := adminLogin(f.name(), md)
		if err := m.dockerWaitReady(ctx, d, f, admin); err != nil {
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
	m.setState(inst, func() { inst.meta = md }, StatusAvailable, "version", md.EngineVersion, "container", md.Container)
	return nil
}

// dockerTerminate stops and removes a container (and its anonymous
// volumes), logging a failure.
func (m *Manager) dockerTerminate(d *dockerServer) error {
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTimeout)
	defer cancel()
	err := safely(func() error { return d.c.Terminate(ctx, testcontainers.StopTimeout(stopTimeout)) })
	d.running.Store(false)
	if cerrdefs.IsNotFound(err) { // removed behind our back: fine
		err = nil
	}
	if err != nil {
		m.log.Warn("engine: cannot remove container", "container", d.name, "err", err)
	}
	return err
}

// dockerRemove removes inst's container and, with volume, its named
// volume (its data): volume is for Delete, without it for Close. The
// caller holds inst.op, or inst is being discarded.
func (m *Manager) dockerRemove(inst *instance, md meta, volume bool) error {
	m.mu.Lock()
	d := inst.ctr
	inst.ctr = nil
	m.mu.Unlock()
	var errs []error
	if d != nil {
		errs = append(errs, m.dockerTerminate(d))
	}
	// Deleting an instance that has no container of ours (never started
	// since NewManager): a container of that name may still exist.
	byName := volume && d == nil && md.Container != ""
	if !byName && (!volume || md.Volume == "") {
		return errors.Join(errs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerOpTimeout)
	defer cancel()
	p, err := m.dockerProvider(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if byName {
		errs = append(errs, dockerRemoveContainer(ctx, p.Client(), md.Container))
	}
	if volume && md.Volume != "" {
		if _, err := p.Client().VolumeRemove(ctx, md.Volume, dockerclient.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", md.Volume, err))
		}
	}
	return errors.Join(errs...)
}

// dockerRemoveContainer removes the container called name, if any.
func dockerRemoveContainer(ctx context.Context, cli dockerclient.APIClient, name string) error {
	_, err := cli.ContainerRemove(ctx, name, dockerclient.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}

// reapContainers removes what the docker backend of a previous Manager of
// this directory left behind: its containers (testcontainers' reaper,
// Ryuk, removes them a few seconds after rdslocal exits, unless it is
// disabled) and the volumes of instances that no longer exist (a Create
// that died half-way). Restore makes new containers on the volumes.
func (m *Manager) reapContainers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, dockerOpTimeout)
	defer cancel()
	p, err := m.dockerProvider(ctx)
	if err != nil {
		m.log.Warn("engine: cannot look for containers left by a previous run", "err", err)
		return
	}
	cli := p.Client()
	mine := make(dockerclient.Filters).Add("label", labelDir+"="+m.root)
	ctrs, err := cli.ContainerList(ctx, dockerclient.ContainerListOptions{All: true, Filters: mine})
	if err != nil {
		m.log.Warn("engine: cannot list containers", "err", err)
		return
	}
	for _, c := range ctrs.Items {
		m.log.Warn("engine: removing a container left by a previous run", "container", strings.Join(c.Names, ","), "instance", c.Labels[labelInstance])
		if err := dockerRemoveContainer(ctx, cli, c.ID); err != nil {
			m.log.Warn("engine: cannot remove container", "err", err)
		}
	}
	vols, err := cli.VolumeList(ctx, dockerclient.VolumeListOptions{Filters: mine})
	if err != nil {
		m.log.Warn("engine: cannot list volumes", "err", err)
		return
	}
	for _, v := range vols.Items {
		m.mu.Lock()
		known := m.insts[v.Labels[labelInstance]] != nil
		m.mu.Unlock()
		if known {
			continue
		}
		m.log.Warn("engine: removing the volume of an unfinished instance", "volume", v.Name)
		if _, err := cli.VolumeRemove(ctx, v.Name, dockerclient.VolumeRemoveOptions{Force: true}); err != nil {
			m.log.Warn("engine: cannot remove volume", "volume", v.Name, "err", err)
		}
	}
}

// prepareDocker pulls the image of engine at version unless the daemon
// has it.
func (m *Manager) prepareDocker(ctx context.Context, engine, version string) error {
	image, _, err := dockerImage(engine, version)
	if err != nil {
		return err
	}
	return m.ensureImage(ctx, image)
}
