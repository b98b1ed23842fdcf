package engine

import (
	"context"
	"crypto/rand"
	"os/exec"
	"syscall"
	"time"
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
	// promote turns a replica into a writable primary, after applying
	// everything it received.
	promote(ctx context.Context, l login) error
	// repointSQL makes the replica follow primary.
	repointSQL(replica, primary meta) []string
	// resumeSQL puts back in service a primary that handOver left
	// running without taking writes.
	resumeSQL() []string

	// replicaStatus reads a server's replication state.
	replicaStatus(ctx context.Context, l login) (replState, error)
	// replicaLags reads, on a primary, how far behind each replica it
	// streams to applies, by instance ID; nil when replicas say it
	// themselves (MariaDB).
	replicaLags(ctx context.Context, l login) (map[string]time.Duration, error)
	// waitReplicating waits up to timeout until the running replica md
	// receives from primary and has applied what primary had when the
	// wait began. An error wraps ErrReplication.
	waitReplicating(ctx context.Context, m *Manager, md, primary meta, timeout time.Duration) error
	// handOver makes the running primary old (inst) take no more writes,
	// waits until the replica next has everything old had, and stops
	// old (the caller holds inst.op and next's op).
	handOver(ctx context.Context, m *Manager, inst *instance, old, next meta) error
	// takeFrom makes the replica md, whose primary is gone, receive
	// what its sibling from (a replica of the same primary) received
	// beyond it, and returns once md has it.
	takeFrom(ctx context.Context, md, from meta, timeout time.Duration) error
	// beforeStart prepares the data directory for a start of the server.
	beforeStart(data string) error
	// setSync makes the running primary acknowledge commits only once
	// one of replicas (instance IDs) has them, or, with none, without
	// waiting for any replica; it returns once the server does so.
	setSync(ctx context.Context, l login, replicas []string) error
	// syncActive reports whether the primary's commits wait for a
	// replica.
	syncActive(ctx context.Context, l login) (bool, error)
	// rejoin rebuilds the stopped instance inst as a replica of primary
	// (md already says so), starts it and waits until it replicates:
	// from its own data where it can, else from a fresh copy of
	// primary's.
	rejoin(ctx context.Context, m *Manager, in install, r runAs, inst *instance, md *meta, primary meta, t tmpl) error
}

// newPassword returns a random password for internal accounts.
func newPassword() string { return rand.Text() }
