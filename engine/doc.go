// Package engine provisions the real database server behind each RDS DB
// instance: a PostgreSQL or MariaDB process it spawns on loopback, a
// postgres, mariadb or mysql container (docker backend), or an existing
// server it is told about. The RDS front-end (package rds)
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
//	m.Create(ctx, engine.Spec{ID: "db1-s", Engine: "postgres", ReplicaOf: "db1",
//		Synchronous: true})                          // db1's commits wait for it
//	m.Switchover(ctx, "db1", "db1-r")                // planned failover, no write lost
//	m.Promote(ctx, "db1-r"); m.Repoint(ctx, "other-replica", "db1-r")
//	m.Demote(ctx, "db1", "db1-r")                    // former primary rebuilt as a replica
//	m.Position(ctx, "db1-r")                         // how much of its primary it received
//	m.Watch(func(ev engine.Event) { … })             // a server died; replication stopped/resumed
//	m.Check(ctx, "db1"); m.Get("db1"); m.List(); m.Delete(ctx, "db1")
//	m.Prepare(ctx, "mariadb", "")                    // optional: build a template early
//
// A Manager is safe for concurrent use. Operations on one instance run one
// at a time; different instances proceed in parallel. Errors wrap one of
// ErrNotFound, ErrExists, ErrInvalid, ErrUnsupported, ErrNoFreePort,
// ErrInUse, ErrClosed, ErrReplication (for mapping to AWS error codes) and
// say what happened; a server that fails carries the tail of its own log.
//
// # Backends
//
// Config.Backend picks what runs a new instance:
//
//   - process: the server runs as a child process. Engines postgres and
//     aurora-postgresql use PostgreSQL's initdb and postgres, found on
//     PATH or in /usr/lib/postgresql/*/bin (and a few other usual places);
//     mysql, mariadb, aurora-mysql use MariaDB's mariadb-install-db and
//     mariadbd (or mysqld, if it is MariaDB). When nothing installed
//     serves an engine, Create says exactly what is missing.
//     Config.BinPath replaces the search path.
//   - docker: the server runs in a container made with testcontainers-go
//     (see Containers below). NewManager fails with "docker backend: no
//     healthy Docker daemon (…)" (ErrUnsupported) when none answers.
//   - auto, the default: docker when a Docker daemon is healthy and has
//     the engine's image or can pull it, else process. The choice is made
//     at each Create, so it does not depend on which binaries are
//     installed: where a daemon runs, instances are containers even if
//     PostgreSQL is installed too (choose process to keep them local
//     processes). A daemon that answers but cannot have the image (no
//     registry reachable) makes auto use the process backend and log why;
//     a failed pull is not tried again for 30 s. Without docker, a Create
//     that finds no binaries says what is missing and why docker cannot
//     stand in.
//
// A replica runs on its primary's backend, and an instance found on disk
// (Restore) on the backend that made it, whatever Config.Backend says.
// The other kind of instance:
//
//   - external: a Spec with External "host:port" registers a server that
//     already runs. Nothing is spawned; the master credentials are checked
//     on it at Create and Restore (and by Check, whose result sets the
//     status). SetPassword changes the password on it; Delete only forgets
//     it; Reboot and Promote are refused.
//
// Instance.Backend says which backend runs an instance (empty for an
// external one).
//
// # Docker health
//
// "Healthy" means testcontainers finds a Docker (or Podman) endpoint
// (DOCKER_HOST, ~/.testcontainers.properties, the default or rootless
// socket …) and the daemon answers an Info call. The look never takes
// more than 2 s (a probe that hangs goes on in the background), cannot
// panic (testcontainers panics in some set-ups without a runtime; that is
// recovered into the answer), and its answer is reused for 30 s.
// testcontainers itself settles the daemon's address once per process: a
// daemon started after rdslocal is seen after a restart. Without a daemon
// the answer takes well under a millisecond.
//
// # Containers
//
// Images are the official ones, tagged with the series of EngineVersion
// as the process backend matches installations: postgres:<major>
// (postgres and aurora-postgresql; "15.4" → postgres:15), mariadb:<x.y>
// (mariadb), mysql:<x.y> (mysql, aurora-mysql: real MySQL, where the
// process backend serves MariaDB; "8.0.mysql_aurora.3.04.0" → mysql:8.0).
// An empty EngineVersion means postgres:17, mariadb:11.4, mysql:8.0.
// Missing images are pulled at Create (Prepare pulls ahead);
// testcontainers' TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX points the pulls
// at a mirror.
//
//   - PostgreSQL: the image's entrypoint creates its superuser, rdsadmin
//     (POSTGRES_USER, with the Manager's own password), and the database
//     (POSTGRES_DB) at the first start; an init script adds RDS's roles
//     and the master user as on the process backend (a member of
//     rds_superuser, no superuser), owner of its database and of postgres.
//     The server runs with max_connections from the instance class and
//     fsync=off.
//   - MariaDB / MySQL: a random root password (MYSQL_RANDOM_ROOT_PASSWORD)
//     and an init script that creates rdsadmin, the master user with
//     RDS's grant list on *.* (the images' MYSQL_USER would get one
//     database only, and may not be root) and the database: RDS for
//     MariaDB's list on mariadb images; on mysql images, RDS for MySQL
//     8.0's, less SET_USER_ID (gone in 8.4). The server runs with
//     --max-connections from the instance class and utf8mb4.
//
// Both accounts are '%' / host-wide, since connections come through the
// Docker bridge. Create returns once the master credentials work (up to
// ReadyTimeout, 2 min by default for containers; a stopped container
// ends the wait at once, with the tail of its log in the error).
//
// The server's port is published on 127.0.0.1 at Spec.Port or a port of
// the range, chosen as for processes; a range port taken before Docker
// bound it is replaced by the next free one, then (or when the range is
// full) by one Docker picks, which Instance.Port reports. When the daemon
// is not on this machine (DOCKER_HOST=tcp://…, or rdslocal itself in a
// container), the port is one Docker picks on all interfaces and
// Instance.Host is the daemon's host.
//
// Containers are named and labelled after the instance:
// rdslocal-<ID>-<hash of the Manager's directory>, with labels
// rdslocal.instance, rdslocal.dir and rdslocal.engine.
//
//   - Reboot stops the container (the image's stop signal, SIGKILL after
//     15 s) and starts the same container again: same data, same port.
//   - SetPassword runs ALTER ROLE / ALTER USER as rdsadmin, as on the
//     process backend; Check pings as rdsadmin and, as for external
//     servers, sets the status available or failed from the answer.
//   - Delete removes the container and its volume.
//   - With a DataDir, the data lives in a named volume (same name as the
//     container, labelled likewise, made by the Manager so that it does
//     not carry testcontainers' session label), and Close removes the
//     containers but keeps the volumes: after a restart, Restore makes a
//     new container on each instance's volume, on its old port if it is
//     free. NewManager removes containers of its directory that a
//     previous run left (and volumes of instances that no longer exist).
//   - Without a DataDir, the data lives in the container's own volume and
//     Close removes containers and data.
//   - If rdslocal dies without Close, testcontainers' reaper (Ryuk)
//     removes its containers about 10 s later — not the named volumes.
//     With TESTCONTAINERS_RYUK_DISABLED=true containers outlive rdslocal
//     until the next NewManager on the same DataDir.
//   - Replicas (and so Promote, Repoint, Switchover, Demote) need the
//     process backend: a replica of a container instance is refused with
//     ErrUnsupported. The health monitor does not watch containers.
//
// Instance.PID is 0 for a container; Instance.Container names it.
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
//     "host replication 127.0.0.1/32". The template also holds RDS's roles:
//     rds_superuser (member of pg_monitor, pg_signal_backend and, from 15,
//     pg_checkpoint), rds_replication and rds_password. At first start
//     rdsadmin creates the master role as RDS has it — LOGIN NOSUPERUSER
//     CREATEDB CREATEROLE, member of rds_superuser (WITH ADMIN OPTION) —
//     gives it its database and the postgres database, and gives itself a
//     fresh random password. So the master user can create roles,
//     databases and trusted extensions, see every session and signal
//     those of other non-superusers, and is refused ALTER SYSTEM, COPY …
//     PROGRAM, server file access, untrusted extensions and languages
//     with PostgreSQL's own 42501 errors, as on RDS. postgres runs directly
//     (no pg_ctl) with listen_addresses=127.0.0.1, no Unix socket,
//     cluster_name=<ID> (visible in ps), shared_buffers=32MB, fsync=off
//     (commits still reach the OS, so data survives the server or rdslocal
//     being killed, not the machine crashing), wal_level=replica and
//     wal_keep_size=64MB (a replica that was down a while can catch up).
//   - MariaDB: the template has no root or anonymous account. The first
//     start runs an --init-file that creates 'rdsadmin'@'127.0.0.1' (random
//     password, every privilege) and 'master'@'%' with RDS for MariaDB's
//     grant list WITH GRANT OPTION (SELECT … CREATE USER, EVENT, TRIGGER,
//     REPLICATION SLAVE/CLIENT, RELOAD, PROCESS; SHOW CREATE ROUTINE from
//     11.4) — no SUPER, FILE, SHUTDOWN or READ_ONLY ADMIN, so, as on RDS,
//     it cannot write on a read-only replica or set global variables —
//     and the database. Every server writes a binlog with GTIDs (log_bin,
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
// Replication is asynchronous unless the replica is synchronous (see
// Synchronous replication below).
//
// Promote turns a replica into a writable primary (pg_promote(); MariaDB:
// STOP SLAVE IO_THREAD, the relay log applied, STOP SLAVE, RESET SLAVE ALL,
// read_only off); when its primary is down and another replica of it
// received more, the replica first takes the rest from that one
// (PostgreSQL: its WAL receiver streams from the sibling, cascading;
// MariaDB: GTID replication from the sibling, once the sibling has applied
// its relay log into its own binlog), so a promotion loses nothing any
// running replica has. Repoint makes a replica follow another primary of
// the same lineage (ALTER SYSTEM SET primary_conninfo + reload, following
// the new timeline; CHANGE MASTER with GTID) and waits until it streams
// from it: a replica that received more of the old primary than the new
// one has cannot, and Repoint says so (ErrReplication). Deleting a primary
// leaves its replicas retrying to connect until they are promoted,
// repointed or deleted.
//
// # Synchronous replication
//
// A replica made with Spec.Synchronous (RDS: a Multi-AZ standby, an Aurora
// reader) is synchronous: while one is healthy, its primary acknowledges
// a commit only once a synchronous replica has it.
//
//   - PostgreSQL: synchronous_standby_names = 'ANY 1 ("id", …)' (ALTER
//     SYSTEM, reload; standbys are named by application_name, their
//     instance ID), synchronous_commit on: a commit waits for a standby's
//     flush. A server starts without it (it is removed from
//     postgresql.auto.conf, which pg_basebackup and pg_rewind copy).
//   - MariaDB: a synchronous replica runs with rpl_semi_sync_slave_enabled
//     and acknowledges what it receives; the primary gets
//     rpl_semi_sync_master_enabled with wait_point AFTER_SYNC (a commit is
//     visible to others only once acknowledged) and wait_no_slave, with a
//     30 s timeout as a backstop only.
//
// The set is the synchronous replicas that are available, running and
// replicating (Replication.Running). It is applied when a replica is
// created, re-pointed or rebuilt, after each round of health checks, and
// before a synchronous replica's server is stopped (Reboot, Demote,
// Delete) or as soon as it dies: a commit never waits for a dead replica
// longer than the monitor takes to see it (at once when the process
// exits; two checks when it stops answering). With none healthy the
// primary goes on alone. Instance.SyncReplicas reports the set as applied,
// erring towards empty (an empty set is recorded before the server is
// told, a non-empty one once the server has it; MariaDB's own switch to
// asynchronous is noticed at the next check), and keeps it when the
// primary dies: non-empty then means the replica that received most has
// every commit the primary acknowledged, and Promote (above) takes it from
// there. Demote gives the rebuilt instance the new primary's flag, so a
// former primary takes its place in the group. Replicas made without the
// flag, and primaries without synchronous replicas, are asynchronous.
//
// # Failover
//
// Switchover(old, new) is a planned failover that loses no write: the
// primary stops taking writes — PostgreSQL: a fast shutdown, in which the
// walsenders send every WAL record to the standbys first, then a check
// that new received it all; MariaDB: the user sessions are killed (a
// running statement rolls back, as Aurora's restart of the former writer
// ends it), then read_only (the master user has no READ_ONLY ADMIN),
// MASTER_GTID_WAIT on new for the old binlog position,
// then a stop — and new is promoted. If that fails before the promotion,
// old is put back in service; if rdslocal stops in between, Restore
// finishes the switchover (new is promoted, old rebuilt under it).
//
// Demote(id, primary) rebuilds id — a former primary, dead or alive, or
// a replica that cannot follow — as a replica of primary, and returns once
// it streams and has what primary had:
//
//   - PostgreSQL: pg_rewind -R against the primary (after a CHECKPOINT
//     there, so its control file shows the new timeline). A killed server
//     is taken through crash recovery by pg_rewind itself in single-user
//     mode, which reads postgresql.conf: the template's file therefore
//     says wal_log_hints = on and wal_keep_size = 64MB, as the command
//     line does. Where rewinding fails (the WAL it needs is gone, or the
//     server ran without wal_log_hints), a fresh pg_basebackup replaces
//     the data. The standby must receive the primary's current timeline
//     (pg_stat_wal_receiver.received_tli) before it counts as caught up.
//   - MariaDB: started read-only, gtid_slave_pos set to its
//     gtid_current_pos (its own writes as a former primary included), then
//     CHANGE MASTER … slave_pos. If the primary lacks that position (error
//     1236: the instance has writes the primary never got), a fresh
//     template copy with a new server_id replays the primary's binlog from
//     its first event (a replica skips events with its own server_id, and
//     the binlog holds this instance's former writes).
//
// Writes the new primary never had are gone either way. The instance's
// meta says Rebuild (with ReplicaOf the new primary) from the moment its
// old role ends — Switchover stopping it, or Promote of its replica while
// its server is down — so a restart of rdslocal before or during Demote
// finishes the rebuild instead of starting a diverged primary.
//
// # Watching the servers
//
// Every HealthInterval (1 s) each running spawned server is checked with a
// query as rdsadmin, each check with 2 s of its own (a stalled primary
// does not eat into its replicas' checks): a primary reports its
// standbys' replay lag (PostgreSQL, pg_stat_replication), a replica its
// replication state (pg_stat_wal_receiver; SHOW SLAVE STATUS). A replica
// is Running when it
// receives from its primary (the right port, both MariaDB threads) and is
// at most MaxReplicaLag (30 s) behind; Instance.Replication has the state
// and, when not Running, the database's own reason. A server whose process
// ends, or that fails two checks in a row (then killed), becomes failed
// and an EventDown is delivered to the Watch function; a change of Running
// delivers an EventReplication. What is left of a dead PostgreSQL server
// — its backends each lead their own session and outlive a killed
// postmaster for a moment, long enough to commit a transaction nobody
// will see again — is killed at once (every process of a server has its
// data directory as working directory). Nothing restarts a dead server by
// itself: the caller decides (package rds fails over or reboots).
//
// # Files, restart and cleanup
//
// The Manager's directory (DataDir, or a temporary directory) holds:
//
//	lock                      flock: one Manager per directory (ErrInUse)
//	templates/<product-ver>/  unless Config.TemplateDir is set
//	spares/<template-key>/    a ready copy of a template's data
//	instances/<id>/instance.json  what Restore needs (0600: holds passwords;
//	                              for a container, also image, name, volume;
//	                              Rebuild when it must rejoin as a replica)
//	instances/<id>/server.log     the server's own log (stdout+stderr)
//	instances/<id>/server.pid     the server's pid while it runs
//	instances/<id>/data/          its data directory, owned by the service user
//
// When rdslocal runs as root, servers run as the postgres or mysql OS
// user (both refuse root); every directory above the data must be
// searchable by that user, which Create checks and reports.
//
// On the process backend, every server runs in its own process group, is
// started with Pdeathsig=SIGKILL, and is stopped by Close, Delete and
// Reboot with its normal shutdown signal (SIGINT for postgres, SIGTERM for
// mariadbd), then SIGKILL to the group after 15 s. Pdeathsig fires when the *thread* that
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
// Spawned servers listen on 127.0.0.1 only (containers publish there; see
// Containers), on Spec.Port or the first port of [PortMin, PortMax) —
// default 4510 to 4559, LocalStack's external port range — that no
// instance holds and nothing else has bound. A port lost between that
// probe and the server's bind is retried on the next one: a server counts
// as started only once its own process listens on its port (Linux: its
// socket in /proc), so another program's server that took the port first
// is never taken for it.
//
// # Measured
//
// Process backend, on a 2-core VM shared with other jobs (PostgreSQL
// 15.20, MariaDB 10.11.19; go test -v ./engine prints these as "figure:"
// lines):
//
//	Create → ready, template built and spare ready   PostgreSQL 0.24–0.9 s, MariaDB 0.23–0.6 s
//	Create → ready, replica                           PostgreSQL 1.1–1.9 s (pg_basebackup), MariaDB 0.26–1.1 s
//	template build, once per version (Prepare)        PostgreSQL 1.1–2.6 s, MariaDB 0.9–3.1 s
//	memory of an idle instance (server process tree)  PostgreSQL 6 processes, RSS 58–61 MiB summed
//	                                                  (shared memory counted in each), PSS 11–15 MiB;
//	                                                  MariaDB 1 process, RSS 96 MiB, PSS ~80 MiB
//	replication lag on loopback                       0–25 ms
//	Switchover (fence, stop, promote)                 PostgreSQL 0.14–0.18 s, MariaDB 0.06 s
//	Demote after a switchover (pg_rewind / GTID)      PostgreSQL 0.05–0.11 s, MariaDB 0.1–0.17 s
//	Demote of a killed primary                        PostgreSQL 0.3–0.5 s, MariaDB 0.1–0.18 s
//	single-row INSERT commit p50 / p99, lone instance PostgreSQL 72 / 165 µs, MariaDB 80 / 163 µs
//	  the same with two synchronous replicas          PostgreSQL 250 µs / 2 ms, MariaDB 269 / 719 µs
//	promotion taking what a sibling received          PostgreSQL 39 ms, MariaDB 23 ms (a few hundred rows)
package engine
