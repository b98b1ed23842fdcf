package engine

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDockerFakeDaemon drives the docker backend, through the real
// testcontainers-go and Docker client code, against a fake Docker daemon:
// an HTTP server on a Unix socket that answers the Docker API calls the
// backend makes. A fake container's "server" is a PostgreSQL or MariaDB
// process of the process backend (one per data volume) behind a TCP
// forwarder on the published port, and its first start runs the init
// script on it as the image's entrypoint would. What this cannot check is
// the images themselves: their entrypoints, environment variables and
// data paths.
//
// testcontainers settles the daemon's address once per process, so the
// test runs itself in a child process with DOCKER_HOST pointing at the
// fake.
func TestDockerFakeDaemon(t *testing.T) {
	if sock := os.Getenv("ENGINE_TEST_FAKE_DOCKER"); sock != "" {
		fakeDockerChild(t, sock)
		return
	}
	requireEngine(t, "postgres")
	dir := newDir(t)
	// A short path: a Unix socket's path is limited to ~100 bytes.
	sockDir, err := os.MkdirTemp("", "rdslocal-fd-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "docker.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDockerFakeDaemon$", "-test.v")
	cmd.Env = append(os.Environ(),
		"ENGINE_TEST_CHILD_DIR="+dir, "ENGINE_TEST_FAKE_DOCKER="+sock, "ENGINE_TEST_TOKEN="+token,
		"ENGINE_TEST_TEMPLATES="+tmplDir,
		"DOCKER_HOST=unix://"+sock, "TESTCONTAINERS_RYUK_DISABLED=true", "TESTCONTAINERS_HOST_OVERRIDE=localhost",
		"TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE="+sock, "HOME="+dir) // no ~/.testcontainers.properties
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDockerFakeDaemon") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("child:\n%s", out)
	}
}

// fakeDockerChild runs in the child process.
func fakeDockerChild(t *testing.T, sock string) {
	token = os.Getenv("ENGINE_TEST_TOKEN")
	base = os.Getenv("ENGINE_TEST_CHILD_DIR")
	tmplDir = os.Getenv("ENGINE_TEST_TEMPLATES")
	fd := startFakeDocker(t, sock)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	if err := newDockerCheck().healthy(ctx); err != nil {
		t.Fatalf("the fake daemon is not healthy: %v", err)
	}

	// auto, with a daemon that answers but cannot pull the image (no
	// registry): the process backend serves, and the log says why; a
	// failed pull is not tried again at every Create. Once the daemon
	// can pull, auto runs containers.
	t.Run("auto without the image", func(t *testing.T) {
		requireEngine(t, "postgres")
		fd.setPullFails(true)
		var logs lockedBuffer
		m := newManager(t, Config{Backend: BackendAuto, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		for _, n := range []string{"fakeauto-1", "fakeauto-2"} {
			inst, err := m.Create(ctx, spec("postgres", n))
			if err != nil {
				t.Fatal(err)
			}
			if inst.Backend != BackendProcess || inst.PID == 0 || fd.container(m.dockerName(inst.ID)) != nil {
				t.Fatalf("auto without the image: %+v", inst)
			}
		}
		if n := fd.calls("pull postgres:17"); n != 1 {
			t.Fatalf("%d pulls of postgres:17, want 1", n)
		}
		if l := logs.String(); !strings.Contains(l, "using the process backend") || !strings.Contains(l, "no such host") {
			t.Fatalf("the log does not say why the process backend serves:\n%s", l)
		}
		fd.setPullFails(false)
		m = newManager(t, Config{Backend: BackendAuto})
		inst, err := m.Create(ctx, spec("postgres", "fakeauto-3"))
		if err != nil {
			t.Fatal(err)
		}
		if inst.Backend != BackendDocker || !fd.hasImage("postgres:17") {
			t.Fatalf("auto with a daemon that pulls: %+v", inst)
		}
	})

	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			requireEngine(t, e.engine)
			dir := newDir(t)
			m := newManager(t, Config{Backend: BackendDocker, DataDir: dir})
			if err := m.Prepare(ctx, e.engine, ""); err != nil {
				t.Fatal(err)
			}
			image, _, _ := dockerImage(e.engine, "")
			if !fd.hasImage(image) {
				t.Fatalf("Prepare did not pull %s", image)
			}

			fd.setFailBind(1) // the first port is taken when Docker binds it
			s := spec(e.engine, "fake")
			inst, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			starts := fd.startPorts()
			if len(starts) != 2 || starts[0] == starts[1] || strconv.Itoa(inst.Port) != starts[1] {
				t.Fatalf("start attempts on ports %v, instance on %d", starts, inst.Port)
			}
			name := m.dockerName(s.ID)
			if inst.Backend != BackendDocker || inst.Container != name || inst.PID != 0 || inst.Status != StatusAvailable ||
				inst.Host != loopback || inst.MaxConnections != 50 || inst.EngineVersion == "" {
				t.Fatalf("unexpected instance %+v", inst)
			}
			c := fd.container(name)
			if c == nil || c.image != image || c.volume != name || c.hostIP != "127.0.0.1" ||
				c.labels[labelInstance] != s.ID || c.labels[labelDir] != m.Dir() || c.labels["org.testcontainers"] != "true" {
				t.Fatalf("container %+v", c)
			}
			m.mu.Lock()
			adminPW := m.insts[inst.ID].meta.AdminPassword
			m.mu.Unlock()
			ds := dockerSpecFor(meta{Engine: e.engine, Major: "17", MasterUsername: s.MasterUsername, MasterPassword: s.MasterPassword, DBName: s.DBName,
				AdminPassword: adminPW, MaxConnections: 50})
			if c.target != ds.data || strings.Join(c.cmd, " ") != strings.Join(ds.cmd, " ") || !c.hasEnv(ds.env) {
				t.Fatalf("container %+v, want data %s, cmd %v, env %v", c, ds.data, ds.cmd, ds.env)
			}
			if labels := fd.volumeLabels(name); labels == nil || labels[labelInstance] != s.ID || len(labels) != 3 {
				t.Fatalf("volume %s has labels %v (only ours, no testcontainers session label)", name, labels)
			}

			h := mustOpen(t, inst, s.MasterPassword)
			mustExec(t, h, "CREATE TABLE t (id int PRIMARY KEY, v varchar(20))", "INSERT INTO t VALUES (1, 'hello')")
			h.Close()

			stops, removes := fd.calls("stop "+name), fd.calls("remove "+name)
			if err := m.Reboot(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
			if after, _ := m.Get(inst.ID); after.Port != inst.Port || after.Status != StatusAvailable {
				t.Fatalf("after reboot: %+v", after)
			}
			if fd.calls("stop "+name) != stops+1 || fd.calls("remove "+name) != removes {
				t.Fatalf("a reboot is one stop and no removal of %s: %v", name, fd.log)
			}
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
			_, err = m.Create(ctx, Spec{ID: id("fake-r"), Engine: e.engine, ReplicaOf: inst.ID})
			wantErr(t, err, ErrUnsupported, "replicas need the process backend")

			// The container dies behind the Manager's back: Check says so.
			fd.kill(name)
			wantErr(t, m.Check(ctx, inst.ID), nil, "check "+inst.ID)
			if got, _ := m.Get(inst.ID); got.Status != StatusFailed {
				t.Fatalf("after the container died: %+v", got)
			}
			if err := m.Reboot(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}

			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if fd.container(name) != nil || fd.volumeLabels(name) == nil {
				t.Fatalf("after Close: container %v, volume %v", fd.container(name), fd.volumeLabels(name))
			}
			if portOpen(inst.Port) {
				t.Fatalf("port %d open after Close", inst.Port)
			}

			// A container left by a crashed run, and the volume of a
			// Create that died half-way, are removed by the next Manager.
			fd.addLeftover(m.Dir(), "rdslocal-ghost-x", "ghost")
			m = newManager(t, Config{Backend: BackendDocker, DataDir: dir})
			if fd.container("rdslocal-ghost-x") != nil || fd.volumeLabels("rdslocal-ghost-x") != nil || fd.volumeLabels(name) == nil {
				t.Fatal("leftovers not reaped, or the instance's volume went too")
			}
			if got, _ := m.Get(inst.ID); got.Status != StatusStopped || got.Backend != BackendDocker {
				t.Fatalf("loaded: %+v", got)
			}
			inits := fd.inits()
			if err := m.Restore(ctx, []Spec{{ID: inst.ID, Engine: e.engine}}); err != nil {
				t.Fatal(err)
			}
			if fd.inits() != inits {
				t.Fatal("Restore initialised the data again")
			}
			inst, _ = m.Get(inst.ID)
			h = mustOpen(t, inst, newPW)
			if v, err := readValue(h, 1); err != nil || v != "hello" {
				t.Fatalf("read after restore: %q, %v", v, err)
			}
			h.Close()

			if err := m.Delete(ctx, inst.ID); err != nil {
				t.Fatal(err)
			}
			if fd.container(name) != nil || fd.volumeLabels(name) != nil {
				t.Fatal("container or volume left after Delete")
			}
			if portOpen(inst.Port) {
				t.Fatalf("port %d open after Delete", inst.Port)
			}
			if _, err := os.Stat(inst.Dir); !os.IsNotExist(err) {
				t.Fatalf("instance directory after Delete: %v", err)
			}
		})
	}

	t.Run("temporary", func(t *testing.T) {
		requireEngine(t, "postgres")
		m := newManager(t, Config{Backend: BackendDocker})
		s := spec("postgres", "faketemp")
		inst, err := m.Create(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		c := fd.container(inst.Container)
		if c == nil || c.volume != "" {
			t.Fatalf("container %+v: want no named volume without a DataDir", c)
		}
		if err := m.Reboot(ctx, inst.ID); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if fd.container(inst.Container) != nil {
			t.Fatal("container left after Close")
		}
	})

	t.Run("server never ready", func(t *testing.T) {
		requireEngine(t, "postgres")
		dir := newDir(t)
		m := newManager(t, Config{Backend: BackendDocker, DataDir: dir})
		fd.setExitOnStart(true)
		defer fd.setExitOnStart(false)
		s := spec("postgres", "fakeexit")
		_, err := m.Create(ctx, s)
		wantErr(t, err, nil, "stopped (exited, exit code 1) right after it started")
		wantErr(t, err, nil, "initdb: fake failure")
		name := m.dockerName(s.ID)
		if fd.container(name) != nil || fd.volumeLabels(name) != nil || len(m.List()) != 0 {
			t.Fatal("a failed Create left its container, volume or instance")
		}
	})
}

// fakeDocker is the fake Docker daemon.
type fakeDocker struct {
	t        *testing.T
	backings *Manager // the servers behind the containers

	mu          sync.Mutex
	nextID      int
	images      map[string]bool
	containers  map[string]*fakeCtr          // by ID
	volumes     map[string]map[string]string // name → labels
	servers     map[string]Instance          // data (volume or container ID) → backing server
	backingN    int
	failBind    int // refuse that many starts: port taken
	exitOnStart bool
	pullFails   bool     // no registry: every pull fails
	starts      []string // host port of each start attempt
	log         []string // "stop <name>", …
}

type fakeCtr struct {
	id, name, image  string
	labels           map[string]string
	env, cmd         []string
	port             string // container port, "5432/tcp"
	hostIP, hostPort string // as asked
	volume, target   string // named volume and where
	init             []byte
	running, exited  bool
	bound            int // host port while running (or last)
	ln               net.Listener
	conns            map[net.Conn]bool
	fam              string
	logOutput        string
}

func (c *fakeCtr) hasEnv(want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, e := range c.env {
			if e == k+"="+v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func startFakeDocker(t *testing.T, sock string) *fakeDocker {
	fd := &fakeDocker{t: t, images: map[string]bool{}, containers: map[string]*fakeCtr{},
		volumes: map[string]map[string]string{}, servers: map[string]Instance{}}
	// The backing servers use ports of their own, away from the range the
	// docker Manager publishes on.
	fd.backings = newManager(t, Config{PortMin: 4700, PortMax: 4750})
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: fd}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		fd.mu.Lock()
		defer fd.mu.Unlock()
		for _, c := range fd.containers {
			fd.unbindLocked(c)
		}
	})
	return fd
}

var apiVersionRE = regexp.MustCompile(`^/v[0-9.]+`)

func (fd *fakeDocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := apiVersionRE.ReplaceAllString(r.URL.Path, "")
	q := r.URL.Query()
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if v != nil {
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	fail := func(code int, format string, args ...any) {
		reply(code, map[string]string{"message": fmt.Sprintf(format, args...)})
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	fd.mu.Lock()
	defer fd.mu.Unlock()
	switch {
	case path == "/_ping":
		w.Header().Set("Api-Version", "1.51")
		w.Header().Set("Ostype", "linux")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("OK"))
	case path == "/info":
		reply(200, map[string]any{"ID": "FAKE", "Name": "fake", "ServerVersion": "28.0.0", "OperatingSystem": "fake-docker",
			"OSType": "linux", "Architecture": "x86_64", "NCPU": 2, "MemTotal": 1 << 31, "Labels": []string{}})
	case path == "/networks" && r.Method == http.MethodGet:
		reply(200, []map[string]any{{"Name": "bridge", "Id": "bridge0", "Driver": "bridge", "Scope": "local"}})
	case parts[0] == "images" && len(parts) >= 3 && parts[len(parts)-1] == "json":
		name := strings.Join(parts[1:len(parts)-1], "/")
		if !fd.images[name] {
			fail(404, "No such image: %s", name)
			return
		}
		reply(200, map[string]any{"Id": "sha256:" + strings.Repeat("0", 64), "Architecture": "amd64", "Os": "linux",
			"RepoTags": []string{name}, "Config": map[string]any{}})
	case path == "/images/create" && r.Method == http.MethodPost:
		name := strings.TrimPrefix(strings.TrimPrefix(q.Get("fromImage"), "docker.io/"), "library/")
		if tag := q.Get("tag"); tag != "" {
			name += ":" + tag
		}
		fd.log = append(fd.log, "pull "+name)
		if fd.pullFails {
			// What a daemon without a reachable registry answers.
			fail(500, `Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io on 127.0.0.53:53: no such host`)
			return
		}
		fd.images[name] = true
		reply(200, map[string]string{"status": "Downloaded newer image for " + name})
	case path == "/containers/create" && r.Method == http.MethodPost:
		fd.create(r, q.Get("name"), reply, fail)
	case path == "/containers/json":
		want := labelFilter(q.Get("filters"))
		var out []map[string]any
		for _, c := range fd.containers {
			if matchLabels(c.labels, want) {
				out = append(out, map[string]any{"Id": c.id, "Names": []string{"/" + c.name}, "Image": c.image,
					"Labels": c.labels, "State": fd.state(c)})
			}
		}
		reply(200, out)
	case parts[0] == "containers" && len(parts) >= 2:
		c := fd.find(parts[1])
		if c == nil {
			fail(404, "No such container: %s", parts[1])
			return
		}
		op := ""
		if len(parts) > 2 {
			op = parts[2]
		}
		switch {
		case r.Method == http.MethodDelete:
			if c.running && q.Get("force") != "1" && q.Get("force") != "true" {
				fail(409, "container %s is running", c.name)
				return
			}
			fd.unbindLocked(c)
			delete(fd.containers, c.id)
			fd.log = append(fd.log, "remove "+c.name)
			w.WriteHeader(204)
		case op == "archive" && r.Method == http.MethodPut:
			// Docker takes a plain or compressed tar; testcontainers
			// sends it gzipped.
			var body io.Reader = r.Body
			br := bufio.NewReader(r.Body)
			if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
				zr, err := gzip.NewReader(br)
				if err != nil {
					fail(400, "bad gzip: %v", err)
					return
				}
				body = zr
			} else {
				body = br
			}
			tr := tar.NewReader(body)
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				if strings.HasSuffix(h.Name, "00-rdslocal.sql") {
					c.init, _ = io.ReadAll(tr)
				}
			}
			w.WriteHeader(200)
		case op == "start":
			if err := fd.start(c); err != nil {
				fail(500, "driver failed programming external connectivity on endpoint %s: %v", c.name, err)
				return
			}
			w.WriteHeader(204)
		case op == "stop":
			fd.log = append(fd.log, "stop "+c.name)
			fd.unbindLocked(c)
			c.running = false
			w.WriteHeader(204)
		case op == "json":
			reply(200, fd.inspect(c))
		case op == "logs":
			w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
			w.WriteHeader(200)
			for _, line := range strings.SplitAfter(c.logOutput, "\n") {
				if line == "" {
					continue
				}
				hdr := make([]byte, 8)
				hdr[0] = 2 // stderr
				binary.BigEndian.PutUint32(hdr[4:], uint32(len(line)))
				_, _ = w.Write(append(hdr, line...))
			}
		default:
			fail(501, "fake docker: %s %s not implemented", r.Method, r.URL.Path)
		}
	case path == "/volumes/create" && r.Method == http.MethodPost:
		var req struct {
			Name   string
			Labels map[string]string
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		if fd.volumes[req.Name] == nil {
			if req.Labels == nil {
				req.Labels = map[string]string{}
			}
			fd.volumes[req.Name] = req.Labels
		}
		reply(201, fd.volumeJSON(req.Name))
	case path == "/volumes" && r.Method == http.MethodGet:
		want := labelFilter(q.Get("filters"))
		out := []any{}
		for name, labels := range fd.volumes {
			if matchLabels(labels, want) {
				out = append(out, fd.volumeJSON(name))
			}
		}
		reply(200, map[string]any{"Volumes": out, "Warnings": []string{}})
	case parts[0] == "volumes" && len(parts) == 2:
		name := parts[1]
		if fd.volumes[name] == nil {
			fail(404, "get %s: no such volume", name)
			return
		}
		if r.Method == http.MethodDelete {
			for _, c := range fd.containers {
				if c.volume == name {
					fail(409, "remove %s: volume is in use - [%s]", name, c.id)
					return
				}
			}
			delete(fd.volumes, name)
			delete(fd.servers, name)
			w.WriteHeader(204)
			return
		}
		reply(200, fd.volumeJSON(name))
	default:
		fail(501, "fake docker: %s %s not implemented", r.Method, r.URL.Path)
	}
}

func (fd *fakeDocker) create(r *http.Request, name string, reply func(int, any), fail func(int, string, ...any)) {
	var req struct {
		Image        string
		Env          []string
		Cmd          []string
		Labels       map[string]string
		ExposedPorts map[string]struct{}
		HostConfig   struct {
			PortBindings map[string][]struct{ HostIp, HostPort string }
			Mounts       []struct{ Type, Source, Target string }
		}
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		fail(400, "bad body: %v", err)
		return
	}
	if fd.find(name) != nil {
		fail(409, `Conflict. The container name "/%s" is already in use`, name)
		return
	}
	if !fd.images[req.Image] {
		fail(404, "No such image: %s", req.Image)
		return
	}
	fd.nextID++
	c := &fakeCtr{id: fmt.Sprintf("%064d", fd.nextID), name: name, image: req.Image, labels: req.Labels,
		env: req.Env, cmd: req.Cmd, conns: map[net.Conn]bool{}}
	if strings.HasPrefix(req.Image, "postgres:") {
		c.fam = famPostgres
	} else {
		c.fam = famMySQL
	}
	if len(req.ExposedPorts) != 1 || len(req.HostConfig.PortBindings) != 1 {
		fail(400, "fake docker: want one exposed and published port, got %v and %v", req.ExposedPorts, req.HostConfig.PortBindings)
		return
	}
	for p, b := range req.HostConfig.PortBindings {
		if _, ok := req.ExposedPorts[p]; !ok || len(b) != 1 {
			fail(400, "fake docker: port %s bound %v but exposed %v", p, b, req.ExposedPorts)
			return
		}
		c.port, c.hostIP, c.hostPort = p, b[0].HostIp, b[0].HostPort
	}
	for _, mt := range req.HostConfig.Mounts {
		if mt.Type != "volume" {
			fail(400, "fake docker: unexpected mount %+v", mt)
			return
		}
		if fd.volumes[mt.Source] == nil { // Docker would make it, with no labels
			fd.volumes[mt.Source] = map[string]string{}
		}
		c.volume, c.target = mt.Source, mt.Target
	}
	fd.containers[c.id] = c
	reply(201, map[string]any{"Id": c.id, "Warnings": []string{}})
}

// start binds the container's port, forwarding it to the server that
// holds its data (made, and given the init script, on first use).
func (fd *fakeDocker) start(c *fakeCtr) error {
	fd.starts = append(fd.starts, c.hostPort)
	if fd.failBind > 0 {
		fd.failBind--
		return fmt.Errorf("Bind for %s:%s failed: port is already allocated", c.hostIP, c.hostPort)
	}
	if fd.exitOnStart {
		c.exited, c.logOutput = true, "initdb: fake failure\n"
		return nil
	}
	data := c.volume
	if data == "" {
		data = c.id
	}
	backing, ok := fd.servers[data]
	if !ok {
		var err error
		if backing, err = fd.initServer(c); err != nil {
			return err
		}
		fd.servers[data] = backing
	}
	port := c.hostPort
	if port == "0" && c.bound != 0 {
		port = strconv.Itoa(c.bound)
	}
	ip := c.hostIP
	if ip == "" {
		ip = "0.0.0.0"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
	if err != nil {
		return fmt.Errorf("Bind for %s:%s failed: port is already allocated", ip, port)
	}
	c.ln, c.bound, c.running, c.exited = ln, ln.Addr().(*net.TCPAddr).Port, true, false
	c.logOutput = "server ready\n"
	target := net.JoinHostPort(backing.Host, strconv.Itoa(backing.Port))
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			fd.mu.Lock()
			c.conns[in], c.conns[out] = true, true
			fd.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return nil
}

// initServer makes the server behind a new data volume and does what the
// image's entrypoint does on an empty data directory: the master user and
// database (already there: the backing server is made from the same
// Spec), then the init script. The backing server's own rdsadmin is moved
// out of the way of the one the script creates.
func (fd *fakeDocker) initServer(c *fakeCtr) (Instance, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	engine := "postgres"
	if c.fam == famMySQL {
		engine = "mariadb"
	}
	env := map[string]string{}
	for _, e := range c.env {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	fd.backingN++
	s := spec(engine, fmt.Sprintf("backing%d", fd.backingN))
	if c.fam == famPostgres && (env["POSTGRES_USER"] != adminUser || env["POSTGRES_PASSWORD"] == "" || env["POSTGRES_DB"] != s.DBName) {
		return Instance{}, fmt.Errorf("fake docker: environment %v does not match the backing server's Spec", c.env)
	}
	inst, err := fd.backings.Create(ctx, s)
	if err != nil {
		return Instance{}, err
	}
	fd.backings.mu.Lock()
	md := fd.backings.insts[inst.ID].meta
	fd.backings.mu.Unlock()
	master := masterLogin(c.fam, md)
	if c.fam == famPostgres {
		// The entrypoint's superuser is rdsadmin with the container's
		// password; the roles the init script makes move out of its way.
		stmts := []string{"ALTER ROLE " + adminUser + " PASSWORD " + pgLiteral(env["POSTGRES_PASSWORD"])}
		for _, r := range []string{md.MasterUsername, pgSuperGroup, "rds_replication", "rds_password"} {
			stmts = append(stmts, "ALTER ROLE "+pgIdent(r)+" RENAME TO "+pgIdent(r+"_backing"))
		}
		err = postgres{}.exec(ctx, adminLogin(c.fam, md), append(stmts, string(c.init))...)
	} else {
		var stmts []string
		// The backing server is MariaDB 10.11, older than the image it
		// stands in for: it lacks 11.3's SHOW CREATE ROUTINE privilege.
		init := strings.ReplaceAll(string(c.init), ", SHOW CREATE ROUTINE ON", " ON")
		for _, st := range strings.Split(init, ";\n") {
			if strings.TrimSpace(st) != "" {
				stmts = append(stmts, st)
			}
		}
		if err = (mariadb{}).exec(ctx, adminLogin(famMySQL, md), stmts...); err == nil {
			err = mariadb{}.exec(ctx, master, "DROP USER "+myAccount(adminUser, loopback))
		}
	}
	if err != nil {
		return Instance{}, fmt.Errorf("fake docker: init script %q: %w", c.init, err)
	}
	fd.log = append(fd.log, "init "+c.name)
	return inst, nil
}

func (fd *fakeDocker) unbindLocked(c *fakeCtr) {
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
	for conn := range c.conns {
		conn.Close()
	}
	clear(c.conns)
}

func (fd *fakeDocker) state(c *fakeCtr) string {
	switch {
	case c.running:
		return "running"
	case c.exited:
		return "exited"
	}
	return "created"
}

func (fd *fakeDocker) inspect(c *fakeCtr) map[string]any {
	ports := map[string]any{}
	if c.running {
		ip := c.hostIP
		if ip == "" {
			ip = "0.0.0.0"
		}
		ports[c.port] = []map[string]string{{"HostIp": ip, "HostPort": strconv.Itoa(c.bound)}}
	}
	exit := 0
	if c.exited {
		exit = 1
	}
	return map[string]any{
		"Id": c.id, "Name": "/" + c.name, "Image": c.image,
		"State":           map[string]any{"Status": fd.state(c), "Running": c.running, "ExitCode": exit},
		"Config":          map[string]any{"Tty": false, "Image": c.image, "Labels": c.labels, "Env": c.env},
		"HostConfig":      map[string]any{"NetworkMode": "bridge"},
		"NetworkSettings": map[string]any{"Ports": ports},
	}
}

func (fd *fakeDocker) volumeJSON(name string) map[string]any {
	return map[string]any{"Name": name, "Driver": "local", "Mountpoint": "/fake/" + name, "Labels": fd.volumes[name], "Scope": "local"}
}

func (fd *fakeDocker) find(idOrName string) *fakeCtr {
	if c := fd.containers[idOrName]; c != nil {
		return c
	}
	for _, c := range fd.containers {
		if c.name == idOrName {
			return c
		}
	}
	return nil
}

// labelFilter reads the label=… terms of a filters query parameter.
func labelFilter(filters string) []string {
	var f map[string]map[string]bool
	_ = json.Unmarshal([]byte(filters), &f)
	var out []string
	for term := range f["label"] {
		out = append(out, term)
	}
	return out
}

func matchLabels(labels map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasV := strings.Cut(w, "=")
		got, ok := labels[k]
		if !ok || hasV && got != v {
			return false
		}
	}
	return true
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Accessors for the test.

func (fd *fakeDocker) hasImage(name string) bool {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return fd.images[name]
}

func (fd *fakeDocker) container(name string) *fakeCtr {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	c := fd.find(name)
	if c == nil {
		return nil
	}
	cc := *c
	return &cc
}

func (fd *fakeDocker) volumeLabels(name string) map[string]string {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return fd.volumes[name]
}

func (fd *fakeDocker) setFailBind(n int) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.failBind, fd.starts = n, nil
}

func (fd *fakeDocker) setPullFails(b bool) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.pullFails = b
}

func (fd *fakeDocker) setExitOnStart(b bool) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	fd.exitOnStart = b
}

func (fd *fakeDocker) startPorts() []string {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return append([]string(nil), fd.starts...)
}

func (fd *fakeDocker) calls(entry string) int {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	n := 0
	for _, l := range fd.log {
		if l == entry {
			n++
		}
	}
	return n
}

func (fd *fakeDocker) inits() int {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	n := 0
	for _, l := range fd.log {
		if strings.HasPrefix(l, "init ") {
			n++
		}
	}
	return n
}

// kill makes a running container exit, as a crash would.
func (fd *fakeDocker) kill(name string) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if c := fd.find(name); c != nil {
		fd.unbindLocked(c)
		c.running, c.exited = false, true
	}
}

// addLeftover adds a stopped container and a volume labelled as the
// Manager of dir would label them, for an instance it does not have.
func (fd *fakeDocker) addLeftover(dir, name, id string) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	labels := map[string]string{labelDir: dir, labelInstance: id, labelEngine: "postgres"}
	fd.nextID++
	c := &fakeCtr{id: fmt.Sprintf("%064d", fd.nextID), name: name, image: "postgres:17", labels: labels,
		volume: name, exited: true, conns: map[net.Conn]bool{}}
	fd.containers[c.id] = c
	fd.volumes[name] = labels
}
