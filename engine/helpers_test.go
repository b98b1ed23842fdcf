package engine

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Shared by the tests of this package: every process a test starts has
// token in its command line (instance IDs carry it, and so do the data
// directories under base), which is how TestMain finds leftovers.
var (
	token   string
	base    string // parent of every test's data, searchable by the service users
	tmplDir string // template cache shared by the tests

	figuresMu sync.Mutex
	figures   []string
)

func TestMain(m *testing.M) {
	if os.Getenv("ENGINE_TEST_CHILD_DIR") != "" {
		os.Exit(m.Run()) // TestParentKilled's child: the parent cleans up
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	var err error
	base, err = os.MkdirTemp("", "rdslocal-enginetest-"+token+"-")
	if err == nil {
		err = os.Chmod(base, 0o711)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmplDir = filepath.Join(base, "templates")
	code := m.Run()
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: server processes left running after the tests:\n  %s\n", strings.Join(left, "\n  "))
		for _, l := range left {
			pid, _ := strconv.Atoi(strings.Fields(l)[0])
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		code = 1
	}
	figuresMu.Lock()
	sort.Strings(figures)
	for _, f := range figures {
		fmt.Println("figure:", f)
	}
	figuresMu.Unlock()
	_ = os.RemoveAll(base)
	os.Exit(code)
}

// leftovers lists the postgres/mariadbd processes whose command line
// mentions this run's token.
func leftovers() []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, token) && (strings.Contains(cmd, "postgres") || strings.Contains(cmd, "mariadbd") || strings.Contains(cmd, "mysqld")) {
			out = append(out, filepath.Base(filepath.Dir(p))+" "+cmd)
		}
	}
	return out
}

func addFigure(format string, args ...any) {
	figuresMu.Lock()
	defer figuresMu.Unlock()
	figures = append(figures, fmt.Sprintf(format, args...))
}

// id makes an instance ID unique to this run.
func id(name string) string { return name + "-" + token }

// newDir returns an empty directory under base that the service users
// can reach.
func newDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(base, strings.NewReplacer("/", "_").Replace(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// newManager starts a Manager for a test and closes it at the end. An
// empty Backend means process: the tests of the process backend must not
// turn into docker tests where a daemon runs.
func newManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	if cfg.Backend == "" {
		cfg.Backend = BackendProcess
	}
	if cfg.TemplateDir == "" {
		cfg.TemplateDir = tmplDir
	}
	if cfg.BinPath == "" {
		cfg.BinPath = os.Getenv("ENGINE_TEST_BINPATH")
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := NewManager(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// engines is the table every engine test runs over.
var engines = []struct {
	name   string // subtest name
	engine string // Spec.Engine
}{
	{"postgres", "postgres"},
	{"mariadb", "mariadb"},
}

// requireEngine skips the test when nothing installed serves engine.
// ENGINE_TEST_BINPATH, when set, replaces the binary search path (set it
// to an empty directory to see every engine test skip).
func requireEngine(t *testing.T, engine string) install {
	t.Helper()
	var d discovery
	binPath := os.Getenv("ENGINE_TEST_BINPATH")
	if fam, _ := engineFamily(engine); fam == famPostgres {
		d = discoverPostgres(binPath)
	} else {
		d = discoverMySQL(binPath)
	}
	in, err := pickInstall(d, engine, "")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	return in
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// spec is the Spec most tests create: the password has a quote and a
// backslash to exercise the quoting on every path.
func spec(engine, name string) Spec {
	return Spec{ID: id(name), Engine: engine, InstanceClass: "db.t3.micro",
		MasterUsername: "master", MasterPassword: `Secr3t'p\w`, DBName: "appdb"}
}

// client is a session opened with a real driver: pgx for PostgreSQL,
// go-sql-driver/mysql (through database/sql) for MariaDB.
type client interface {
	Exec(stmt string) error
	Value(query string) (string, error)
	Close()
}

type pgClient struct{ c *pgx.Conn }

func (p pgClient) Exec(stmt string) error {
	_, err := p.c.Exec(context.Background(), stmt)
	return err
}

func (p pgClient) Value(q string) (string, error) {
	var v string
	err := p.c.QueryRow(context.Background(), q).Scan(&v)
	return v, err
}

func (p pgClient) Close() { p.c.Close(context.Background()) }

type sqlClient struct{ db *sql.DB }

func (s sqlClient) Exec(stmt string) error {
	_, err := s.db.Exec(stmt)
	return err
}

func (s sqlClient) Value(q string) (string, error) {
	var v string
	err := s.db.QueryRow(q).Scan(&v)
	return v, err
}

func (s sqlClient) Close() { s.db.Close() }

// open logs in to inst.
func open(inst Instance, user, password, db string) (client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if fam, _ := engineFamily(inst.Engine); fam == famPostgres {
		cfg, err := pgx.ParseConfig("sslmode=disable connect_timeout=5")
		if err != nil {
			return nil, err
		}
		cfg.Host, cfg.Port, cfg.User, cfg.Password, cfg.Database = inst.Host, uint16(inst.Port), user, password, db
		cfg.Fallbacks = nil
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return pgClient{c}, nil
	}
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(inst.Host, strconv.Itoa(inst.Port))
	cfg.User, cfg.Passwd, cfg.DBName = user, password, db
	cfg.Timeout = 5 * time.Second
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	h := sql.OpenDB(c)
	h.SetMaxOpenConns(1)
	if err := h.PingContext(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return sqlClient{h}, nil
}

// mustOpen logs in as the master user, which must succeed.
func mustOpen(t *testing.T, inst Instance, password string) client {
	t.Helper()
	h, err := open(inst, "master", password, "appdb")
	if err != nil {
		t.Fatalf("connect to %s as master: %v", inst.ID, err)
	}
	t.Cleanup(h.Close)
	return h
}

func mustExec(t *testing.T, h client, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if err := h.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// readValue returns v of row id from table t, or an error.
func readValue(h client, id int) (string, error) {
	return h.Value("SELECT v FROM t WHERE id = " + strconv.Itoa(id))
}

// eventually polls f until it returns nil or d passes.
func eventually(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(loopback, strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// treeMemory sums, over pid and its descendants, VmRSS and Pss in KiB.
func treeMemory(pid int) (rssKB, pssKB int, n int) {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+2:])
		me, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], me)
	}
	todo := []int{pid}
	for len(todo) > 0 {
		p := todo[0]
		todo = append(todo[1:], children[p]...)
		n++
		rssKB += statusKB("/proc/"+strconv.Itoa(p)+"/status", "VmRSS:")
		pssKB += statusKB("/proc/"+strconv.Itoa(p)+"/smaps_rollup", "Pss:")
	}
	return rssKB, pssKB, n
}

func statusKB(path, key string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func wantErr(t *testing.T, err, target error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error wrapping %v, got nil", target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Fatalf("want an error wrapping %v, got %v", target, err)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Fatalf("want an error containing %q, got %v", contains, err)
	}
}
