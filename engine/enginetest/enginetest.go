package enginetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/engine"
)

// Families, as in Server.Family.
const (
	FamilyMySQL    = "mysql"
	FamilyPostgres = "postgres"
)

// AdminUser is the superuser account of every server.
const AdminUser = "enginetest_admin"

// Env owns the servers of one test binary.
type Env struct {
	root string

	mu      sync.Mutex
	tmpl    map[string]*template
	servers []*Server
	seq     int
	closed  bool
}

// template is one family's initialised data directory.
type template struct {
	once sync.Once
	err  error
	in   engine.Installation
	cred *syscall.Credential
	uid  int
	gid  int
	data string
	pw   string // admin password baked into it
}

// New creates an Env with its own temporary root directory.
func New() (*Env, error) {
	root, err := os.MkdirTemp("", "rdslocal-enginetest-")
	if err != nil {
		return nil, err
	}
	// The service users must reach their data directories.
	if err := os.Chmod(root, 0o755); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	return &Env{root: root, tmpl: map[string]*template{}}, nil
}

// Close stops every server and removes the Env's files.
func (e *Env) Close() {
	e.mu.Lock()
	e.closed = true
	servers := e.servers
	e.servers = nil
	e.mu.Unlock()
	for _, s := range servers {
		s.Stop()
	}
	os.RemoveAll(e.root)
}

// Options configure a server.
type Options struct {
	// MaxConnections is the server's max_connections (default 50).
	MaxConnections int
	// CertPEM and KeyPEM, when set, make the server offer TLS with them.
	CertPEM, KeyPEM []byte
}

// Server is one running (or stopped) database server.
type Server struct {
	Family         string // FamilyMySQL or FamilyPostgres
	Product        string // MariaDB, PostgreSQL
	Version        string
	Host           string
	Port           int
	AdminPassword  string // AdminUser's
	MaxConnections int

	t    *template
	dir  string
	data string
	opts Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// MariaDB starts a MariaDB server.
func (e *Env) MariaDB(o Options) (*Server, error) { return e.start(FamilyMySQL, o) }

// Postgres starts a PostgreSQL server.
func (e *Env) Postgres(o Options) (*Server, error) { return e.start(FamilyPostgres, o) }

func (e *Env) start(fam string, o Options) (*Server, error) {
	if o.MaxConnections <= 0 {
		o.MaxConnections = 50
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errors.New("enginetest: Env closed")
	}
	t := e.tmpl[fam]
	if t == nil {
		t = &template{}
		e.tmpl[fam] = t
	}
	e.seq++
	dir := filepath.Join(e.root, fam+strconv.Itoa(e.seq))
	e.mu.Unlock()
	t.once.Do(func() { t.err = e.buildTemplate(fam, t) })
	if t.err != nil {
		return nil, t.err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	t.chown(dir)
	s := &Server{Family: fam, Product: t.in.Product, Version: t.in.Version, Host: "127.0.0.1", Port: freePort(),
		AdminPassword: t.pw, MaxConnections: o.MaxConnections, t: t, dir: dir, data: filepath.Join(dir, "data"), opts: o}
	if out, err := exec.Command("cp", "-a", t.data, s.data).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("enginetest: copy template: %v: %s", err, out)
	}
	if o.CertPEM != nil {
		for name, b := range map[string][]byte{"server.crt": o.CertPEM, "server.key": o.KeyPEM} {
			p := filepath.Join(s.data, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				return nil, err
			}
			t.chown(p)
		}
	}
	e.mu.Lock()
	e.servers = append(e.servers, s)
	e.mu.Unlock()
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (t *template) chown(p string) {
	if t.cred != nil {
		os.Chown(p, t.uid, t.gid)
	}
}

func (t *template) attr() *syscall.SysProcAttr {
	// Setpgid keeps terminal signals away; Pdeathsig kills the server if
	// the test binary dies without cleaning up.
	return &syscall.SysProcAttr{Credential: t.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// buildTemplate locates the binaries and initialises a data directory.
func (e *Env) buildTemplate(fam string, t *template) error {
	name := "mariadb"
	if fam == FamilyPostgres {
		name = "postgres"
	}
	in, err := engine.Locate(name, "", "")
	if err != nil {
		return err
	}
	t.in = in
	t.uid, t.gid = os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		u, err := user.Lookup(in.ServiceUser)
		if err != nil {
			return fmt.Errorf("enginetest: running as root needs the OS user %q: %v", in.ServiceUser, err)
		}
		t.uid, _ = strconv.Atoi(u.Uid)
		t.gid, _ = strconv.Atoi(u.Gid)
		t.cred = &syscall.Credential{Uid: uint32(t.uid), Gid: uint32(t.gid)}
	}
	dir := filepath.Join(e.root, "template-"+fam)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	t.chown(dir)
	t.data = filepath.Join(dir, "data")
	t.pw = "admin-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	if fam == FamilyPostgres {
		pwfile := filepath.Join(dir, "pw")
		if err := os.WriteFile(pwfile, []byte(t.pw+"\n"), 0o644); err != nil {
			return err
		}
		defer os.Remove(pwfile)
		initdb := in.Tools["initdb"]
		if initdb == "" {
			return errors.New("enginetest: no initdb beside " + in.Server)
		}
		cmd := exec.Command(initdb, "-D", t.data, "-U", AdminUser, "--pwfile="+pwfile, "--auth=scram-sha-256",
			"--encoding=UTF8", "--locale=C", "--no-sync")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: t.cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("enginetest: initdb: %v: %s", err, out)
		}
		hba := "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
		return os.WriteFile(filepath.Join(t.data, "pg_hba.conf"), []byte(hba), 0o600)
	}
	installDB := in.Tools["install_db"]
	if installDB == "" {
		return errors.New("enginetest: no mariadb-install-db for " + in.Server)
	}
	cmd := exec.Command(installDB, append([]string{"--no-defaults", "--datadir=" + t.data,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"}, myCommonArgs...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: t.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("enginetest: mariadb-install-db: %v: %s", err, out)
	}
	return nil
}

// myCommonArgs must match between install_db and every start.
var myCommonArgs = []string{"--innodb-log-file-size=16M", "--innodb-buffer-pool-size=32M"}

// Start starts the server (again) and waits until the admin can log in.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("enginetest: server already running")
	}
	var cmd *exec.Cmd
	if s.Family == FamilyPostgres {
		args := []string{"-D", s.data, "-c", "listen_addresses=" + s.Host, "-c", "port=" + strconv.Itoa(s.Port),
			"-c", "unix_socket_directories=", "-c", "max_connections=" + strconv.Itoa(s.MaxConnections),
			"-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "logging_collector=off", "-c", "log_min_messages=fatal"}
		if s.opts.CertPEM != nil {
			args = append(args, "-c", "ssl=on")
		}
		cmd = exec.Command(s.t.in.Server, args...)
	} else {
		args := append([]string{"--no-defaults", "--datadir=" + s.data, "--bind-address=" + s.Host,
			"--port=" + strconv.Itoa(s.Port), "--socket=" + filepath.Join(s.dir, "my.sock"),
			"--pid-file=" + filepath.Join(s.dir, "mariadbd.pid"), "--max-connections=" + strconv.Itoa(s.MaxConnections),
			"--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
			"--innodb-flush-log-at-trx-commit=2", "--skip-log-bin", "--table-open-cache=200",
			"--log-error=" + filepath.Join(s.dir, "error.log")}, myCommonArgs...)
		// The admin account, made (idempotently) by the server itself at
		// every start: bootstrap SQL cannot create accounts.
		initFile := filepath.Join(s.dir, "admin.sql")
		sqlText := "CREATE USER IF NOT EXISTS '" + AdminUser + "'@'%' IDENTIFIED BY '" + s.AdminPassword + "';\n" +
			"GRANT ALL PRIVILEGES ON *.* TO '" + AdminUser + "'@'%' WITH GRANT OPTION;\n"
		if err := os.WriteFile(initFile, []byte(sqlText), 0o644); err != nil {
			return err
		}
		args = append(args, "--init-file="+initFile)
		if s.opts.CertPEM != nil {
			args = append(args, "--ssl-cert="+filepath.Join(s.data, "server.crt"), "--ssl-key="+filepath.Join(s.data, "server.key"))
		}
		cmd = exec.Command(s.t.in.Server, args...)
	}
	cmd.SysProcAttr = s.t.attr()
	cmd.Dir = "/"
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done, s.log = cmd, done, &logb
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("enginetest: %s exited: %s%s", s.Product, logb.String(), s.errorLog())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.ping(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked(syscall.SIGKILL)
			return fmt.Errorf("enginetest: %s did not accept logins: %v%s", s.Product, err, s.errorLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	if len(b) == 0 {
		return ""
	}
	return "\n" + string(b)
}

// Stop shuts the server down and waits for it (a no-op when stopped).
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig := syscall.SIGTERM
	if s.Family == FamilyPostgres {
		sig = syscall.SIGINT // fast shutdown
	}
	s.stopLocked(sig)
}

// Kill SIGKILLs the server, as a crash would, and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked(syscall.SIGKILL)
}

// Restart stops the server and starts it again on the same port.
func (s *Server) Restart() error {
	s.Stop()
	return s.Start()
}

func (s *Server) stopLocked(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// ping logs in as the admin and runs a trivial query.
func (s *Server) ping(ctx context.Context) error {
	return s.Exec(ctx, "SELECT 1")
}

// Exec runs statements in order on one admin session.
func (s *Server) Exec(ctx context.Context, stmts ...string) error {
	if s.Family == FamilyPostgres {
		c, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=postgres sslmode=disable",
			s.Host, s.Port, AdminUser, s.AdminPassword))
		if err != nil {
			return err
		}
		defer c.Close(context.WithoutCancel(ctx))
		for _, q := range stmts {
			if _, err := c.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	}
	db := s.DB("")
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range stmts {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// DB returns a database/sql handle logged in as the admin to database db
// (MariaDB only; go-sql-driver/mysql). The caller closes it.
func (s *Server) DB(db string) *sql.DB {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.DBName = AdminUser, s.AdminPassword, db
	c.Net, c.Addr = "tcp", s.Addr()
	c.Timeout = 5 * time.Second
	c.MultiStatements = true
	conn, err := mysql.NewConnector(c)
	if err != nil {
		panic(err) // only for a malformed config, which we do not build
	}
	return sql.OpenDB(conn)
}

// CreateUser creates a login user with password. On MariaDB it may log in
// from anywhere, uses mysql_native_password and has every privilege on
// every database (no SUPER-like privileges); on PostgreSQL it is a LOGIN
// role allowed to create in the public schema.
func (s *Server) CreateUser(ctx context.Context, name, password string) error {
	if s.Family == FamilyPostgres {
		return s.Exec(ctx, "CREATE ROLE "+pgx.Identifier{name}.Sanitize()+" LOGIN PASSWORD "+pgLiteral(password),
			"GRANT ALL ON SCHEMA public TO "+pgx.Identifier{name}.Sanitize())
	}
	acct := myLiteral(name) + "@'%'"
	return s.Exec(ctx, "CREATE USER "+acct+" IDENTIFIED BY "+myLiteral(password),
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, "+
			"EXECUTE, CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER, RELOAD, PROCESS, FILE ON *.* TO "+acct)
}

func myLiteral(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func pgLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
