package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/rdslocal/rdslocal/proxy/pg"
)

// stmt is a protocol-level prepared statement as the proxy tracks it: the
// query text and parameter types a client parsed, and the global name it has
// on every server connection that prepared it (PgBouncer's
// max_prepared_statements design).
type stmt struct {
	id     uint32
	name   string // rdsproxy_<id>, the name on server connections
	query  []byte
	params []byte // raw parameter-type section of Parse
	class  pg.Class
	big    bool   // query text over the pinning limit
	epoch  uint64 // the registry's schema epoch when it was made

	refs   atomic.Int32 // client names (over all sessions) bound to it
	closed atomic.Bool  // its last name went away by an explicit Close or DEALLOCATE
}

// stmtRegistry interns statements per proxy by (parameter types, query).
//
// Statements are shared by sessions and server connections, so a schema
// change must not leave one session's fresh Parse answered from a server
// connection's copy prepared before the change: the registry has a schema
// epoch, moved on by DDL that runs through the proxy and by the errors a
// stale copy gives ("cached plan must not change result type", "cache
// lookup failed for type"). A statement of an older epoch is retired: a
// Parse of its text makes a new statement (a new server name, prepared
// afresh), while the sessions that prepared the old one keep it and meet
// the server's error as they would directly (drivers then re-prepare).
//
// Server copies nobody needs are closed: when a statement's last client
// name goes away by an explicit Close or DEALLOCATE (as a direct
// connection's Close frees it), or a retired statement's last name goes
// away, the registry's dead generation moves on and each server connection
// closes such statements before the next request it serves. A session that
// merely ends leaves its (current) statements prepared for the next.
type stmtRegistry struct {
	mu   sync.Mutex
	m    map[string]*stmt
	next uint32

	epoch atomic.Uint64 // schema epoch
	dead  atomic.Uint64 // moves on when server copies may have become unneeded
}

// get returns the statement for (query, params) of the current epoch,
// creating it. A registry holding limit statements starts afresh:
// statements in use stay valid (sessions and backends refer to them by
// pointer and id), and a text seen again gets a new id.
func (r *stmtRegistry) get(query, params []byte, limit int) *stmt {
	key := make([]byte, 0, len(params)+len(query))
	key = append(append(key, params...), query...)
	epoch := r.epoch.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.m[string(key)]; s != nil && s.epoch == epoch {
		return s
	}
	if len(r.m) >= limit {
		clear(r.m)
	}
	r.next++
	s := &stmt{id: r.next, name: stmtName(r.next),
		query: append([]byte(nil), query...), params: append([]byte(nil), params...),
		class: pg.Classify(query), big: len(query) > pinTextLimit, epoch: epoch}
	r.m[string(key)] = s
	return s
}

// schemaChanged retires every statement (see stmtRegistry).
func (r *stmtRegistry) schemaChanged() {
	r.epoch.Add(1)
	r.dead.Add(1)
}

// retain binds a client name to st.
func (r *stmtRegistry) retain(st *stmt) {
	st.refs.Add(1)
	st.closed.Store(false)
}

// release unbinds a client name from st; explicit says the client closed
// or deallocated it (rather than its session ending).
func (r *stmtRegistry) release(st *stmt, explicit bool) {
	if st.refs.Add(-1) != 0 {
		return
	}
	if explicit {
		st.closed.Store(true)
	}
	if explicit || st.epoch != r.epoch.Load() {
		r.dead.Add(1)
	}
}

// unneeded reports whether server copies of st can be closed.
func (r *stmtRegistry) unneeded(st *stmt) bool {
	return st.refs.Load() == 0 && (st.closed.Load() || st.epoch != r.epoch.Load())
}

// staleStatementError reports whether an ErrorResponse says a prepared
// statement no longer fits the schema: its result type changed, or a type
// it refers to is gone.
func staleStatementError(e *pg.Error) bool {
	switch e.Code {
	case "0A000":
		return e.Message == "cached plan must not change result type"
	case "XX000":
		return len(e.Message) > 28 && e.Message[:28] == "cache lookup failed for type"
	}
	return false
}

// stmtName is the name statement id has on server connections.
func stmtName(id uint32) string { return "rdsproxy_" + strconv.FormatUint(uint64(id), 10) }
