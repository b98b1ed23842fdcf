// Package engine provisions the real database server behind each RDS DB
// instance: a PostgreSQL or MariaDB process it spawns on loopback, or an
// existing server it is told about. The RDS front-end (package api/rds)
// calls it for CreateDBInstance, RebootDBInstance, ModifyDBInstance
// (password), DeleteDBInstance, read replicas and failover; the proxy
// connects to the Host and Port it reports.
//
// # API
//
//	m, err := engine.NewManager(ctx, engine.Config{DataDir: dir, Logger: log})
//	defer m.Close()                                  // stops every server
//	m.Restore(ctx, specsFromState)                   // after a restart, with a DataDir
//	inst, err := m.Create(ctx, engine.Spec{ID: "db1", Engine: "postgres",
//		InstanceClass: "db.t3.micro", MasterUsername: "master",
//		MasterPassword: "secret99", DBName: "app"})  // returns when it takes logins
//	m.Create(ctx, engine.Spec{ID: "db1-r", Engine: "postgres", ReplicaOf: "db1"})
//	m.Reboot(ctx, "db1"); m.SetPassword(ctx, "db1", "new-secret")
//	m.Promote(ctx, "db1-r"); m.Repoint(ctx, "other-replica", "db1-r")
//	m.Check(ctx, "db1"); m.Get("db1"); m.List(); m.Delete(ctx, "db1")
//	m.Prepare(ctx, "mariadb", "")                    // optional: build a template early
//
// A Manager is safe for concurrent use. Operations on one instance run one
// at a time; different instances proceed in parallel. Errors wrap one of
// ErrNotFound, ErrExists, ErrInvalid, ErrUnsupported, ErrNoFreePort,
// ErrInUse, ErrClosed (for mapping to AWS error codes) and say what
// happened; a server that fails carries the tail of its own log.
//
// # Backends
//
//   - process (and auto, the default): the server runs as a child process.
//     Engines postgres and aurora-postgresql use PostgreSQL's initdb and
//     postgres, found on PATH or in /usr/lib/postgresql/*/bin (and a few
//     other usual places); mysql, mariadb, aurora-mysql use MariaDB's
//     mariadb-install-db and mariadbd (or mysqld, if it is MariaDB). When
//     nothing installed serves an engine, Create says exactly what is
//     missing. Config.BinPath replaces the search path.
//   - external: a Spec with External "host:port" registers a server that
//     already runs. Nothing is spawned; the master credentials are checked
//     on it at Create and Restore (and by Check, whose result sets the
//     status). SetPassword changes the password on it; Delete only forgets
//     it; Reboot and Promote are refused.
//   - docker: not built. NewManager rejects Backend "docker". Adding it
//     (testcontainers-go, for engines with no local binaries) is an open
//     decision.
//
// # Versions
//
// An empty EngineVersion picks the newest installation. For PostgreSQL
// the major version must match ("15", "15.4" → any 15.x); for engine
// mariadb the release series ("10.11", "10.11.8" → any 10.11.x). For mysql
// and aurora-mysql, which MariaDB stands in for, the requested version is
// ignored. Instance.EngineVersion is what the running server reports
// (SHOW server_version, SELECT VERSION()): 15.20, 10.11.19.
//
// # Instance classes
//
// max_connections follows InstanceClass by its size word (the part after
// the last '.'):
//
//	micro                   50
//	small                  100
//	medium                 150
//	large, xlarge, Nxlarge 200
//	anything else          100
//
// A PostgreSQL replica gets at least its primary's value (a standby
// refuses to start with fewer). Instance.MaxConnections is read back
// from the server.
//
// # How an instance is made
//
// Creating a data directory from scratch takes 1–2 s, so each engine and
// version is initialised once into a template (Config.TemplateDir;
// default DataDir/templates, or a per-user directory under os.TempDir()
// shared by every Manager without a DataDir). Create takes a copy of the
// template (a Go copy keeping modes and ownership) and sets the instance
// up at its first start. A PostgreSQL template is ~1000 files, which take
// 0.1 s to copy on an idle disk and over 1 s on a busy one, so the Manager
// keeps one spare copy per template, made in the background after each
// use, in <dir>/spares: Create renames it into place.
//
//   - PostgreSQL: the template's superuser is rdsadmin (the name RDS
//     reserves), with a password kept beside the template; pg_hba.conf
//     allows only scram-sha-256: "local all", "host all 127.0.0.1/32" and
//     "host replication 127.0.0.1/32". At first start rdsadmin creates the
//     master role (LOGIN SUPERUSER — more than RDS's rds_superuser, so
//     tests never trip on a missing privilege), the database owned by it,
//     and gives itself a fresh random password. postgres runs directly
//     (no pg_ctl) with listen_addresses=127.0.0.1, no Unix socket,
//     cluster_name=<ID> (visible in ps), shared_buffers=32MB, fsync=off
//     (commits still reach the OS, so data survives the server or rdslocal
//     being killed, not the machine crashing), wal_level=replica and
//     wal_keep_size=64MB (a replica that was down a while can catch up).
//   - MariaDB: the template has no root or anonymous account. The first
//     start runs an --init-file that creates 'rdsadmin'@'127.0.0.1' (random
//     password) and 'master'@'%' with ALL PRIVILEGES minus READ_ONLY ADMIN
//     (so, as on RDS, it cannot write on a read-only replica), and the
//     database. Every server writes a binlog with GTIDs (log_bin,
//     log_slave_updates, server_id derived from the ID), with
//     innodb_buffer_pool_size=32M and small table caches. The binlog is
//     never purged (replicas are seeded from its first event), so it
//     grows with the writes.
//
// The instance is ready when the server accepts the master credentials
// (and for a replica, when it holds what its primary had). rdsadmin is
// the Manager's own login for reboots, password changes, promotion and
// Check, so they work even if the master password was changed behind the
// Manager's back. MasterUsername rdsadmin (and pg_* on PostgreSQL) is
// refused, as RDS does.
//
// # Replicas
//
// Spec.ReplicaOf makes a streaming replica of a running primary of the
// same family; it inherits the primary's master user, password and
// database.
//
//   - PostgreSQL: pg_basebackup -R -X stream -c fast as rdsadmin (a
//     superuser, so it may replicate) writes standby.signal and a
//     primary_conninfo; the standby is a hot standby.
//   - MariaDB: a fresh template copy whose first start runs CHANGE MASTER
//     TO … MASTER_USE_GTID=slave_pos with an empty gtid_slave_pos, so it
//     replays the primary's binlog from its very first event (the primary
//     has never purged it): accounts, database and data. It runs with
//     read_only. Create waits for MASTER_GTID_WAIT on the primary's
//     position. Replay time grows with the primary's history.
//
// Promote turns a replica into a writable primary (pg_promote(); STOP
// SLAVE, RESET SLAVE ALL, read_only off), and Repoint makes a replica
// follow another primary of the same lineage (ALTER SYSTEM SET
// primary_conninfo + reload, following the new timeline; CHANGE MASTER
// with GTID). Together they are a failover. Deleting a primary leaves its
// replicas retrying to connect until they are promoted, repointed or
// deleted.
//
// # Files, restart and cleanup
//
// The Manager's directory (DataDir, or a temporary directory) holds:
//
//	lock                      flock: one Manager per directory (ErrInUse)
//	templates/<product-ver>/  unless Config.TemplateDir is set
//	spares/<template-key>/    a ready copy of a template's data
//	instances/<id>/instance.json  what Restore needs (0600: holds passwords)
//	instances/<id>/server.log     the server's own log (stdout+stderr)
//	instances/<id>/server.pid     the server's pid while it runs
//	instances/<id>/data/          its data directory, owned by the service user
//
// When rdslocal runs as root, servers run as the postgres or mysql OS
// user (both refuse root); every directory above the data must be
// searchable by that user, which Create checks and reports.
//
// Every server runs in its own process group, is started with
// Pdeathsig=SIGKILL, and is stopped by Close, Delete and Reboot with its
// normal shutdown signal (SIGINT for postgres, SIGTERM for mariadbd), then
// SIGKILL to the group after 15 s. Pdeathsig fires when the *thread* that
// forked the child exits, not the process, and Go retires threads; so all
// children are forked from one goroutine locked to its OS thread for the
// Manager's whole life (see spawner). If rdslocal is SIGKILLed, its
// servers die with it. Pid files are the second line: NewManager reads
// every instances/*/server.pid, and a process that is still a
// postgres/mariadbd running on that instance's data directory is stopped.
// A Manager without a DataDir also removes the temporary directories of
// dead Managers (lock not held, older than a minute). The server package
// is to call Close on SIGTERM; after Close no server process remains.
//
// With a DataDir, a new Manager loads every instance it finds as stopped
// (its port reserved) and Restore(specs) starts them with their data,
// port, role and passwords as last saved; a Spec with nothing on disk is
// created. Without a DataDir, Close removes everything.
//
// # Ports
//
// Spawned servers listen on 127.0.0.1 only, on Spec.Port or the first
// port of [PortMin, PortMax) — default 4510 to 4559, LocalStack's external
// port range — that no instance holds and nothing else has bound. A port
// lost between that probe and the server's bind is retried on the next
// one.
//
// # Measured
//
// On a 2-core VM shared with other jobs (PostgreSQL 15.20, MariaDB
// 10.11.19; go test -v ./engine prints these as "figure:" lines):
//
//	Create → ready, template built and spare ready   PostgreSQL 0.24–0.9 s, MariaDB 0.23–0.6 s
//	Create → ready, replica                           PostgreSQL 1.1–1.9 s (pg_basebackup), MariaDB 0.26–1.1 s
//	template build, once per version (Prepare)        PostgreSQL 1.1–2.6 s, MariaDB 0.9–3.1 s
//	memory of an idle instance (server process tree)  PostgreSQL 6 processes, RSS 58–61 MiB summed
//	                                                  (shared memory counted in each), PSS 11–15 MiB;
//	                                                  MariaDB 1 process, RSS 96 MiB, PSS ~80 MiB
//	replication lag on loopback                       0–25 ms
package engine
