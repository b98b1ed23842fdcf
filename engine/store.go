package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// Layout of the Manager's directory:
//
//	<root>/lock                     flock held while a Manager uses root
//	<root>/templates/<product-ver>/ template data dirs (unless TemplateDir)
//	<root>/instances/<id>/          one per instance:
//	    instance.json               meta, 0600 (holds passwords)
//	    server.log, server.pid      the server's output and pid
//	    data/                       the server's data directory
const (
	lockName      = "lock"
	instancesName = "instances"
	metaName      = "instance.json"
	dataName      = "data"
	bootstrapName = "bootstrap.sql" // MariaDB --init-file for a first start
)

// meta is the persisted description of an instance: enough for a new
// Manager to bring it back.
type meta struct {
	ID             string `json:"id"`
	Engine         string `json:"engine"`
	EngineVersion  string `json:"engineVersion"`
	InstanceClass  string `json:"instanceClass,omitempty"`
	Major          string `json:"major,omitempty"` // installation series the data belongs to
	Host           string `json:"host"`
	Port           int    `json:"port"`
	MaxConnections int    `json:"maxConnections"`
	Role           string `json:"role"`
	ReplicaOf      string `json:"replicaOf,omitempty"`
	External       bool   `json:"external,omitempty"`
	MasterUsername string `json:"masterUsername"`
	MasterPassword string `json:"masterPassword"`
	DBName         string `json:"dbName,omitempty"`
	AdminPassword  string `json:"adminPassword,omitempty"`
	ServerID       uint32 `json:"serverId,omitempty"`
	// Sync: a synchronous replica (Spec.Synchronous).
	Sync bool `json:"sync,omitempty"`
	// Rebuild: the instance must be rebuilt as a replica of ReplicaOf
	// before it runs again (a former primary after a failover; a replica
	// that could not follow a new primary). Set before the work starts,
	// so a restart in the middle finishes it instead of starting a
	// diverged server.
	Rebuild bool `json:"rebuild,omitempty"`
	// Docker backend: Backend is BackendDocker (empty: process), Image the
	// image, Container the container's name and Volume the named volume
	// holding the data (with a DataDir only).
	Backend   string `json:"backend,omitempty"`
	Image     string `json:"image,omitempty"`
	Container string `json:"container,omitempty"`
	Volume    string `json:"volume,omitempty"`
}

// backend is the Instance.Backend of md.
func (md meta) backend() string {
	switch {
	case md.External:
		return ""
	case md.Backend == "":
		return BackendProcess
	}
	return md.Backend
}

// instance is the Manager's record of one instance.
type instance struct {
	// op is held for the whole of a lifecycle operation (create, reboot,
	// delete, …), so operations on one instance run one at a time.
	op  sync.Mutex
	dir string // instance directory; empty for external instances
	fam family

	// Guarded by Manager.mu; written only by the holder of op (and, for
	// status, by the exit monitor).
	meta   meta
	status string
	srv    *server
	ctr    *dockerServer // docker backend: the container, running or stopped
	repl   Replication   // replicas: as last checked
	fails  int           // health checks failed in a row
	// sync: on a primary, the replicas its commits wait for, as last
	// applied to the server (see sync.go); kept when the server dies.
	// syncOff: a synchronous replica on its way out of service (its
	// primary must stop waiting for it first).
	sync    []string
	syncOff bool
	// syncMu serialises the changes of a primary's synchronous set.
	syncMu sync.Mutex
}

func (i *instance) dataDir() string { return filepath.Join(i.dir, dataName) }

// masterLogin is the login of the master user of the instance md.
func masterLogin(fam string, md meta) login {
	db := md.DBName
	if db == "" && fam == famPostgres {
		db = "postgres"
	}
	return login{host: md.Host, port: md.Port, user: md.MasterUsername, password: md.MasterPassword, db: db, tls: md.External}
}

// adminLogin is the login the Manager uses for its own statements:
// rdsadmin on spawned servers, the master user on external ones.
func adminLogin(fam string, md meta) login {
	if md.External {
		return masterLogin(fam, md)
	}
	l := login{host: md.Host, port: md.Port, user: adminUser, password: md.AdminPassword}
	if fam == famPostgres {
		l.db = "postgres"
	}
	return l
}

func saveMeta(dir string, md meta) error {
	b, err := json.MarshalIndent(md, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, metaName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, metaName))
}

func loadMeta(dir string) (meta, error) {
	var md meta
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if err != nil {
		return md, err
	}
	if err := json.Unmarshal(b, &md); err != nil {
		return md, fmt.Errorf("%s: %w", filepath.Join(dir, metaName), err)
	}
	return md, nil
}
