package engine

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	dockerclient "github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// TestDockerImage: the image and tag each engine and version get.
func TestDockerImage(t *testing.T) {
	for _, c := range []struct{ engine, version, image, series string }{
		{"postgres", "", "postgres:17", "17"},
		{"postgres", "15", "postgres:15", "15"},
		{"postgres", "15.4", "postgres:15", "15"},
		{"aurora-postgresql", "16.6", "postgres:16", "16"},
		{"postgres", "9.6.24", "postgres:9.6", "9.6"},
		{"postgres", "18.1", "postgres:18", "18"},
		{"mariadb", "", "mariadb:11.4", "11.4"},
		{"mariadb", "10.11.8", "mariadb:10.11", "10.11"},
		{"mysql", "", "mysql:8.0", "8.0"},
		{"mysql", "8.4.3", "mysql:8.4", "8.4"},
		{"aurora-mysql", "8.0.mysql_aurora.3.04.0", "mysql:8.0", "8.0"},
		{"aurora", "5.7.mysql_aurora.2.11.2", "mysql:5.7", "5.7"},
	} {
		image, series, err := dockerImage(c.engine, c.version)
		if err != nil || image != c.image || series != c.series {
			t.Errorf("%s %q: %q %q %v, want %q %q", c.engine, c.version, image, series, err, c.image, c.series)
		}
	}
	for _, v := range []string{"latest", "15;rm", "x.1"} {
		_, _, err := dockerImage("postgres", v)
		wantErr(t, err, ErrUnsupported, "no postgres image tag")
	}
	// PostgreSQL 18 images keep their data under /var/lib/postgresql.
	if d := dockerSpecFor(meta{Engine: "postgres", Major: "18"}).data; d != "/var/lib/postgresql" {
		t.Errorf("postgres 18 data mount %s", d)
	}
	if d := dockerSpecFor(meta{Engine: "postgres", Major: "17"}).data; d != "/var/lib/postgresql/data" {
		t.Errorf("postgres 17 data mount %s", d)
	}
}

// TestDockerHealthProbe: a probe that hangs or panics gives an answer
// within the health timeout, and the answer is cached.
func TestDockerHealthProbe(t *testing.T) {
	ctx := context.Background()
	h := &dockerCheck{probe: func(context.Context) error { panic("no container runtime") }}
	if err := h.healthy(ctx); err == nil || !strings.Contains(err.Error(), "panicked: no container runtime") {
		t.Fatalf("panicking probe: %v", err)
	}

	release := make(chan struct{})
	h = &dockerCheck{probe: func(context.Context) error { <-release; return nil }}
	start := time.Now()
	err := h.healthy(ctx)
	if took := time.Since(start); err == nil || took > dockerHealthTimeout+time.Second {
		close(release)
		t.Fatalf("hanging probe: %v after %s", err, took)
	}
	start = time.Now()
	if err := h.healthy(ctx); err == nil || time.Since(start) > 100*time.Millisecond {
		close(release)
		t.Fatalf("the timeout was not cached: %v after %s", err, time.Since(start))
	}
	// The probe ends: its answer replaces the timeout.
	h.mu.Lock()
	done := h.inflight
	h.mu.Unlock()
	close(release)
	<-done
	if err := h.healthy(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDockerUnavailable runs where no Docker daemon answers (CI): the
// health check says so quickly and without panicking, Backend docker is
// refused with a clear error, and auto runs processes.
func TestDockerUnavailable(t *testing.T) {
	ctx := ctxT(t)
	h := newDockerCheck()
	start := time.Now()
	err := h.healthy(ctx)
	took := time.Since(start)
	if took > 3*time.Second {
		t.Fatalf("the Docker health check took %s", took)
	}
	if err == nil {
		t.Skip("a Docker daemon is healthy here; TestDockerLifecycle covers the backend")
	}
	t.Logf("docker: %v (%s)", err, took)
	start = time.Now()
	if err := h.healthy(ctx); err == nil || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("second check: %v after %s (not cached?)", err, time.Since(start))
	}

	dir := newDir(t)
	start = time.Now()
	_, err = NewManager(ctx, Config{Backend: BackendDocker, DataDir: dir})
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("NewManager took %s", took)
	}
	wantErr(t, err, ErrUnsupported, "docker backend: no healthy Docker daemon (")
	t.Logf("NewManager(docker): %v", err)
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("NewManager(docker) left %v in %s", ents, dir)
	}

	// auto without binaries: the error names both what is missing and why
	// docker cannot stand in.
	m := newManager(t, Config{Backend: BackendAuto, BinPath: t.TempDir()})
	_, err = m.Create(ctx, spec("postgres", "auto-nobin"))
	wantErr(t, err, ErrUnsupported, "engine postgres needs PostgreSQL's postgres and initdb")
	wantErr(t, err, ErrUnsupported, "the docker backend cannot stand in: no healthy Docker daemon (")
	wantErr(t, m.Prepare(ctx, "mariadb", ""), ErrUnsupported, "no healthy Docker daemon")
	if len(m.List()) != 0 {
		t.Fatalf("instances left: %+v", m.List())
	}

	// auto with binaries: a process.
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			m := newManager(t, Config{Backend: BackendAuto})
			inst, err := m.Create(ctx, spec(e.engine, "auto"))
			if err != nil {
				t.Fatal(err)
			}
			if inst.Backend != BackendProcess || inst.PID == 0 || inst.Container != "" {
				t.Fatalf("auto without Docker made %+v", inst)
			}
			mustOpen(t, inst, spec(e.engine, "auto").MasterPassword).Close()
			if err := m.Delete(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDockerLifecycle runs only where a Docker daemon answers: the flow of
// TestLifecycle in containers, then Restore from the DataDir and Delete.
func TestDockerLifecycle(t *testing.T) {
	testcontainers.SkipIfProviderIsNotHealthy(t)
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			// Long enough for a first image pull.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			dir := newDir(t)
			m := newManager(t, Config{Backend: BackendDocker, DataDir: dir})
			start := time.Now()
			if err := m.Prepare(ctx, e.engine, ""); err != nil {
				t.Fatal(err)
			}
			t.Logf("image ready in %s", time.Since(start).Round(time.Millisecond))

			s := spec(e.engine, "dlife")
			start = time.Now()
			inst, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			addFigure("%s %s (docker): Create→ready %.2fs", e.engine, inst.EngineVersion, time.Since(start).Seconds())
			_, series, _ := dockerImage(e.engine, "")
			// A daemon elsewhere (DOCKER_HOST=tcp://…, or this test in a
			// container) publishes on a port it picks, on its own host.
			local := inst.Host == loopback
			if inst.Backend != BackendDocker || inst.Container == "" || inst.PID != 0 || inst.Status != StatusAvailable ||
				inst.Role != RolePrimary || inst.MaxConnections != 50 ||
				local && (inst.Port < DefaultPortMin || inst.Port >= DefaultPortMax) || !strings.HasPrefix(inst.EngineVersion, series+".") {
				t.Fatalf("unexpected instance %+v", inst)
			}
			h := mustOpen(t, inst, s.MasterPassword)
			mustExec(t, h, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'hello')")
			if v, err := readValue(h, 1); err != nil || v != "hello" {
				t.Fatalf("read back: %q, %v", v, err)
			}
			h.Close()

			if err := m.Reboot(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
			after, _ := m.Get(inst.ID)
			if local && after.Port != inst.Port || after.Status != StatusAvailable || after.Container != inst.Container {
				t.Fatalf("after reboot: %+v", after)
			}
			inst = after
			h = mustOpen(t, inst, s.MasterPassword)
			if v, err := readValue(h, 1); err != nil || v != "hello" {
				t.Fatalf("read after reboot: %q, %v", v, err)
			}
			h.Close()

			const newPW = `n3w"Pass'word`
			if err := m.SetPassword(ctx, inst.ID, newPW); err != nil {
				t.Fatal(err)
			}
			if h, err := open(inst, "master", s.MasterPassword, "appdb"); err == nil {
				h.Close()
				t.Fatal("the old password still works")
			}
			mustOpen(t, inst, newPW).Close()
			if err := m.Check(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}

			_, err = m.Create(ctx, Spec{ID: id("dlife-r"), Engine: e.engine, ReplicaOf: inst.ID})
			wantErr(t, err, ErrUnsupported, "replicas need the process backend")

			// A new Manager on the DataDir brings the instance back, on a
			// new container over the same volume.
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if local && portOpen(inst.Port) {
				t.Fatalf("port %d still open after Close", inst.Port)
			}
			m = newManager(t, Config{Backend: BackendDocker, DataDir: dir})
			if got, _ := m.Get(inst.ID); got.Status != StatusStopped || got.Backend != BackendDocker {
				t.Fatalf("loaded: %+v", got)
			}
			if err := m.Restore(ctx, []Spec{{ID: inst.ID, Engine: e.engine}}); err != nil {
				t.Fatal(err)
			}
			inst, _ = m.Get(inst.ID)
			h = mustOpen(t, inst, newPW)
			if v, err := readValue(h, 1); err != nil || v != "hello" {
				t.Fatalf("read after restore: %q, %v", v, err)
			}
			h.Close()

			m.mu.Lock()
			md := m.insts[inst.ID].meta
			m.mu.Unlock()
			if err := m.Delete(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
			if local && portOpen(inst.Port) {
				t.Fatalf("port %d still open after Delete", inst.Port)
			}
			p, err := m.dockerProvider(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Client().ContainerInspect(ctx, md.Container, dockerclient.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
				t.Fatalf("container %s after Delete: %v", md.Container, err)
			}
			if _, err := p.Client().VolumeInspect(ctx, md.Volume, dockerclient.VolumeInspectOptions{}); !cerrdefs.IsNotFound(err) {
				t.Fatalf("volume %s after Delete: %v", md.Volume, err)
			}
			wantErr(t, m.Reboot(ctx, inst.ID), ErrNotFound, "")
		})
	}
}

// TestDockerTemporary runs only where a Docker daemon answers: without a
// DataDir the data lives in the container's own volume; it survives a
// Reboot, and Close removes the container.
func TestDockerTemporary(t *testing.T) {
	testcontainers.SkipIfProviderIsNotHealthy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	m := newManager(t, Config{Backend: BackendDocker})
	s := spec("postgres", "dtemp")
	inst, err := m.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	h := mustOpen(t, inst, s.MasterPassword)
	mustExec(t, h, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'kept')")
	h.Close()
	if err := m.Reboot(ctx, inst.ID); err != nil {
		t.Fatal(err)
	}
	inst, _ = m.Get(inst.ID)
	h = mustOpen(t, inst, s.MasterPassword)
	if v, err := readValue(h, 1); err != nil || v != "kept" {
		t.Fatalf("read after reboot: %q, %v", v, err)
	}
	h.Close()
	p, err := m.dockerProvider(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = p.Client().ContainerInspect(ctx, inst.Container, dockerclient.ContainerInspectOptions{})
	if !cerrdefs.IsNotFound(err) {
		t.Fatalf("container %s after Close: %v", inst.Container, err)
	}
}

// TestDockerInitScript runs the MariaDB/MySQL init script of the docker
// backend the way the images' entrypoint does (the mariadb client reading
// it on stdin, as an account with every privilege) on a MariaDB process,
// with names and a password that need quoting: the master user logs in to
// its database afterwards, and rdsadmin@'%' exists.
func TestDockerInitScript(t *testing.T) {
	requireEngine(t, "mariadb")
	cli, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skipf("skipping: no mariadb client: %v", err)
	}
	ctx := ctxT(t)
	m := newManager(t, Config{})
	host, err := m.Create(ctx, spec("mariadb", "initscript"))
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	hm := m.insts[host.ID].meta
	m.mu.Unlock()
	md := meta{Engine: "mariadb", MasterUsername: `dock'us\er`, MasterPassword: `Secr3t'p\w;"x`, DBName: "dock db", AdminPassword: "Adm1n'pw", MaxConnections: 50}
	ds := dockerSpecFor(md)
	cmd := exec.CommandContext(ctx, cli, "--protocol=tcp", "-h", hm.Host, "-P", strconv.Itoa(hm.Port), "-u", adminUser, "--password="+hm.AdminPassword)
	cmd.Stdin = strings.NewReader(ds.init)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init script failed: %v\n%s\n--- script ---\n%s", err, out, ds.init)
	}
	h, err := open(host, md.MasterUsername, md.MasterPassword, md.DBName)
	if err != nil {
		t.Fatalf("the master user made by the init script cannot log in: %v", err)
	}
	defer h.Close()
	if n, err := h.Value("SELECT COUNT(*) FROM mysql.global_priv WHERE User = 'rdsadmin' AND Host = '%'"); err != nil || n != "1" {
		t.Fatalf("rdsadmin@%%: %q, %v", n, err)
	}
	if ds.cmd[0] != "--max-connections=50" || ds.env["MYSQL_RANDOM_ROOT_PASSWORD"] == "" || ds.port.String() != "3306/tcp" {
		t.Fatalf("container spec %+v", ds)
	}
}

// TestDockerInitScriptPostgres does the same for PostgreSQL: psql runs
// the script as the entrypoint does (ON_ERROR_STOP, no psqlrc, as the
// image's superuser, rdsadmin), on a PostgreSQL process, inside a
// transaction that first renames the roles the script makes out of the
// way and is rolled back; the master role it makes is checked in
// pg_authid. The master password has psql variable syntax in it, which
// must stay literal.
func TestDockerInitScriptPostgres(t *testing.T) {
	requireEngine(t, "postgres")
	cli, err := exec.LookPath("psql")
	if err != nil {
		t.Skipf("skipping: no psql: %v", err)
	}
	ctx := ctxT(t)
	m := newManager(t, Config{})
	s := spec("postgres", "initscript")
	host, err := m.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	hm := m.insts[host.ID].meta
	m.mu.Unlock()
	md := meta{Engine: "postgres", Major: "17", MasterUsername: "m", MasterPassword: `a:'b' :"c" \d`, AdminPassword: "adm", DBName: "appdb", MaxConnections: 50}
	ds := dockerSpecFor(md)
	script := "BEGIN;\n"
	for _, r := range []string{"rds_superuser", "rds_replication", "rds_password"} {
		script += "ALTER ROLE " + r + " RENAME TO " + r + "_process;\n"
	}
	script += ds.init +
		"SELECT NOT rolsuper AND rolcreaterole AND rolcreatedb AND rolcanlogin AND rolpassword LIKE 'SCRAM-SHA-256$%' AND pg_has_role('m', 'rds_superuser', 'MEMBER') " +
		"AND (SELECT count(*) FROM pg_database WHERE datname IN ('postgres', 'appdb') AND datdba = pg_authid.oid) = 2 AS ok FROM pg_authid WHERE rolname = 'm' \\gset\n" +
		"\\if :ok\n\\else\n\\echo 'm is not the master role RDS makes'\n\\quit\n\\endif\n" +
		"ROLLBACK;\n\\echo done\n"
	cmd := exec.CommandContext(ctx, cli, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-qtA",
		"host="+host.Host+" port="+strconv.Itoa(host.Port)+" user=rdsadmin dbname=appdb sslmode=disable")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+hm.AdminPassword)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "done" {
		t.Fatalf("init script: %v\n%s\n--- script ---\n%s", err, out, script)
	}
	if ds.env["POSTGRES_USER"] != "rdsadmin" || ds.env["POSTGRES_PASSWORD"] != "adm" || ds.env["POSTGRES_DB"] != "appdb" || ds.data != "/var/lib/postgresql/data" ||
		strings.Join(ds.cmd, " ") != "postgres -c max_connections=50 -c fsync=off" {
		t.Fatalf("container spec %+v", ds)
	}
}

// fakeContainer stands in for a container in the tests of the wait loop:
// State and Logs only.
type fakeContainer struct {
	testcontainers.Container // nil: any other call panics
	running                  atomic.Bool
	logs                     string
}

func (f *fakeContainer) State(context.Context) (*container.State, error) {
	if f.running.Load() {
		return &container.State{Status: "running", Running: true}, nil
	}
	return &container.State{Status: "exited", ExitCode: 1}, nil
}

func (f *fakeContainer) Logs(context.Context) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(f.logs)), nil
}

// TestDockerWaitReady: the wait for a container's server, against a
// listener that behaves like Docker's proxy in front of a server not up
// yet (accepts, then closes), and against a MariaDB process.
func TestDockerWaitReady(t *testing.T) {
	ctx := ctxT(t)
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	go func() {
		for {
			c, err := proxy.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := proxy.Addr().(*net.TCPAddr).Port
	l := login{host: loopback, port: port, user: "master", password: "x"}
	m := newManager(t, Config{ReadyTimeout: 10 * time.Second})
	logs := strings.Repeat("noise\n", 30) + "mariadbd: fatal: the end\n"

	for _, fam := range []family{mariadb{}, postgres{}} {
		t.Run(fam.name()+" stops", func(t *testing.T) {
			fc := &fakeContainer{logs: logs}
			fc.running.Store(true)
			time.AfterFunc(1500*time.Millisecond, func() { fc.running.Store(false) })
			start := time.Now()
			err := m.dockerWaitReady(ctx, &dockerServer{c: fc, name: "ctr"}, fam, l)
			wantErr(t, err, nil, "container ctr stopped (exited, exit code 1) before it accepted connections")
			wantErr(t, err, nil, "--- docker logs ctr (last lines) ---\n"+strings.Repeat("noise\n", 19)+"mariadbd: fatal: the end")
			if took := time.Since(start); took > 4*time.Second {
				t.Fatalf("took %s", took)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		m := newManager(t, Config{ReadyTimeout: time.Second})
		fc := &fakeContainer{}
		fc.running.Store(true)
		err := m.dockerWaitReady(ctx, &dockerServer{c: fc, name: "ctr"}, mariadb{}, l)
		wantErr(t, err, nil, "server in container ctr not ready after 1s: no greeting from 127.0.0.1:")
	})
	t.Run("mariadb", func(t *testing.T) {
		requireEngine(t, "mariadb")
		s := spec("mariadb", "wait")
		inst, err := m.Create(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		fc := &fakeContainer{logs: "log line\n"}
		fc.running.Store(true)
		d := &dockerServer{c: fc, name: "ctr"}
		l := login{host: inst.Host, port: inst.Port, user: "master", password: s.MasterPassword}
		if err := m.dockerWaitReady(ctx, d, mariadb{}, l); err != nil {
			t.Fatal(err)
		}
		l.password = "wrong"
		start := time.Now()
		err = m.dockerWaitReady(ctx, d, mariadb{}, l)
		wantErr(t, err, nil, "Access denied")
		wantErr(t, err, nil, "--- docker logs ctr (last lines) ---\nlog line")
		if took := time.Since(start); took > time.Second {
			t.Fatalf("a refused login took %s to fail", took)
		}
	})
}
