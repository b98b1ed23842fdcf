package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// postgres is the PostgreSQL family: initdb once per version into the
// template, a copy per primary, pg_basebackup per replica, postgres run
// directly (no pg_ctl) so it is our child and dies with us.
type postgres struct{}

func (postgres) name() string               { return famPostgres }
func (postgres) serviceUser() string        { return "postgres" }
func (postgres) stopSignal() syscall.Signal { return syscall.SIGINT } // fast shutdown
func (postgres) pidFile(data string) string { return filepath.Join(data, "postmaster.pid") }

// pgHBA allows password logins (SCRAM only) on loopback and the local
// socket, and streaming replication on loopback.
const pgHBA = `# Written by rdslocal.
local   all          all                   scram-sha-256
host    all          all          127.0.0.1/32  scram-sha-256
host    replication  all          127.0.0.1/32  scram-sha-256
`

// Template files next to the template's data directory.
const (
	pgAdminPWName = "admin.pw" // rdsadmin's password in the template
	pgInitPWName  = "init.pw"  // initdb --pwfile, removed after initdb
)

func (postgres) buildTemplate(ctx context.Context, m *Manager, in install, r runAs, dir string) error {
	initdb, err := in.bin("initdb")
	if err != nil {
		return err
	}
	pw := newPassword()
	pwFile := filepath.Join(dir, pgInitPWName)
	if err := writeOwned(pwFile, []byte(pw+"\n"), r); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	data := filepath.Join(dir, dataName)
	cmd := exec.Command(initdb, "-D", data, "-U", adminUser, "--pwfile="+pwFile,
		"--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync", "--wal-segsize=1")
	cmd.SysProcAttr = r.attr()
	if err := m.run(ctx, cmd); err != nil {
		return err
	}
	if err := writeOwned(filepath.Join(data, "pg_hba.conf"), []byte(pgHBA), r); err != nil {
		return err
	}
	// The server runs with wal_log_hints on and keeps WAL (command line);
	// the file says so too for the single-user run in which pg_rewind
	// finishes the crash recovery of a killed server: pg_rewind checks
	// the wal_log_hints that run leaves in pg_control, and needs the WAL
	// back to the last checkpoint before the servers diverged, which
	// that run's checkpoint would otherwise remove.
	conf, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = conf.WriteString("\n# rdslocal: for pg_rewind\nwal_log_hints = on\nwal_keep_size = 64MB\n")
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The master's database, made ahead: renaming it at first start is
	// instant, CREATE DATABASE is not (it copies template1). Then RDS's
	// own roles (one statement per line in single-user mode).
	single := exec.Command(in.bins["server"], "--single", "-D", data, "-c", "fsync=off", "postgres")
	single.SysProcAttr = r.attr()
	single.Stdin = strings.NewReader("CREATE DATABASE " + pgNewDB + "\n" + strings.Join(pgRDSRoles(in.major), "\n") + "\n")
	if err := m.run(ctx, single); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, pgAdminPWName), []byte(pw), 0o600)
}

// pgRDSRoles creates the roles RDS for PostgreSQL has: rds_superuser,
// the master user's group (not a superuser: CREATEROLE and CREATEDB come
// with the master role itself), member of pg_monitor and
// pg_signal_backend (and pg_checkpoint from 15, RDS's CHECKPOINT
// privilege), and rds_replication and rds_password, which it may grant.
// See "Understanding the rds_superuser role" in the RDS User Guide.
func pgRDSRoles(major string) []string {
	builtin := "pg_monitor, pg_signal_backend"
	if n, _ := strconv.Atoi(major); n >= 15 {
		builtin += ", pg_checkpoint"
	}
	return []string{
		"CREATE ROLE " + pgSuperGroup + " NOLOGIN",
		"CREATE ROLE rds_replication NOLOGIN",
		"CREATE ROLE rds_password NOLOGIN",
		"GRANT " + builtin + " TO " + pgSuperGroup + " WITH ADMIN OPTION",
		"GRANT rds_replication, rds_password TO " + pgSuperGroup + " WITH ADMIN OPTION",
	}
}

// pgMasterRole creates the master role as RDS has it: no superuser; it
// may create roles and databases, and belongs to rds_superuser (which it
// may grant).
func pgMasterRole(name, password string) []string {
	user := pgx.Identifier{name}.Sanitize()
	return []string{
		"CREATE ROLE " + user + " WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD " + pgLiteral(password) + " VALID UNTIL 'infinity'",
		"GRANT " + pgSuperGroup + " TO " + user + " WITH ADMIN OPTION",
	}
}

// pgSuperGroup is the role RDS makes the master user a member of.
const pgSuperGroup = "rds_superuser"

// pgNewDB is the database the template holds for the master user: the
// first start renames it to DBName, or drops it.
const pgNewDB = "rdslocal_newdb"

func (postgres) seedPrimary(_ context.Context, _ install, _ runAs, dir string, md *meta, t tmpl) error {
	pw, err := os.ReadFile(filepath.Join(t.dir, pgAdminPWName))
	if err != nil {
		return err
	}
	md.AdminPassword = string(pw)
	return t.copyData(filepath.Join(dir, dataName))
}

func (postgres) seedReplica(ctx context.Context, m *Manager, in install, r runAs, dir string, md *meta, primary meta, _ tmpl) error {
	bb, err := in.bin("pg_basebackup")
	if err != nil {
		return err
	}
	data := filepath.Join(dir, dataName)
	if err := mkdirOwned(data, 0o700, r); err != nil {
		return err
	}
	// -R writes standby.signal and a primary_conninfo that carries these
	// connection settings, password included.
	conn := pgConninfo(map[string]string{"host": primary.Host, "port": strconv.Itoa(primary.Port),
		"user": adminUser, "application_name": md.ID, "sslmode": "disable"})
	cmd := exec.Command(bb, "-d", conn, "-D", data, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	cmd.SysProcAttr = r.attr()
	cmd.Env = append(childEnv(), "PGPASSWORD="+primary.AdminPassword)
	if err := m.run(ctx, cmd); err != nil {
		return err
	}
	md.AdminPassword = primary.AdminPassword
	// A standby refuses to start with fewer connections than its primary.
	md.MaxConnections = max(md.MaxConnections, primary.MaxConnections)
	return nil
}

func (postgres) command(in install, r runAs, dir string, md meta) *exec.Cmd {
	args := []string{"-D", filepath.Join(dir, dataName)}
	for _, kv := range [][2]string{
		{"listen_addresses", md.Host},
		{"port", strconv.Itoa(md.Port)},
		{"unix_socket_directories", ""},
		{"max_connections", strconv.Itoa(md.MaxConnections)},
		{"cluster_name", truncate(md.ID, maxNameLen)}, // shows in the process titles
		{"shared_buffers", "32MB"},
		// Commits reach the OS before they return, so data survives the
		// server being killed; it need not survive the OS crashing.
		{"fsync", "off"},
		{"wal_level", "replica"},
		{"max_wal_senders", "10"},
		{"wal_keep_size", "64MB"}, // a replica that was down a while can catch up
		{"hot_standby", "on"},
		{"wal_log_hints", "on"}, // pg_rewind can take a former primary back
		{"wal_retrieve_retry_interval", "500ms"},
		{"logging_collector", "off"},
	} {
		args = append(args, "-c", kv[0]+"="+kv[1])
	}
	cmd := exec.Command(in.bins["server"], args...)
	cmd.SysProcAttr = r.attr()
	return cmd
}

func (p postgres) bootstrap(ctx context.Context, m *Manager, s *server, md *meta) error {
	admin := adminLogin(famPostgres, *md)
	if err := m.waitReady(ctx, s, func(ctx context.Context) error { return p.ping(ctx, admin) }, p.refused); err != nil {
		return err
	}
	newAdmin := newPassword()
	user := pgx.Identifier{md.MasterUsername}.Sanitize()
	// As on RDS, the master owns its database and the postgres database.
	stmts := append(pgMasterRole(md.MasterUsername, md.MasterPassword),
		"ALTER ROLE "+adminUser+" PASSWORD "+pgLiteral(newAdmin),
		"ALTER DATABASE postgres OWNER TO "+user)
	if md.DBName != "" && md.DBName != "postgres" {
		db := pgx.Identifier{md.DBName}.Sanitize()
		stmts = append(stmts, "ALTER DATABASE "+pgNewDB+" RENAME TO "+db, "ALTER DATABASE "+db+" OWNER TO "+user)
	} else {
		stmts = append(stmts, "DROP DATABASE "+pgNewDB)
	}
	if err := p.exec(ctx, admin, stmts...); err != nil {
		return fmt.Errorf("create master user and database: %w", err)
	}
	md.AdminPassword = newAdmin
	return nil
}

func (postgres) catchUp(context.Context, *Manager, meta, meta) error {
	return nil // pg_basebackup's copy is consistent once the standby accepts logins
}

func (postgres) connect(ctx context.Context, l login) (*pgx.Conn, error) {
	ssl := "disable"
	if l.tls {
		ssl = "prefer"
	}
	cfg, err := pgx.ParseConfig(pgConninfo(map[string]string{
		"host": l.host, "port": strconv.Itoa(l.port), "user": l.user, "password": l.password,
		"dbname": l.db, "sslmode": ssl, "connect_timeout": "5", "application_name": "rdslocal",
	}))
	if err != nil {
		return nil, err
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func (p postgres) ping(ctx context.Context, l login) error {
	_, err := p.queryRow(ctx, l, "SELECT 1")
	return err
}

func (p postgres) exec(ctx context.Context, l login, stmts ...string) error {
	c, err := p.connect(ctx, l)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", redact(s), err)
		}
	}
	return nil
}

// queryRow runs a query on a new session and returns its first row as
// text.
func (p postgres) queryRow(ctx context.Context, l login, q string) ([]string, error) {
	c, err := p.connect(ctx, l)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, q, pgx.QueryExecModeSimpleProtocol) // text results
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		return nil, fmt.Errorf("%s: no row", q)
	}
	var out []string
	for _, v := range rows.RawValues() {
		out = append(out, string(v))
	}
	return out, nil
}

func (postgres) refused(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code != "57P03" // cannot_connect_now: starting up
}

func (p postgres) serverInfo(ctx context.Context, l login) (string, int, error) {
	row, err := p.queryRow(ctx, l, "SELECT current_setting('server_version'), current_setting('max_connections')")
	if err != nil {
		return "", 0, err
	}
	n, _ := strconv.Atoi(row[1])
	return strings.Fields(row[0])[0], n, nil // "15.20 (Debian 15.20-0+deb12u1)"
}

func (p postgres) setPassword(ctx context.Context, l login, user, password string, self bool) error {
	who := pgx.Identifier{user}.Sanitize()
	if self {
		who = "CURRENT_USER"
	}
	return p.exec(ctx, l, "ALTER ROLE "+who+" PASSWORD "+pgLiteral(password))
}

// promote ends recovery (having replayed every WAL record received) and
// waits until the server takes writes.
func (p postgres) promote(ctx context.Context, l login) error {
	return p.exec(ctx, l, `DO $$BEGIN IF NOT pg_promote(true, 60) THEN RAISE EXCEPTION 'promotion did not finish within 60s'; END IF; END$$`)
}

func (postgres) resumeSQL() []string { return nil } // handOver stops the server: it is started again

// replicaStatus reads the WAL receiver: its state and the primary it
// streams from, and how much WAL has been received and replayed.
func (p postgres) replicaStatus(ctx context.Context, l login) (replState, error) {
	row, err := p.queryRow(ctx, l, `SELECT pg_is_in_recovery(),
		coalesce((SELECT status FROM pg_stat_wal_receiver), ''),
		coalesce((SELECT sender_port FROM pg_stat_wal_receiver), 0),
		coalesce(pg_last_wal_receive_lsn() - '0/0', 0),
		coalesce(pg_last_wal_replay_lsn() - '0/0', 0),
		coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0)`)
	if err != nil {
		return replState{}, err
	}
	st := replState{inRecovery: row[0] == "t", streaming: row[1] == "streaming", lag: -1,
		received: pgBytes(row[3]), replayed: pgBytes(row[4])}
	st.senderPort, _ = strconv.Atoi(row[2])
	st.timeline, _ = strconv.Atoi(row[5])
	switch {
	case row[1] == "":
		st.err = "no WAL receiver is running"
	case !st.streaming:
		st.err = "the WAL receiver is " + row[1]
	}
	return st, nil
}

// pgBytes parses an LSN difference (a numeric) as a byte count.
func pgBytes(s string) uint64 {
	n, _ := strconv.ParseUint(strings.SplitN(s, ".", 2)[0], 10, 64)
	return n
}

// replicaLags reads pg_stat_replication: how far behind each streaming
// standby (by application_name, which is its instance ID) replays.
func (p postgres) replicaLags(ctx context.Context, l login) (map[string]time.Duration, error) {
	c, err := p.connect(ctx, l)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, "SELECT application_name, coalesce(extract(epoch FROM replay_lag), 0)::float8 FROM pg_stat_replication WHERE state = 'streaming'")
	if err != nil {
		return nil, err
	}
	out := map[string]time.Duration{}
	for rows.Next() {
		var app string
		var secs float64
		if err := rows.Scan(&app, &secs); err != nil {
			return nil, err
		}
		out[app] = time.Duration(secs * float64(time.Second))
	}
	return out, rows.Err()
}

// waitReplicating waits until the standby md streams from primary and has
// replayed primary's WAL up to where it was when the wait began.
func (p postgres) waitReplicating(ctx context.Context, _ *Manager, md, primary meta, timeout time.Duration) error {
	// The primary's current timeline is in its WAL file name (its
	// control file has it only after a checkpoint).
	row, err := p.queryRow(ctx, adminLogin(famPostgres, primary),
		"SELECT pg_current_wal_lsn() - '0/0', ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
	if err != nil {
		return fmt.Errorf("%w: read the primary's WAL position: %v", ErrReplication, err)
	}
	target := pgBytes(row[0])
	tli, _ := strconv.Atoi(row[1])
	deadline := time.Now().Add(timeout)
	var last string
	for {
		st, err := p.replicaStatus(ctx, adminLogin(famPostgres, md))
		switch {
		case err != nil:
			last = err.Error()
		case !st.inRecovery:
			return fmt.Errorf("%w: %s is not a standby", ErrReplication, md.ID)
		case st.streaming && st.senderPort == primary.Port && st.timeline == tli && st.replayed >= target:
			return nil
		case st.streaming && st.senderPort == primary.Port:
			last = fmt.Sprintf("replayed %d of %d bytes, receiving timeline %d of %d", st.replayed, target, st.timeline, tli)
		case st.err != "":
			last = st.err
		default:
			last = fmt.Sprintf("streaming from port %d", st.senderPort)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s does not replicate from %s within %s (%s)", ErrReplication, md.ID, primary.ID, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// handOver stops the primary with a fast shutdown, which sends every WAL
// record to the connected standbys before it exits, then checks that the
// standby next received all of it.
func (p postgres) handOver(ctx context.Context, m *Manager, inst *instance, old, next meta) error {
	row, err := p.queryRow(ctx, adminLogin(famPostgres, old), "SELECT pg_current_wal_lsn() - '0/0'")
	if err != nil {
		return err
	}
	end := pgBytes(row[0])
	m.stopServer(inst, StatusStopped)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := p.replicaStatus(ctx, adminLogin(famPostgres, next))
		if err == nil && st.received >= end {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s received WAL up to %d, not the %d bytes %s had written (%v)", ErrReplication, next.ID, st.received, end, old.ID, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rejoin makes the stopped instance a standby of primary: pg_rewind takes
// its data directory back to where its history and the primary's part
// (nothing to do after a clean switchover) and -R makes it a standby of
// the primary; when that fails, a fresh pg_basebackup replaces the data.
func (p postgres) rejoin(ctx context.Context, m *Manager, in install, r runAs, inst *instance, md *meta, primary meta, t tmpl) error {
	// A standby refuses to start with fewer connections than its primary.
	md.MaxConnections = max(md.MaxConnections, primary.MaxConnections)
	data := inst.dataDir()
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		err := p.rewind(ctx, m, in, r, data, *md, primary)
		if err == nil {
			err = p.startStandby(ctx, m, in, r, inst, *md, primary)
			if err == nil {
				return nil
			}
			m.stopServer(inst, StatusRebooting)
		}
		m.log.Warn("engine: cannot rewind to the new primary; taking a fresh base backup", "id", md.ID, "primary", primary.ID, "err", err)
	}
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	if err := p.seedReplica(ctx, m, in, r, inst.dir, md, primary, t); err != nil {
		return err
	}
	return p.startStandby(ctx, m, in, r, inst, *md, primary)
}

// rewind runs pg_rewind against primary. A server that was not shut down
// cleanly (killed) is first taken through crash recovery by pg_rewind
// itself, in single-user mode.
func (p postgres) rewind(ctx context.Context, m *Manager, in install, r runAs, data string, md, primary meta) error {
	bin, err := in.bin("pg_rewind")
	if err != nil {
		return err
	}
	// pg_rewind reads the source's timeline from its control file, which
	// a promotion updates only at its next checkpoint.
	if err := p.exec(ctx, adminLogin(famPostgres, primary), "CHECKPOINT"); err != nil {
		return err
	}
	// Single-user mode refuses a standby; -R writes the file again.
	_ = os.Remove(filepath.Join(data, "standby.signal"))
	clearStalePid(p.pidFile(data), data)
	conn := pgConninfo(map[string]string{"host": primary.Host, "port": strconv.Itoa(primary.Port), "user": adminUser,
		"dbname": "postgres", "application_name": md.ID, "sslmode": "disable"})
	cmd := exec.Command(bin, "-D", data, "--source-server="+conn, "-R", "--no-sync")
	cmd.SysProcAttr = r.attr()
	cmd.Env = append(childEnv(), "PGPASSWORD="+primary.AdminPassword)
	start := time.Now()
	if err := m.run(ctx, cmd); err != nil {
		return err
	}

	m.log.Debug("engine: pg_rewind done", "id", md.ID, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// startStandby starts the server of inst as a standby and waits until it
// streams from primary and has caught up.
func (p postgres) startStandby(ctx context.Context, m *Manager, in install, r runAs, inst *instance, md, primary meta) error {
	srv, err := m.startServer(inst, in, r, md)
	if err != nil {
		return err
	}
	admin := adminLogin(famPostgres, md)
	if err := m.waitReady(ctx, srv, func(ctx context.Context) error { return p.ping(ctx, admin) }, p.refused); err != nil {
		return err
	}
	if err := p.waitReplicating(ctx, m, md, primary, 30*time.Second); err != nil {
		return srv.withLog(err)
	}
	return nil
}

// takeFrom points md's WAL receiver at the standby from (a standby
// serves, cascading, the WAL it has received) and waits until md has
// received as much.
func (p postgres) takeFrom(ctx context.Context, md, from meta, timeout time.Duration) error {
	fst, err := p.replicaStatus(ctx, adminLogin(famPostgres, from))
	if err != nil {
		return err
	}
	target := max(fst.received, fst.replayed)
	if err := p.exec(ctx, adminLogin(famPostgres, md), p.repointSQL(md, from)...); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := p.replicaStatus(ctx, adminLogin(famPostgres, md))
		if err == nil && st.received >= target {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("received WAL up to %d of %d bytes within %s (%v, %s)", st.received, target, timeout, err, st.err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// beforeStart removes synchronous_standby_names from
// postgresql.auto.conf: ALTER SYSTEM leaves it there, and pg_basebackup
// and pg_rewind copy the file from the primary. A server starts without
// synchronous standbys; the Manager sets them up (setSync).
func (postgres) beforeStart(data string) error {
	path := filepath.Join(data, "postgresql.auto.conf")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []string
	lines := strings.SplitAfter(string(b), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(strings.TrimSpace(l), "synchronous_standby_names") {
			keep = append(keep, l)
		}
	}
	if len(keep) == len(lines) {
		return nil
	}
	return os.WriteFile(path, []byte(strings.Join(keep, "")), 0) // the file keeps its owner and mode
}

// pgSyncNames is the synchronous_standby_names that makes a commit wait
// for any one of replicas (by application_name, which is the instance ID).
func pgSyncNames(replicas []string) string {
	if len(replicas) == 0 {
		return ""
	}
	names := make([]string, len(replicas))
	for i, r := range replicas {
		names[i] = `"` + strings.ReplaceAll(r, `"`, `""`) + `"`
	}
	return "ANY 1 (" + strings.Join(names, ", ") + ")"
}

// setSync sets synchronous_standby_names (ALTER SYSTEM, reload) and waits
// until new sessions have it. Commits waiting for a standby that is no
// longer listed are released at the reload.
func (p postgres) setSync(ctx context.Context, l login, replicas []string) error {
	want := pgSyncNames(replicas)
	set := "ALTER SYSTEM SET synchronous_standby_names = " + pgLiteral(want)
	if want == "" {
		set = "ALTER SYSTEM RESET synchronous_standby_names"
	}
	if err := p.exec(ctx, l, set, "SELECT pg_reload_conf()"); err != nil {
		return err
	}
	for {
		row, err := p.queryRow(ctx, l, "SELECT current_setting('synchronous_standby_names')")
		if err == nil && row[0] == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("synchronous_standby_names is not %q after a reload (%v): %w", want, err, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p postgres) syncActive(ctx context.Context, l login) (bool, error) {
	row, err := p.queryRow(ctx, l, "SELECT current_setting('synchronous_standby_names') <> ''")
	if err != nil {
		return false, err
	}
	return row[0] == "t", nil
}

func (postgres) repointSQL(replica, primary meta) []string {
	conn := pgConninfo(map[string]string{"host": primary.Host, "port": strconv.Itoa(primary.Port),
		"user": adminUser, "password": primary.AdminPassword, "application_name": replica.ID, "sslmode": "disable"})
	return []string{"ALTER SYSTEM SET primary_conninfo = " + pgLiteral(conn), "SELECT pg_reload_conf()"}
}

// pgLiteral quotes s as an SQL string literal (standard_conforming_strings
// is on in every supported version).
func pgLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pgConninfo renders a libpq keyword/value connection string, quoting
// every value, in a stable order.
func pgConninfo(kv map[string]string) string {
	var b strings.Builder
	for _, k := range []string{"host", "port", "user", "password", "dbname", "sslmode", "connect_timeout", "application_name"} {
		v, ok := kv[k]
		if !ok || v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'")
	}
	return b.String()
}

// redact hides the password literal of a statement shown in an error.
func redact(stmt string) string {
	for _, kw := range []string{" PASSWORD ", " IDENTIFIED BY ", "MASTER_PASSWORD=", "primary_conninfo = "} {
		if i := strings.Index(stmt, kw); i >= 0 {
			return stmt[:i+len(kw)] + "…"
		}
	}
	return stmt
}

// truncate cuts s to at most n bytes (IDs are ASCII).
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// pgIdent quotes s as an SQL identifier.
func pgIdent(s string) string { return pgx.Identifier{s}.Sanitize() }
