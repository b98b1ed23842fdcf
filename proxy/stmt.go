package proxy

import (
	"strconv"
	"sync"

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
	big    bool // query text over the pinning limit
}

// stmtRegistry interns statements per proxy by (parameter types, query).
type stmtRegistry struct {
	mu   sync.Mutex
	m    map[string]*stmt
	next uint32
}

// get returns the statement for (query, params), creating it. A registry
// holding limit statements starts afresh: statements in use stay valid
// (sessions and backends refer to them by pointer and id), and a text seen
// again gets a new id.
func (r *stmtRegistry) get(query, params []byte, limit int) *stmt {
	key := make([]byte, 0, len(params)+len(query))
	key = append(append(key, params...), query...)
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.m[string(key)]; s != nil {
		return s
	}
	if len(r.m) >= limit {
		clear(r.m)
	}
	r.next++
	s := &stmt{id: r.next, name: stmtName(r.next),
		query: append([]byte(nil), query...), params: append([]byte(nil), params...),
		class: pg.Classify(query), big: len(query) > pinTextLimit}
	r.m[string(key)] = s
	return s
}

// stmtName is the name statement id has on server connections.
func stmtName(id uint32) string { return "rdsproxy_" + strconv.FormatUint(uint64(id), 10) }
