package engine

import (
	"context"
	"crypto/rand"
	"os/exec"
	"syscall"
)

// login is what a client needs to open a session on a server.
type login struct {
	host     string
	port     int
	user     string
	password string
	db       string
	// tls asks for TLS when the server offers it (external servers);
	// spawned servers are always reached in clear over loopback.
	tls bool
}

// family is what differs between PostgreSQL and MariaDB. The Manager does
// the orchestration (ports, directories, processes, state); a family
// knows the files, command lines and SQL of its servers.
type family interface {
	name() string        // famPostgres or famMySQL
	serviceUser() string // OS user the server runs as when we are root
	stopSignal() syscall.Signal
	// pidFile is the pid file the server itself keeps in its data
	// directory.
	pidFile(data string) string

	// buildTemplate initialises a data directory in dir/data (dir/data
	// exists, empty, owned by r) that seedPrimary and seedReplica copy.
	buildTemplate(ctx context.Context, m *Manager, in install, r runAs, dir string) error
	// seedPrimary fills dir/data for a new primary described by md and
	// prepares whatever its first start needs; it sets md.AdminPassword.
	seedPrimary(ctx context.Context, in install, r runAs, dir string, md *meta, t tmpl) error
	// seedReplica fills dir/data for a new replica md of primary.
	seedReplica(ctx context.Context, m *Manager, in install, r runAs, dir string, md *meta, primary meta, t tmpl) error
	// command is the server's command line for the instance in dir.
	command(in install, r runAs, dir string, md meta) *exec.Cmd
	// bootstrap runs once after a new primary's first start, before it is
	// checked with the master credentials; it may change md.AdminPassword.
	bootstrap(ctx context.Context, m *Manager, s *server, md *meta) error
	// catchUp waits, after a new replica's first start, until it has
	// what the primary had when it started.
	catchUp(ctx context.Context, m *Manager, md meta, primary meta) error

	// ping opens a session and runs a trivial query.
	ping(ctx context.Context, l login) error
	// exec runs statements in order on one session.
	exec(ctx context.Context, l login, stmts ...string) error
	// refused reports whether err is the server answering with an error
	// (bad credentials, unknown database, …) rather than not being up
	// yet: waiting longer will not help.
	refused(err error) bool

	// serverInfo reads the version (as RDS writes it, e.g. 15.20) and
	// max_connections of a running server.
	serverInfo(ctx context.Context, l login) (version string, maxConn int, err error)
	// setPassword changes user's password, logged in as l; self means
	// l's own account (external servers, where that is the only login).
	setPassword(ctx context.Context, l login, user, password string, self bool) error
	// promoteSQL turns a replica into a writable primary.
	promoteSQL() []string
	// repointSQL makes the replica follow primary.
	repointSQL(replica, primary meta) []string
}

// newPassword returns a random password for internal accounts.
func newPassword() string { return rand.Text() }
