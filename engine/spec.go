package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Backend values for Config.Backend.
const (
	// BackendAuto runs a container when a Docker daemon is healthy, else
	// a local process. It is the default.
	BackendAuto = "auto"
	// BackendProcess always runs a local process.
	BackendProcess = "process"
	// BackendDocker always runs a container (testcontainers-go); NewManager
	// fails without a healthy Docker daemon.
	BackendDocker = "docker"
)

// Default port range for spawned servers: 4510 up to, not including, 4560.
const (
	DefaultPortMin = 4510
	DefaultPortMax = 4560
)

// Roles reported in Instance.Role.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// Status values reported in Instance.Status. They are the RDS
// DBInstanceStatus words for the same states.
const (
	StatusCreating  = "creating"
	StatusAvailable = "available"
	StatusRebooting = "rebooting"
	StatusDeleting  = "deleting"
	StatusStopped   = "stopped"
	StatusFailed    = "failed"
)

// Errors callers can test for with errors.Is. Every error returned by the
// Manager wraps at most one of these and says in its message what happened.
var (
	// ErrNotFound: no instance with that identifier.
	ErrNotFound = errors.New("engine: instance not found")
	// ErrExists: an instance with that identifier already exists (running,
	// or with data on disk waiting for Restore).
	ErrExists = errors.New("engine: instance already exists")
	// ErrInvalid: the Spec or an argument is malformed.
	ErrInvalid = errors.New("engine: invalid input")
	// ErrUnsupported: nothing installed can serve the engine or version, or
	// the operation does not apply to this instance (e.g. Reboot of an
	// external server).
	ErrUnsupported = errors.New("engine: unsupported")
	// ErrNoFreePort: every port of the configured range is taken.
	ErrNoFreePort = errors.New("engine: no free port")
	// ErrInUse: another Manager holds the data directory.
	ErrInUse = errors.New("engine: data directory in use")
	// ErrClosed: the Manager has been closed.
	ErrClosed = errors.New("engine: manager closed")
	// ErrReplication: a replica did not start replicating from its new
	// primary (Repoint), or a switchover found the new primary without
	// the old one's last writes.
	ErrReplication = errors.New("engine: replication failed")
)

// Config configures a Manager. The zero value is usable: temporary data,
// ports 4510–4559, backend auto, no logging.
type Config struct {
	// DataDir holds every instance's data, the template cache and the lock
	// that keeps two Managers out of the same directory. Empty means a
	// fresh temporary directory that Close removes.
	DataDir string
	// PortMin and PortMax bound the ports given to spawned servers:
	// PortMin <= port < PortMax. Zero means DefaultPortMin/DefaultPortMax.
	PortMin, PortMax int
	// Backend is BackendAuto (""), BackendProcess or BackendDocker.
	Backend string
	// TemplateDir caches one initialised data directory per engine and
	// version. Empty means DataDir/templates, or without a DataDir a
	// per-user directory under os.TempDir() shared by every Manager.
	TemplateDir string
	// BinPath, when set, is the only list of directories (joined by
	// os.PathListSeparator) searched for server binaries; otherwise PATH
	// and the usual install locations are searched.
	BinPath string
	// ReadyTimeout bounds how long a server may take to accept its
	// credentials after a start. Zero means 60s (2 min for a container,
	// whose first start initialises its data).
	ReadyTimeout time.Duration
	// Logger receives one line per instance state change. Nil discards.
	Logger *slog.Logger
	// HealthInterval is how often every running spawned server is checked
	// (a query as rdsadmin; replicas report their replication state).
	// Zero means 1 s. Two failed checks in a row, or the server process
	// ending, make the instance down (see Watch).
	HealthInterval time.Duration
	// MaxReplicaLag is how far behind its primary a replica may apply
	// before it counts as not replicating. Zero means 30 s.
	MaxReplicaLag time.Duration
}

// Spec describes the instance Create makes. Field names follow the RDS
// CreateDBInstance parameters.
type Spec struct {
	// ID names the instance (and its directory): 1–200 letters, digits,
	// '-', '_' or '.', not starting with '.'. Callers may prefix the RDS
	// identifier (at most 63 characters) with an account and region.
	ID string
	// Engine is one of postgres, aurora-postgresql, mysql, mariadb,
	// aurora-mysql (aurora is accepted as aurora-mysql).
	Engine string
	// EngineVersion selects the installed major version ("15", "15.4",
	// "10.11"); empty picks the newest installed. For mysql and
	// aurora-mysql served by MariaDB it is ignored. On the docker backend
	// it picks the image tag: its series (postgres:15, mariadb:10.11,
	// mysql:8.0); empty means postgres:17, mariadb:11.4, mysql:8.0.
	EngineVersion string
	// InstanceClass (db.t3.micro …) sets max_connections; see the package
	// documentation for the table.
	InstanceClass string
	// MasterUsername, MasterPassword and DBName create the master user and
	// its database. Replicas inherit them from their primary and ignore
	// these fields.
	MasterUsername, MasterPassword, DBName string
	// Port is the port to listen on; 0 allocates one from the range.
	Port int
	// ReplicaOf names an existing primary instance of the same engine
	// family; the new instance is a streaming replica of it.
	ReplicaOf string
	// External, "host:port", registers an existing server reached with
	// the master credentials instead of spawning one.
	External string
	// Synchronous makes the replica a synchronous one: while it is
	// healthy, its primary acknowledges a commit only once it (or another
	// synchronous replica of the same primary) has received it
	// (PostgreSQL synchronous_standby_names; MariaDB semi-synchronous
	// replication), so a failover to the replica that received most
	// loses no acknowledged write. RDS uses it for a Multi-AZ standby and
	// for Aurora readers. The flag stays with the instance through role
	// changes; on a primary it has no effect.
	Synchronous bool
}

// Instance is a snapshot of one instance's state.
type Instance struct {
	ID            string
	Engine        string
	EngineVersion string // read from the server (SHOW server_version / VERSION())
	InstanceClass string
	Host          string // 127.0.0.1 for spawned servers (docker: unless the daemon is remote)
	Port          int
	// MaxConnections is the server's max_connections.
	MaxConnections int
	Role           string // RolePrimary or RoleReplica
	ReplicaOf      string // the primary's ID for a replica
	Status         string // Status* constant
	// External is true when the server is not spawned by the Manager.
	External       bool
	MasterUsername string
	DBName         string
	// Dir is the instance directory: its saved state and, for a spawned
	// server, its log, pid file and data.
	Dir string
	// PID is the server's process id while it runs, else 0 (always 0 on
	// the docker backend).
	PID int
	// Backend is BackendProcess or BackendDocker; empty for an external
	// server.
	Backend string
	// Container is the name of the instance's container (docker backend).
	Container string
	// Replication is a replica's replication state as last checked.
	Replication Replication
	// Synchronous is Spec.Synchronous (Demote sets it like the new
	// primary's, so a former primary takes its place in the group).
	Synchronous bool
	// SyncReplicas, on a primary, are the replicas its commits wait for
	// (any one of them acknowledges a commit); empty when commits do not
	// wait for any replica. When the server dies it keeps what it was at
	// the death: non-empty means the replica that received most of the
	// primary's history has every commit the primary acknowledged.
	SyncReplicas []string
}

// Replication is the state of a replica's replication from its primary.
type Replication struct {
	// Running: the replica receives from its primary (ReplicaOf) and
	// applies what it receives, no more than Config.MaxReplicaLag behind.
	Running bool
	// Lag is how far behind its primary the replica applies.
	Lag time.Duration
	// Error says why Running is false.
	Error string
	// Checked is when the state was read; zero before the first check.
	Checked time.Time
}

// Event kinds reported to the function given to Watch.
const (
	// EventDown: the server of an available instance exited, or failed
	// two health checks in a row and was killed. Its status is failed;
	// nothing restarts it by itself.
	EventDown = "down"
	// EventReplication: a replica's Replication.Running changed.
	EventReplication = "replication"
)

// Event is something the Manager saw happen to an instance on its own.
type Event struct {
	ID     string
	Kind   string // EventDown, EventReplication
	Detail string // what was seen
	// Running is the new Replication.Running (EventReplication).
	Running bool
	// First marks the first replication check of a server since it
	// started (EventReplication): Running may not be a change then.
	First bool
	Time  time.Time
}

// engineFamily maps an RDS engine name to the family that serves it.
func engineFamily(engine string) (string, bool) {
	switch engine {
	case "postgres", "aurora-postgresql":
		return famPostgres, true
	case "mysql", "mariadb", "aurora-mysql", "aurora":
		return famMySQL, true
	}
	return "", false
}

// maxNameLen bounds user, database (PostgreSQL's NAMEDATALEN-1) and
// maxIDLen instance identifiers.
const (
	maxNameLen = 63
	maxIDLen   = 200
)

// validate checks the parts of a Spec that do not depend on what is
// installed.
func (s Spec) validate() error {
	if err := validID(s.ID); err != nil {
		return err
	}
	fam, ok := engineFamily(s.Engine)
	if !ok {
		return fmt.Errorf("%w: engine %q is not one of postgres, aurora-postgresql, mysql, mariadb, aurora-mysql", ErrInvalid, s.Engine)
	}
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("%w: port %d out of range", ErrInvalid, s.Port)
	}
	if s.External != "" {
		if s.ReplicaOf != "" {
			return fmt.Errorf("%w: an external instance cannot be a replica", ErrInvalid)
		}
		if _, _, err := splitHostPort(s.External); err != nil {
			return err
		}
	}
	if s.ReplicaOf != "" {
		return nil // credentials come from the primary
	}
	if err := validUser(fam, s.MasterUsername); err != nil {
		return err
	}
	if err := validPassword(s.MasterPassword); err != nil {
		return err
	}
	if len(s.DBName) > maxNameLen || strings.ContainsRune(s.DBName, 0) {
		return fmt.Errorf("%w: database name %q must be at most %d bytes without NUL", ErrInvalid, s.DBName, maxNameLen)
	}
	return nil
}

func validID(id string) error {
	if id == "" || len(id) > maxIDLen || id[0] == '.' {
		return fmt.Errorf("%w: instance identifier %q must be 1–%d characters not starting with '.'", ErrInvalid, id, maxIDLen)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("%w: instance identifier %q may hold only letters, digits, '-', '_' and '.'", ErrInvalid, id)
		}
	}
	return nil
}

// adminUser is the internal administrative account on every spawned
// server (RDS has the same reserved name).
const adminUser = "rdsadmin"

func validUser(fam, u string) error {
	if u == "" || len(u) > maxNameLen {
		return fmt.Errorf("%w: master username must be 1–%d bytes", ErrInvalid, maxNameLen)
	}
	if hasControl(u) {
		return fmt.Errorf("%w: master username %q contains control characters", ErrInvalid, u)
	}
	lower := strings.ToLower(u)
	if lower == adminUser || fam == famPostgres && strings.HasPrefix(lower, "pg_") ||
		fam == famMySQL && (lower == "mariadb.sys" || lower == "mysql.sys") {
		return fmt.Errorf("%w: master username %q is reserved", ErrInvalid, u)
	}
	return nil
}

func validPassword(p string) error {
	if p == "" {
		return fmt.Errorf("%w: master password must not be empty (PostgreSQL treats an empty password as none and refuses the login)", ErrInvalid)
	}
	if hasControl(p) {
		return fmt.Errorf("%w: master password contains control characters", ErrInvalid)
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err == nil && h == "" {
		err = errors.New("missing host")
	}
	var port int
	if err == nil {
		port, err = strconv.Atoi(p)
		if err == nil && (port < 1 || port > 65535) {
			err = errors.New("port out of range")
		}
	}
	if err != nil {
		return "", 0, fmt.Errorf("%w: external address %q is not host:port: %v", ErrInvalid, addr, err)
	}
	return h, port, nil
}
