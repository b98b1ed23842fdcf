package postgres

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
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
	class  wire.Class
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
		class: wire.Classify(query), big: len(query) > pinTextLimit, epoch: epoch}
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
func staleStatementError(e *wire.Error) bool {
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

// handleParse tracks a Parse: named statements get their global name and
// are sent only if the backend lacks them.
func (s *session) handleParse(body []byte) error {
	b := s.b
	name, query, params, err := wire.ParseParse(body)
	if err != nil {
		return s.protocolViolation("malformed Parse message")
	}
	s.debugSQL(query)
	if len(name) == 0 {
		// A client that re-parses the same unnamed statement (pgbench -M
		// extended, drivers without a statement cache) keeps its stmt: no
		// copy and no second classification.
		st := s.unnamed
		if st == nil || !bytes.Equal(st.query, query) || !bytes.Equal(st.params, params) {
			st = &stmt{query: append([]byte(nil), query...), params: append([]byte(nil), params...), class: wire.Classify(query)}
		}
		s.classify(st.class, len(query))
		s.unnamed, b.unnamed = st, st
		if st.class&wire.ClassPrepare != 0 {
			if sql, dst, _, _ := s.deallocate(query, true); dst != nil {
				body = wire.AppendParse(s.out[:0], "", []byte(sql), params)[5:]
			}
		}
		s.forward(wire.MsgParse, body)
		s.pending = append(s.pending, pend{kind: pkParse, unnamed: true})
		return nil
	}
	if old, ok := s.stmts[string(name)]; ok {
		// The name is taken. Let the server fail the same way, so that it
		// aborts the transaction and skips to Sync as it would directly:
		// re-parse the statement under its server name (42P05), and tell
		// the client its own name in the error.
		s.ensure(old)
		s.send(wire.AppendParse(s.out[:0], old.name, old.query, old.params))
		s.pending = append(s.pending, pend{kind: pkParseDup, name: string(name)})
		return nil
	}
	if s.pinned {
		return s.parseOwnName(name, query, params, body)
	}
	st := s.regs.get(query, params, s.p.cfg.RegistryStatements)
	if st.big {
		s.pin(reasonTextSize)
	}
	s.classify(st.class, 0)
	if s.pinned {
		return s.parseOwnName(name, query, params, body)
	}
	s.stmts[string(name)] = st
	s.regs.retain(st)
	if _, ok := b.prepared[st.id]; ok {
		b.touch(st)
		s.pending = append(s.pending, pend{kind: pkSynParse, st: st, name: string(name)})
		return nil
	}
	s.send(wire.AppendParse(s.out[:0], st.name, st.query, st.params))
	b.touch(st)
	s.pending = append(s.pending, pend{kind: pkParse, st: st, name: string(name)})
	return nil
}

// parseOwnName forwards a named Parse of a pinned session unchanged: the
// backend is the session's for good, so its statements live under the
// client's own names, as on a direct connection (visible in
// pg_prepared_statements, usable by SQL EXECUTE and DEALLOCATE, failing
// exactly where the server fails them).
func (s *session) parseOwnName(name, query, params, body []byte) error {
	c := wire.Classify(query)
	s.classify(c, len(query))
	if c&wire.ClassPrepare != 0 {
		if sql, st, _, _ := s.deallocate(query, true); st != nil {
			body = wire.AppendParse(s.out[:0], string(name), []byte(sql), params)[5:]
		}
	}
	s.forward(wire.MsgParse, body)
	s.pending = append(s.pending, pend{kind: pkParse})
	return nil
}

// deallocate applies a client's SQL DEALLOCATE of a statement it prepared
// with the protocol (which the backend holds under its global name): the
// SQL to send instead, and the statement and client name it deallocates,
// which the session forgets now (and restores if the server fails the
// statement). st is nil when q is not such a statement.
//
// The backend serving this request may not hold the statement (another one
// prepared it). In a Parse (extended) it is prepared first, as for a Bind;
// held reports whether it was there, so that a simple Query, which cannot
// be preceded by a Parse safely (a failed Parse would make the server skip
// the Query), can be answered here instead.
func (s *session) deallocate(q []byte, extended bool) (sql string, st *stmt, name string, held bool) {
	name, ok := wire.DeallocateName(q)
	if !ok {
		return "", nil, "", false
	}
	st = s.stmts[name]
	if st == nil {
		return "", nil, "", false
	}
	_, held = s.b.prepared[st.id]
	if extended {
		s.ensure(st)
	}
	delete(s.stmts, name)
	delete(s.b.prepared, st.id)
	s.regs.release(st, true)
	return "DEALLOCATE " + st.name, st, name, held
}

// ensure prepares st on the backend if it lacks it (lazy re-prepare).
func (s *session) ensure(st *stmt) {
	b := s.b
	_, ok := b.prepared[st.id]
	b.touch(st)
	if ok {
		return
	}
	s.send(wire.AppendParse(s.out[:0], st.name, st.query, st.params))
	s.pending = append(s.pending, pend{kind: pkParseInj, st: st})
}

// trimPrepared closes the backend's least recently used statements when it
// holds more than the cap (PgBouncer's max_prepared_statements LRU). It runs
// only between transactions, when no portal can depend on them; a session
// that needs one again gets it re-prepared.
func (s *session) trimPrepared() {
	b := s.b
	keep := s.p.cfg.PreparedPerConnection * 3 / 4
	ids := make([]uint32, 0, len(b.prepared))
	for id := range b.prepared {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y uint32) int { return cmp.Compare(b.prepared[x].use, b.prepared[y].use) })
	for _, id := range ids[:len(ids)-keep] {
		delete(b.prepared, id)
		s.send(wire.AppendDescribeClose(s.out[:0], wire.MsgClose, 'S', stmtName(id)))
		s.pending = append(s.pending, pend{kind: pkCloseInj})
	}
}

// closeUnneeded closes the backend's statements that no session needs any
// more (see stmtRegistry) before the request it is about to serve.
func (s *session) closeUnneeded(dead uint64) {
	b := s.b
	b.swept = dead
	for id, h := range b.prepared {
		if s.regs.unneeded(h.st) {
			delete(b.prepared, id)
			s.send(wire.AppendDescribeClose(s.out[:0], wire.MsgClose, 'S', h.st.name))
			s.pending = append(s.pending, pend{kind: pkCloseInj})
		}
	}
}

// ensureUnnamed re-parses the client's unnamed statement on a backend that
// does not hold it.
func (s *session) ensureUnnamed() {
	b := s.b
	if s.unnamed == nil || b.unnamed == s.unnamed {
		return
	}
	s.send(wire.AppendParse(s.out[:0], "", s.unnamed.query, s.unnamed.params))
	b.unnamed = s.unnamed
	s.pending = append(s.pending, pend{kind: pkParseInj, unnamed: true})
}
