package engine

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// mariadb is the MySQL family, served by MariaDB: mariadb-install-db once
// per version into the template (with no root account left), a copy per
// instance, and a first start with --init-file that creates the accounts
// (primary) or starts replication from the primary's first binlog event
// (replica). Every server writes a binlog with GTIDs, so any of them can
// be replicated from or promoted.
type mariadb struct{}

func (mariadb) name() string               { return famMySQL }
func (mariadb) serviceUser() string        { return "mysql" }
func (mariadb) stopSignal() syscall.Signal { return syscall.SIGTERM }
func (mariadb) pidFile(data string) string { return filepath.Join(data, "mariadbd.pid") }

// myTemplateSQL runs at the end of mariadb-install-db: the template keeps
// no root or anonymous account, so a copy is reachable only through the
// accounts its first start creates.
const myTemplateSQL = `DELETE FROM mysql.global_priv WHERE User IN ('root', '');
DELETE FROM mysql.proxies_priv WHERE User IN ('root', '');
`

// Settings shared by mariadb-install-db and every start: the redo log
// size must match or the server resizes it at each start.
var myCommonArgs = []string{"--innodb-log-file-size=16M", "--innodb-buffer-pool-size=32M"}

func (mariadb) buildTemplate(ctx context.Context, m *Manager, in install, r runAs, dir string) error {
	installDB, err := in.bin("install_db")
	if err != nil {
		return err
	}
	extra := filepath.Join(dir, "template.sql")
	if err := writeOwned(extra, []byte(myTemplateSQL), r); err != nil {
		return err
	}
	defer os.Remove(extra)
	args := append([]string{"--no-defaults", "--datadir=" + filepath.Join(dir, dataName),
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
		"--extra-file=" + extra}, myCommonArgs...)
	cmd := exec.Command(installDB, args...)
	cmd.SysProcAttr = r.attr()
	return m.run(ctx, cmd)
}

func (my mariadb) seedPrimary(_ context.Context, in install, r runAs, dir string, md *meta, t tmpl) error {
	if err := t.copyData(filepath.Join(dir, dataName)); err != nil {
		return err
	}
	md.AdminPassword = newPassword()
	admin := myAccount(adminUser, loopback)
	master := myAccount(md.MasterUsername, "%")
	// One statement per line: --init-file is read line by line. These
	// statements go to the binlog, so a replica replaying it from the
	// start gets the same accounts.
	stmts := []string{
		"CREATE USER " + admin + " IDENTIFIED BY " + myLiteral(md.AdminPassword),
		"GRANT ALL PRIVILEGES ON *.* TO " + admin + " WITH GRANT OPTION",
		"CREATE USER " + master + " IDENTIFIED BY " + myLiteral(md.MasterPassword),
		"GRANT " + myMasterPrivileges(in.version) + " ON *.* TO " + master + " WITH GRANT OPTION",
	}
	if md.DBName != "" {
		stmts = append(stmts, "CREATE DATABASE "+myIdent(md.DBName))
	}
	return writeOwned(filepath.Join(dir, bootstrapName), []byte(strings.Join(stmts, ";\n")+";\n"), r)
}

func (mariadb) seedReplica(_ context.Context, _ *Manager, _ install, r runAs, dir string, md *meta, primary meta, t tmpl) error {
	if err := t.copyData(filepath.Join(dir, dataName)); err != nil {
		return err
	}
	md.AdminPassword = primary.AdminPassword // arrives with the binlog
	stmts := append(myChangeMaster(primary), "SET GLOBAL gtid_slave_pos = ''", "START SLAVE")
	return writeOwned(filepath.Join(dir, bootstrapName), []byte(strings.Join(stmts, ";\n")+";\n"), r)
}

// myMasterPrivileges is the grant list RDS for MariaDB gives its master
// user ("Master user account privileges", RDS User Guide): no SUPER, no
// FILE, no READ_ONLY ADMIN (so it cannot write on a read-only replica), no
// SHUTDOWN. SHOW CREATE ROUTINE comes with 11.4, as on RDS. MySQL and
// Aurora MySQL, served by MariaDB here, get the same list: MariaDB has none
// of MySQL 8's dynamic privileges (ROLE_ADMIN, …) to add.
func myMasterPrivileges(version string) string {
	p := "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, RELOAD, PROCESS, REFERENCES, INDEX, ALTER, " +
		"SHOW DATABASES, CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, REPLICATION CLIENT, CREATE VIEW, " +
		"SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, CREATE USER, EVENT, TRIGGER, REPLICATION SLAVE"
	if !versionLess(version, "11.4") {
		p += ", SHOW CREATE ROUTINE"
	}
	return p
}

// myChangeMaster points a replica at primary, from its GTID position.
func myChangeMaster(primary meta) []string {
	return []string{fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
		myLiteral(primary.Host), primary.Port, myLiteral(adminUser), myLiteral(primary.AdminPassword))}
}

func (mariadb) command(in install, r runAs, dir string, md meta) *exec.Cmd {
	data := filepath.Join(dir, dataName)
	args := append([]string{"--no-defaults",
		"--datadir=" + data,
		"--bind-address=" + md.Host,
		"--port=" + strconv.Itoa(md.Port),
		"--socket=" + mySocket(data),
		"--pid-file=" + mariadb{}.pidFile(data),
		"--max-connections=" + strconv.Itoa(md.MaxConnections),
		"--server-id=" + strconv.FormatUint(uint64(md.ServerID), 10),
		"--log-basename=mysql", "--log-bin", "--log-slave-updates", "--binlog-format=ROW",
		"--skip-name-resolve",
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
		"--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
		"--table-open-cache=200", "--table-definition-cache=400", // -15 MiB RSS
	}, myCommonArgs...)
	if md.Role == RoleReplica {
		args = append(args, "--read-only")
	}
	if md.Sync {
		// It acknowledges what it receives to a primary that waits for
		// it (see setSync); as a primary this changes nothing.
		args = append(args, "--rpl-semi-sync-slave-enabled=ON")
	}
	if _, err := os.Stat(filepath.Join(dir, bootstrapName)); err == nil {
		args = append(args, "--init-file="+filepath.Join(dir, bootstrapName))
	}
	cmd := exec.Command(in.bins["server"], args...)
	cmd.SysProcAttr = r.attr()
	return cmd
}

// mySocket is the server's Unix socket: in the data directory unless that
// path is too long for sun_path, then in the temp directory.
func mySocket(data string) string {
	p := filepath.Join(data, "mysql.sock")
	if len(p) < 100 {
		return p
	}
	h := sha256.Sum256([]byte(data))
	return filepath.Join(os.TempDir(), "rdslocal-"+hex.EncodeToString(h[:6])+".sock")
}

// myServerID derives a replication server_id from the instance ID.
func myServerID(id string) uint32 { return crc32.ChecksumIEEE([]byte(id))%(1<<31-1) + 1 }

func (mariadb) bootstrap(context.Context, *Manager, *server, *meta) error {
	return nil // --init-file did the work
}

func (my mariadb) catchUp(ctx context.Context, _ *Manager, md meta, primary meta) error {
	pos, err := my.queryValue(ctx, adminLogin(famMySQL, primary), "SELECT @@gtid_binlog_pos")
	if err != nil {
		return fmt.Errorf("read the primary's binlog position: %w", err)
	}
	q := "SELECT MASTER_GTID_WAIT(" + myLiteral(pos) + ", 30)"
	res, err := my.queryValue(ctx, adminLogin(famMySQL, md), q)
	if err != nil {
		return err
	}
	if res != "0" {
		return fmt.Errorf("replica did not reach the primary's position %s within 30s", pos)
	}
	return nil
}

func (mariadb) open(l login) *sql.DB {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.DBName = l.user, l.password, l.db
	c.Net, c.Addr = "tcp", net.JoinHostPort(l.host, strconv.Itoa(l.port))
	c.Timeout = 5 * time.Second
	if l.tls {
		c.TLSConfig = "preferred"
	}
	conn, err := mysql.NewConnector(c)
	if err != nil { // only for a malformed config, which we do not build
		panic(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db
}

func (my mariadb) ping(ctx context.Context, l login) error {
	_, err := my.queryValue(ctx, l, "SELECT 1")
	return err
}

func (my mariadb) exec(ctx context.Context, l login, stmts ...string) error {
	db := my.open(l)
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, s := range stmts {
		if _, err := c.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", redact(s), err)
		}
	}
	return nil
}

// queryRow runs a query on a new session and returns its first row as
// text (NULL as "").
func (my mariadb) queryRow(ctx context.Context, l login, q string) ([]string, error) {
	db := my.open(l)
	defer db.Close()
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		return nil, fmt.Errorf("%s: no row", q)
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = v.String
	}
	return out, nil
}

// queryValue is queryRow for a one-column result.
func (my mariadb) queryValue(ctx context.Context, l login, q string) (string, error) {
	row, err := my.queryRow(ctx, l, q)
	if err != nil {
		return "", err
	}
	return row[0], nil
}

func (mariadb) refused(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me)
}

func (my mariadb) serverInfo(ctx context.Context, l login) (string, int, error) {
	row, err := my.queryRow(ctx, l, "SELECT VERSION(), @@max_connections")
	if err != nil {
		return "", 0, err
	}
	n, _ := strconv.Atoi(row[1])
	v, _, _ := strings.Cut(row[0], "-") // "10.11.19-MariaDB-0+deb12u1-log"
	return v, n, nil
}

func (my mariadb) setPassword(ctx context.Context, l login, user, password string, self bool) error {
	account := myAccount(user, "%")
	if self {
		// ALTER USER CURRENT_USER() is silently ignored by MariaDB 10.11,
		// and MySQL has no PASSWORD(): name the account explicitly.
		cu, err := my.queryValue(ctx, l, "SELECT CURRENT_USER()")
		if err != nil {
			return err
		}
		i := strings.LastIndexByte(cu, '@')
		if i < 0 {
			return fmt.Errorf("unexpected CURRENT_USER() %q", cu)
		}
		account = myAccount(cu[:i], cu[i+1:])
	}
	return my.exec(ctx, l, "ALTER USER "+account+" IDENTIFIED BY "+myLiteral(password))
}

// promote stops receiving, lets the SQL thread apply what was received
// (RESET SLAVE ALL would drop the relay log), then makes the server a
// writable primary.
func (my mariadb) promote(ctx context.Context, l login) error {
	if err := my.exec(ctx, l, "STOP SLAVE IO_THREAD"); err != nil {
		return err
	}
	st, ok, err := my.slaveStatus(ctx, l)
	if err != nil {
		return err
	}
	if ok && st["Slave_SQL_Running"] == "Yes" && st["Gtid_IO_Pos"] != "" {
		res, err := my.queryValue(ctx, l, "SELECT MASTER_GTID_WAIT("+myLiteral(st["Gtid_IO_Pos"])+", 30)")
		if err != nil {
			return err
		}
		if res != "0" {
			return fmt.Errorf("the relay log was not applied up to %s within 30s", st["Gtid_IO_Pos"])
		}
	}
	return my.exec(ctx, l, "STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = 0")
}

func (mariadb) resumeSQL() []string { return []string{"SET GLOBAL read_only = 0"} }

// slaveStatus returns SHOW SLAVE STATUS by column name; ok is false when
// the server replicates from nobody.
func (my mariadb) slaveStatus(ctx context.Context, l login) (map[string]string, bool, error) {
	db := my.open(l)
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, false, err
	}
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, false, err
	}
	out := make(map[string]string, len(cols))
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, true, nil
}

// replicaStatus reads read_only, SHOW SLAVE STATUS and gtid_slave_pos.
func (my mariadb) replicaStatus(ctx context.Context, l login) (replState, error) {
	row, err := my.queryRow(ctx, l, "SELECT @@read_only, @@gtid_slave_pos")
	if err != nil {
		return replState{}, err
	}
	st := replState{inRecovery: row[0] == "1", lag: -1, replayed: gtidSeqSum(row[1])}
	ss, ok, err := my.slaveStatus(ctx, l)
	if err != nil {
		return replState{}, err
	}
	if !ok {
		st.err = "replication is not configured"
		return st, nil
	}
	st.streaming = ss["Slave_IO_Running"] == "Yes" && ss["Slave_SQL_Running"] == "Yes"
	st.senderPort, _ = strconv.Atoi(ss["Master_Port"])
	if v, err := strconv.ParseInt(ss["Seconds_Behind_Master"], 10, 64); err == nil {
		st.lag = v
	}
	st.received = gtidSeqSum(ss["Gtid_IO_Pos"])
	var errs []string
	for _, k := range []string{"Last_IO_Error", "Last_SQL_Error"} {
		if ss[k] != "" {
			errs = append(errs, ss[k])
		}
	}
	switch {
	case len(errs) > 0:
		st.err = strings.Join(errs, "; ")
	case !st.streaming:
		st.err = "IO thread " + ss["Slave_IO_Running"] + ", SQL thread " + ss["Slave_SQL_Running"]
	}
	// 1236: the primary does not have the position asked for; an SQL
	// error stops the SQL thread for good.
	st.fatal = ss["Last_IO_Errno"] == "1236" || ss["Last_SQL_Errno"] != "" && ss["Last_SQL_Errno"] != "0"
	return st, nil
}

// gtidSameOrigin reports whether, in every domain of want, the GTID of
// have comes from the same server as want's ("0-7-42" and "0-7-40" do,
// "0-9-42" does not).
func gtidSameOrigin(have, want string) bool {
	origin := func(pos string) map[string]string {
		m := map[string]string{}
		for _, g := range strings.Split(pos, ",") {
			if parts := strings.Split(strings.TrimSpace(g), "-"); len(parts) == 3 {
				m[parts[0]] = parts[1]
			}
		}
		return m
	}
	h := origin(have)
	for domain, server := range origin(want) {
		if h[domain] != server {
			return false
		}
	}
	return true
}

// gtidSeqSum adds up the sequence numbers of a GTID position
// ("0-1-42,1-7-3"): it grows with every transaction replicated.
func gtidSeqSum(pos string) uint64 {
	var n uint64
	for _, g := range strings.Split(pos, ",") {
		parts := strings.Split(strings.TrimSpace(g), "-")
		if len(parts) == 3 {
			v, _ := strconv.ParseUint(parts[2], 10, 64)
			n += v
		}
	}
	return n
}

// replicaLags: MariaDB replicas report their own lag
// (Seconds_Behind_Master); the check of a primary is a ping.
func (my mariadb) replicaLags(ctx context.Context, l login) (map[string]time.Duration, error) {
	return nil, my.ping(ctx, l)
}

// waitReplicating waits until both replication threads of md run against
// primary and it has applied primary's binlog up to where it was when the
// wait began. A replica the primary cannot serve (it asks for a GTID the
// primary never had) fails at once.
func (my mariadb) waitReplicating(ctx context.Context, _ *Manager, md, primary meta, timeout time.Duration) error {
	pos, err := my.queryValue(ctx, adminLogin(famMySQL, primary), "SELECT @@gtid_binlog_pos")
	if err != nil {
		return fmt.Errorf("%w: read the primary's binlog position: %v", ErrReplication, err)
	}
	admin := adminLogin(famMySQL, md)
	deadline := time.Now().Add(timeout)
	var last string
	var okSince time.Time
	for {
		st, err := my.replicaStatus(ctx, admin)
		ok := false
		switch {
		case err != nil:
			last = err.Error()
		case st.fatal:
			return fmt.Errorf("%w: %s cannot replicate from %s: %s", ErrReplication, md.ID, primary.ID, st.err)
		case st.streaming && st.senderPort == primary.Port:
			// MASTER_GTID_WAIT compares sequence numbers only: a replica
			// with writes of its own that the primary never had may be
			// "past" the position. Its last GTID must also come from the
			// same server as the primary's, and the primary must have
			// kept serving it for a moment (it refuses a diverged
			// position with error 1236 right after the connection).
			res, err := my.queryValue(ctx, admin, "SELECT MASTER_GTID_WAIT("+myLiteral(pos)+", 1)")
			var have string
			if err == nil {
				have, err = my.queryValue(ctx, admin, "SELECT @@gtid_slave_pos")
			}
			ok = err == nil && res == "0" && gtidSameOrigin(have, pos)
			last = fmt.Sprintf("applying up to %s, has %s (%v)", pos, have, err)
		default:
			last = st.err
		}
		switch {
		case !ok:
			okSince = time.Time{}
		case okSince.IsZero():
			okSince = time.Now()
		case time.Since(okSince) >= 250*time.Millisecond:
			return nil
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

// handOver ends the user sessions of the primary, makes it read-only (the
// master user has no READ_ONLY ADMIN, so it can write no more; commits in
// progress finish first), waits until the replica next has applied its
// binlog to the end, and stops it.
func (my mariadb) handOver(ctx context.Context, m *Manager, inst *instance, old, next meta) error {
	admin := adminLogin(famMySQL, old)
	if err := my.endSessions(ctx, admin); err != nil {
		return err
	}
	if err := my.exec(ctx, admin, "SET GLOBAL read_only = 1"); err != nil {
		return err
	}
	pos, err := my.queryValue(ctx, admin, "SELECT @@gtid_binlog_pos")
	if err != nil {
		return err
	}
	res, err := my.queryValue(ctx, adminLogin(famMySQL, next), "SELECT MASTER_GTID_WAIT("+myLiteral(pos)+", 30)")
	if err != nil {
		return err
	}
	if res != "0" {
		return fmt.Errorf("%w: %s did not apply %s's binlog up to %s within 30s", ErrReplication, next.ID, old.ID, pos)
	}
	m.stopServer(inst, StatusStopped)
	return nil
}

// endSessions kills the server's user sessions (not replication's nor
// the administrator's). Aurora restarts the former writer at a failover,
// so a statement running there ends without committing, as PostgreSQL's
// fast shutdown ends it here; read_only alone would wait for it to finish
// and commit it on the writer being handed over, after the proxy had
// told its client the session was lost.
func (my mariadb) endSessions(ctx context.Context, admin login) error {
	db := my.open(admin)
	defer db.Close()
	c, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	rows, err := c.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER NOT IN (?, 'system user', 'event_scheduler') "+
		"AND COMMAND NOT LIKE 'Binlog Dump%' AND ID <> CONNECTION_ID()", admin.user)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		// One that ended meanwhile answers 1094 (unknown thread).
		_, _ = c.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10))
	}
	return nil
}

// rejoin makes the stopped instance a replica of primary: started
// read-only, it resumes GTID replication from what it has; if the primary
// cannot serve that position (it never had some of this instance's
// writes), a fresh template copy replays the primary's binlog from its
// first event.
func (my mariadb) rejoin(ctx context.Context, m *Manager, in install, r runAs, inst *instance, md *meta, primary meta, t tmpl) error {
	data := inst.dataDir()
	if _, err := os.Stat(filepath.Join(data, "mysql")); err == nil {
		err := my.resume(ctx, m, in, r, inst, *md, primary)
		if err == nil {
			return nil
		}
		m.stopServer(inst, StatusRebooting)
		m.log.Warn("engine: cannot resume replication from the new primary; replaying its binlog into fresh data", "id", md.ID, "primary", primary.ID, "err", err)
	}
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	// A new server_id: the primary's binlog holds this instance's own
	// former writes, which a replica skips as its own if the id matches.
	md.ServerID = myServerID(fmt.Sprintf("%s#%d", md.ID, time.Now().UnixNano()))
	if err := my.seedReplica(ctx, m, in, r, inst.dir, md, primary, t); err != nil {
		return err
	}
	srv, err := m.startServer(inst, in, r, *md)
	if err != nil {
		return err
	}
	// The accounts arrive with the binlog: wait for them.
	master := masterLogin(famMySQL, *md)
	if err := m.waitReady(ctx, srv, func(ctx context.Context) error { return my.ping(ctx, master) }, nil); err != nil {
		return err
	}
	if err := my.catchUp(ctx, m, *md, primary); err != nil {
		return srv.withLog(err)
	}
	_ = os.Remove(filepath.Join(inst.dir, bootstrapName))
	return nil
}

// resume starts the instance read-only and replicates from primary from
// its current GTID position.
func (my mariadb) resume(ctx context.Context, m *Manager, in install, r runAs, inst *instance, md, primary meta) error {
	srv, err := m.startServer(inst, in, r, md)
	if err != nil {
		return err
	}
	admin := adminLogin(famMySQL, md)
	if err := m.waitReady(ctx, srv, func(ctx context.Context) error { return my.ping(ctx, admin) }, my.refused); err != nil {
		return err
	}
	// Its position is what it has, including its own writes as a former
	// primary (gtid_current_pos); MASTER_GTID_WAIT measures slave_pos.
	stmts := append(append([]string{"STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL gtid_slave_pos = @@gtid_current_pos"},
		myChangeMaster(primary)...), "START SLAVE")
	if err := my.exec(ctx, admin, stmts...); err != nil {
		return srv.withLog(err)
	}
	if err := my.waitReplicating(ctx, m, md, primary, 20*time.Second); err != nil {
		return srv.withLog(err)
	}
	return nil
}

// takeFrom lets from apply what it received (it logs what it applies:
// log_slave_updates), then makes md replicate from it by GTID until md has
// applied as much.
func (my mariadb) takeFrom(ctx context.Context, md, from meta, timeout time.Duration) error {
	fadmin := adminLogin(famMySQL, from)
	ss, ok, err := my.slaveStatus(ctx, fadmin)
	if err != nil {
		return err
	}
	if ok && ss["Gtid_IO_Pos"] != "" {
		res, err := my.queryValue(ctx, fadmin, fmt.Sprintf("SELECT MASTER_GTID_WAIT(%s, %d)", myLiteral(ss["Gtid_IO_Pos"]), int(timeout.Seconds())))
		if err != nil {
			return err
		}
		if res != "0" {
			return fmt.Errorf("%s did not apply what it received (%s) within %s", from.ID, ss["Gtid_IO_Pos"], timeout)
		}
	}
	pos, err := my.queryValue(ctx, fadmin, "SELECT @@gtid_slave_pos")
	if err != nil {
		return err
	}
	admin := adminLogin(famMySQL, md)
	if err := my.exec(ctx, admin, my.repointSQL(md, from)...); err != nil {
		return err
	}
	res, err := my.queryValue(ctx, admin, fmt.Sprintf("SELECT MASTER_GTID_WAIT(%s, %d)", myLiteral(pos), int(timeout.Seconds())))
	if err != nil {
		return err
	}
	if res != "0" {
		st, _ := my.replicaStatus(ctx, admin)
		return fmt.Errorf("did not apply %s's position %s within %s (%s)", from.ID, pos, timeout, st.err)
	}
	return nil
}

func (mariadb) beforeStart(string) error { return nil }

// setSync turns semi-synchronous replication on the primary on or off.
// Which replicas acknowledge is theirs to say: synchronous replicas run
// with rpl_semi_sync_slave_enabled, others without (so any one connected
// synchronous replica acknowledges). AFTER_SYNC: a commit is visible to
// other sessions only once a replica has it; wait_no_slave: the primary
// waits even while no such replica is connected, until the Manager turns
// it off (or semiSyncTimeout passes).
func (my mariadb) setSync(ctx context.Context, l login, replicas []string) error {
	if len(replicas) == 0 {
		return my.exec(ctx, l, "SET GLOBAL rpl_semi_sync_master_enabled = OFF")
	}
	if err := my.exec(ctx, l, "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'",
		"SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON",
		fmt.Sprintf("SET GLOBAL rpl_semi_sync_master_timeout = %d", semiSyncTimeout.Milliseconds()),
		"SET GLOBAL rpl_semi_sync_master_enabled = ON"); err != nil {
		return err
	}
	for {
		on, err := my.syncActive(ctx, l)
		if err == nil && on {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("semi-synchronous replication is not on (%v): %w", err, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// syncActive reads Rpl_semi_sync_master_status: whether the primary's
// commits wait for a replica (it goes OFF by itself after a timeout).
func (my mariadb) syncActive(ctx context.Context, l login) (bool, error) {
	v, err := my.queryValue(ctx, l, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS'")
	if err != nil {
		return false, err
	}
	return v == "ON", nil
}

func (mariadb) repointSQL(_, primary meta) []string {
	return append(append([]string{"STOP SLAVE"}, myChangeMaster(primary)...), "START SLAVE")
}

// myLiteral quotes s as a MySQL string literal (sql_mode without
// NO_BACKSLASH_ESCAPES, the default).
func myLiteral(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func myIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func myAccount(user, host string) string { return myLiteral(user) + "@" + myLiteral(host) }
