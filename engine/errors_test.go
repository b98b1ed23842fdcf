package engine

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBadInputs: each bad input is a clear error and leaves nothing
// behind: no instance, no directory, no process, no port.
func TestBadInputs(t *testing.T) {
	pg := requireEngine(t, "postgres")
	my := requireEngine(t, "mariadb")
	ctx := ctxT(t)

	// A port somebody else holds, for the port cases.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port

	with := func(s Spec, f func(*Spec)) Spec { f(&s); return s }
	base := spec("postgres", "bad")
	cases := []struct {
		name   string
		cfg    Config
		spec   Spec
		target error
		msg    string
	}{
		{"unknown engine", Config{}, with(base, func(s *Spec) { s.Engine = "oracle-ee" }), ErrInvalid, `engine "oracle-ee"`},
		{"postgres version not installed", Config{}, with(base, func(s *Spec) { s.EngineVersion = "9.6" }), ErrUnsupported,
			"engine postgres version 9.6 is not installed; installed: PostgreSQL " + pg.version},
		{"mariadb version not installed", Config{}, with(spec("mariadb", "bad"), func(s *Spec) { s.EngineVersion = "10.3.39" }), ErrUnsupported,
			"installed: MariaDB " + my.version},
		{"empty password", Config{}, with(base, func(s *Spec) { s.MasterPassword = "" }), ErrInvalid, "password must not be empty"},
		{"control character in password", Config{}, with(base, func(s *Spec) { s.MasterPassword = "a\nb" }), ErrInvalid, "control characters"},
		{"reserved user", Config{}, with(base, func(s *Spec) { s.MasterUsername = "rdsadmin" }), ErrInvalid, "reserved"},
		{"pg_ user", Config{}, with(base, func(s *Spec) { s.MasterUsername = "pg_monitor" }), ErrInvalid, "reserved"},
		{"path in id", Config{}, with(base, func(s *Spec) { s.ID = "../x" }), ErrInvalid, "identifier"},
		{"replica of nothing", Config{}, Spec{ID: id("r"), Engine: "postgres", ReplicaOf: "nope"}, ErrNotFound, "primary instance nope"},
		{"bad external address", Config{}, with(base, func(s *Spec) { s.External = "localhost" }), ErrInvalid, "host:port"},
		{"no free port in range", Config{PortMin: busy, PortMax: busy + 1}, base, ErrNoFreePort, "every port in " + strconv.Itoa(busy)},
		{"explicit port in use", Config{}, with(base, func(s *Spec) { s.Port = busy }), ErrNoFreePort, "in use"},
		{"no binaries", Config{BinPath: t.TempDir()}, spec("mariadb", "bad"), ErrUnsupported,
			"engine mariadb needs mariadbd or mysqld (MariaDB) and mariadb-install-db on PATH"},
		{"no postgres binaries", Config{BinPath: t.TempDir()}, base, ErrUnsupported, "engine postgres needs PostgreSQL's postgres and initdb"},
		// These fail after the server started: the cleanup must stop it.
		{"postgres database exists", Config{}, with(base, func(s *Spec) { s.DBName = "template1" }), nil, "already exists"},
		{"mariadb database name refused", Config{}, with(spec("mariadb", "bad"), func(s *Spec) { s.DBName = "trailing " }), nil, "Incorrect database name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newManager(t, c.cfg)
			_, err := m.Create(ctx, c.spec)
			wantErr(t, err, c.target, c.msg)
			t.Logf("error: %v", firstLine(err))
			if got := m.List(); len(got) != 0 {
				t.Fatalf("instances left: %+v", got)
			}
			if ents, _ := os.ReadDir(filepath.Join(m.Dir(), instancesName)); len(ents) != 0 {
				t.Fatalf("directories left in %s: %v", m.Dir(), ents)
			}
			for _, p := range leftovers() {
				if strings.Contains(p, c.spec.ID) {
					t.Fatalf("process left: %s", p)
				}
			}
			// The port is free again: a good instance gets the first one.
			if c.cfg.PortMin == 0 && c.spec.Port == 0 && c.target == nil {
				good := spec(c.spec.Engine, "good")
				inst, err := m.Create(ctx, good)
				if err != nil {
					t.Fatal(err)
				}
				if inst.Port != DefaultPortMin && !portOpen(DefaultPortMin) {
					t.Fatalf("port %d not reused after the failed create", DefaultPortMin)
				}
			}
		})
	}
}

func TestDuplicateAndBackend(t *testing.T) {
	requireEngine(t, "mariadb")
	ctx := ctxT(t)
	m := newManager(t, Config{})
	s := spec("mariadb", "dup")
	if _, err := m.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	_, err := m.Create(ctx, s)
	wantErr(t, err, ErrExists, s.ID)
	if got, _ := m.Get(s.ID); got.Status != StatusAvailable {
		t.Fatalf("the first instance suffered: %+v", got)
	}
	_, err = NewManager(ctx, Config{Backend: "podman"})
	wantErr(t, err, ErrInvalid, `backend "podman" is not one of auto, process, docker`)
	_, err = NewManager(ctx, Config{PortMin: 10, PortMax: 5})
	wantErr(t, err, ErrInvalid, "port range")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = m.Create(ctx, spec("mariadb", "late"))
	wantErr(t, err, ErrClosed, "")
	if _, err := os.Stat(m.Dir()); !os.IsNotExist(err) {
		t.Fatalf("temporary data left after Close: %v", err)
	}
}

// TestExternal registers, as external, a server this test started through
// the same Manager.
func TestExternal(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			in := requireEngine(t, e.engine)
			ctx := ctxT(t)
			m := newManager(t, Config{})
			backing, err := m.Create(ctx, spec(e.engine, "backing"))
			if err != nil {
				t.Fatal(err)
			}
			s := spec(e.engine, "ext")
			s.External = net.JoinHostPort(backing.Host, strconv.Itoa(backing.Port))
			ext, err := m.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			if !ext.External || ext.Port != backing.Port || ext.EngineVersion != in.version || ext.PID != 0 ||
				ext.MaxConnections != backing.MaxConnections || ext.Status != StatusAvailable {
				t.Fatalf("unexpected external instance %+v", ext)
			}
			if err := m.Check(ctx, ext.ID); err != nil {
				t.Fatal(err)
			}
			wantErr(t, m.Reboot(ctx, ext.ID), ErrUnsupported, "external")

			// SetPassword changes the real password, on the real server.
			if err := m.SetPassword(ctx, ext.ID, "Ext3rnal-pw"); err != nil {
				t.Fatal(err)
			}
			if h, err := open(ext, "master", s.MasterPassword, "appdb"); err == nil {
				h.Close()
				t.Fatal("old password still works")
			}
			mustOpen(t, ext, "Ext3rnal-pw").Close()

			// Wrong credentials: refused, nothing registered.
			bad := s
			bad.ID, bad.MasterPassword = id("ext-bad"), "wrong-password"
			_, err = m.Create(ctx, bad)
			wantErr(t, err, nil, "master user master")
			if _, err := m.Get(bad.ID); err == nil {
				t.Fatal("a refused external instance was registered")
			}

			// Deleting the external instance leaves the server alone.
			if err := m.Delete(ctx, ext.ID); err != nil {
				t.Fatal(err)
			}
			if !portOpen(backing.Port) {
				t.Fatal("Delete of an external instance stopped its server")
			}
			ext, err = m.Create(ctx, withPassword(s, "Ext3rnal-pw"))
			if err != nil {
				t.Fatal(err)
			}
			// The server goes away: the health check says so.
			if err := m.Delete(ctx, backing.ID); err != nil {
				t.Fatal(err)
			}
			if err := m.Check(ctx, ext.ID); err == nil {
				t.Fatal("Check passed with the server gone")
			}
			if got, _ := m.Get(ext.ID); got.Status != StatusFailed {
				t.Fatalf("status after a failed check: %s", got.Status)
			}
		})
	}
}

func withPassword(s Spec, password string) Spec {
	s.MasterPassword = password
	return s
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
