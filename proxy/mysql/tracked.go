package mysql

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// The session state RDS Proxy tracks instead of pinning (its list for
// MySQL and MariaDB). Each server connection knows its values; a session
// knows the values it wants (those of a fresh connection of its pool, then
// whatever its statements set). When a session borrows a connection whose
// values differ, the proxy sets them first (one SET SESSION statement), so
// a client always sees its own values and never another's. Values are
// learned by reading them back from the server after a statement that may
// have changed them (SET of a tracked variable, SET NAMES, USE, …), so
// expressions and DEFAULT need no interpretation.

// trackedVar is one tracked variable.
type trackedVar struct {
	name    string // MySQL 8 / MariaDB 11.1+ name
	old     string // name on older servers, if different
	numeric bool   // SET takes the value unquoted
	replay  bool   // set on another connection when it differs
}

// Indexes into trackedVars.
const (
	varAutocommit    = 0
	varCharsetConn   = 4
	varCharsetServer = 6
	varSQLMode       = 14
	varQueryCache    = 19
)

var errShortRow = errors.New("mysql: short read-back row")

// trackedVars in the order they are set: a character set before the
// collation that follows it (setting the one resets the other).
var trackedVars = [...]trackedVar{
	{name: "autocommit", numeric: true, replay: true},
	{name: "auto_increment_increment", numeric: true, replay: true},
	{name: "character_set_client", replay: true},
	{name: "character_set_results", replay: true},
	{name: "character_set_connection", replay: true},
	{name: "collation_connection", replay: true},
	{name: "character_set_server", replay: true},
	{name: "collation_server", replay: true},
	{name: "character_set_filesystem", replay: true},
	// Derived from the default schema, which is the pool's.
	{name: "character_set_database"},
	{name: "collation_database"},
	{name: "interactive_timeout", numeric: true, replay: true},
	{name: "wait_timeout", numeric: true, replay: true},
	{name: "net_write_timeout", numeric: true, replay: true},
	{name: "sql_mode", replay: true},
	{name: "time_zone", replay: true},
	{name: "transaction_isolation", old: "tx_isolation", replay: true},
	{name: "transaction_read_only", old: "tx_read_only", numeric: true, replay: true},
	{name: "session_track_schema", numeric: true, replay: true},
	{name: "query_cache_type", replay: true},
}

// nullValue stands for SQL NULL among tracked values.
const nullValue = "\x00"

// state is a set of tracked values and the default schema ("" none).
type state struct {
	v      [len(trackedVars)]string
	schema string
}

// flavor is what differs between server versions: the variables' names
// (empty where the server has no such variable) and the read-back query.
type flavor struct {
	names    [len(trackedVars)]string
	readBack string
}

var versionRE = regexp.MustCompile(`(\d+)\.(\d+)\.(\d+)`)

// flavorOf returns the flavor of a server by its version string
// ("5.5.5-10.11.19-MariaDB-0+deb12u1", "8.0.36").
func flavorOf(version string) *flavor {
	v := version
	maria := strings.Contains(v, "MariaDB")
	if maria {
		v = strings.TrimPrefix(v, "5.5.5-")
	}
	major, minor := 8, 0
	if m := versionRE.FindStringSubmatch(v); m != nil {
		major, _ = strconv.Atoi(m[1])
		minor, _ = strconv.Atoi(m[2])
	}
	newTx := !maria && major >= 8 || maria && (major > 11 || major == 11 && minor >= 1)
	queryCache := maria || major < 8
	f := &flavor{}
	var b strings.Builder
	b.WriteString("SELECT DATABASE()")
	for i, tv := range trackedVars {
		n := tv.name
		if tv.old != "" && !newTx {
			n = tv.old
		}
		if i == varQueryCache && !queryCache {
			continue
		}
		f.names[i] = n
		b.WriteString(", @@session.")
		b.WriteString(n)
	}
	f.readBack = b.String()
	return f
}

// readBack reads the connection's tracked values and schema.
func (b *Backend) readBack() error {
	row, err := b.queryRow(b.flavor.readBack)
	if err != nil {
		return err
	}
	if len(row) < 1 {
		return errShortRow
	}
	if row[0] == nullValue {
		b.cur.schema = ""
	} else {
		b.cur.schema = row[0]
	}
	row = row[1:]
	for i := range trackedVars {
		if b.flavor.names[i] == "" {
			continue
		}
		if len(row) == 0 {
			return errShortRow
		}
		b.cur.v[i] = row[0]
		row = row[1:]
	}
	return nil
}

// syncSQL returns the SET SESSION statement that gives b the values in
// want, or "" if it has them.
func (b *Backend) syncSQL(want *state) string {
	var q strings.Builder
	var noBackslash bool
	for i, tv := range trackedVars {
		name := b.flavor.names[i]
		if !tv.replay || name == "" || want.v[i] == b.cur.v[i] {
			continue
		}
		if q.Len() == 0 {
			// Only when something differs: this runs at every borrow,
			// and ToUpper allocates.
			noBackslash = strings.Contains(strings.ToUpper(b.cur.v[varSQLMode]), "NO_BACKSLASH_ESCAPES")
			q.WriteString("SET SESSION ")
		} else {
			q.WriteString(", ")
		}
		q.WriteString(name)
		q.WriteString(" = ")
		q.WriteString(literal(want.v[i], tv.numeric, noBackslash))
		// A character set resets the collation that follows it.
		if i == varCharsetConn || i == varCharsetServer {
			q.WriteString(", ")
			q.WriteString(b.flavor.names[i+1])
			q.WriteString(" = ")
			q.WriteString(literal(want.v[i+1], false, noBackslash))
		}
	}
	return q.String()
}

// literal renders a tracked value for SET.
func literal(v string, numeric, noBackslash bool) string {
	if v == nullValue {
		return "NULL"
	}
	if numeric && v != "" && strings.Trim(v, "0123456789-") == "" {
		return v
	}
	v = strings.ReplaceAll(v, "'", "''")
	if !noBackslash {
		v = strings.ReplaceAll(v, `\`, `\\`)
	}
	return "'" + v + "'"
}
