package proxy

import (
	"context"
	"net"
	"strconv"
	"sync"
	"time"
)

// Protocol is one wire protocol of the data plane: what an engine family's
// client connections and server connections look like. The server hands
// the Manager one value per family at wiring time
// (ManagerConfig.Protocols); a protocol keeps its private state (cancel
// keys, authentication caches, connection IDs) in that value, never in
// package variables.
//
// The seam is at accept, borrow and return, never per message: a
// protocol's hot path works on its own concrete types and reaches the core
// only to borrow or return a server connection, pin, and bump the exported
// metric counters.
//
// Every method may be called from many goroutines at once.
type Protocol interface {
	// Family is the EngineFamily it serves: "POSTGRESQL", "MYSQL".
	Family() string
	// Serve runs one accepted client connection on the goroutine the core
	// started for it, until the client leaves or c.Context() is cancelled
	// (endpoint removed, proxy deleted, Manager closed). It owns c.Conn().
	// When it returns (and the function given to c.Continue, if any, has
	// returned), every server connection it borrowed must have been
	// released.
	Serve(c *Client)
	// Dial opens and authenticates one server connection for a pool. The
	// connection returned embeds req.Pooled, on which Dial has called
	// Init. A refusal the server explained is a *DialError: the core then
	// stops retrying and reports it; other errors (network) are retried
	// until the borrow deadline.
	Dial(ctx context.Context, req DialRequest) (ServerConn, error)
	// Probe logs in to a target with req's credentials and disconnects
	// (the health check every 15 s). req.Pooled is nil; errors are
	// classified as Dial's.
	Probe(ctx context.Context, req DialRequest) error
}

// PoolKey identifies a pool of interchangeable server connections of one
// target.
type PoolKey struct {
	User, Database string
	// Variant is protocol-defined (MySQL: capability flags and character
	// set); "" for PostgreSQL.
	Variant string
}

// DialRequest says what server connection to open.
type DialRequest struct {
	Host string
	Port int
	Key  PoolKey
	// Password is the pool's secret's, read now.
	Password string
	// TLS asks for TLS when the server offers it (the proxy's RequireTLS).
	TLS bool
	// InitQuery runs on every new connection.
	InitQuery string
	// NeedMaxConnections: the core has not learned the server's
	// max_connections yet; Dial reads it and passes it to Init.
	NeedMaxConnections bool
	// Pooled is the core's record of the connection, which the returned
	// ServerConn embeds; nil for Probe.
	Pooled *Pooled
}

// ServerConn is a protocol's server connection type. It embeds *Pooled
// (the DialRequest's), which is how it satisfies the unexported method.
type ServerConn interface {
	pooled() *Pooled
	// Close says goodbye in the protocol (Terminate, COM_QUIT) and closes
	// the connection. The core calls it when it discards an idle or
	// returned connection, never while a session holds it.
	Close()
}

// Pooled is the core's bookkeeping of one server connection: its target
// and pool, its id, the socket the core peeks at for liveness, its age.
// Protocols embed the *Pooled of the DialRequest in their connection type.
// A Pooled is owned by one session at a time (from Borrow to Release), or
// by its pool while idle.
type Pooled struct {
	t    *target
	pl   *pool
	conn ServerConn // the protocol's connection embedding this
	id   int64

	nc       net.Conn // set by Init: the stream the protocol reads
	maxConns int      // set by Init when asked

	born     time.Time
	lastUsed time.Time // when last returned (idle lists only)
	inTx     bool      // counted in DatabaseConnectionsCurrentlyInTransaction
}

func (p *Pooled) pooled() *Pooled { return p }

// Init records the connection's stream (a TLS connection or the TCP
// connection, as the protocol reads it: the core sets deadlines on it to
// interrupt a session being ended and peeks at its socket to check idle
// connections) and, when the DialRequest asked, the server's
// max_connections. Dial calls it before returning.
func (p *Pooled) Init(nc net.Conn, maxConnections int) {
	p.nc = nc
	p.maxConns = maxConnections
}

// ID is the connection's number in the proxy's log lines
// (dbConnection=N).
func (p *Pooled) ID() int64 { return p.id }

// TargetAddr is host:port of the connection's database (for a
// CancelRequest or KILL sent on a connection of its own).
func (p *Pooled) TargetAddr() string { return p.t.addr }

// Key is the pool the connection belongs to.
func (p *Pooled) Key() PoolKey { return p.pl.key }

// Metrics are the target's counters (the protocol bumps
// QueryDatabaseResponseLatency and the like directly).
func (p *Pooled) Metrics() *TargetMetrics { return &p.t.metrics }

// InTransaction moves the connection in or out of
// DatabaseConnectionsCurrentlyInTransaction; Release moves it out.
func (p *Pooled) InTransaction(in bool) {
	if in != p.inTx {
		p.inTx = in
		if in {
			p.t.metrics.DatabaseConnectionsCurrentlyInTransaction.Add(1)
		} else {
			p.t.metrics.DatabaseConnectionsCurrentlyInTransaction.Add(-1)
		}
	}
}

// PoolState returns the protocol's private state for the connection's
// pool (PostgreSQL: the pool's shared parameter sets and default
// settings), made by newState on first use and dropped with the pool.
func (p *Pooled) PoolState(newState func() any) any { return p.pl.state.get(newState) }

// local is protocol-private state the core keeps for a protocol per proxy
// or per pool.
type local struct {
	mu sync.Mutex
	v  any
}

func (l *local) get(newState func() any) any {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.v == nil {
		l.v = newState()
	}
	return l.v
}

// dialRequest is the request for a new connection of pl (password read by
// the caller).
func (t *target) dialRequest(pl *pool, sp *ProxySpec, password string, needMax bool, pd *Pooled) DialRequest {
	return DialRequest{Host: t.spec.Host, Port: t.spec.Port, Key: pl.key, Password: password, TLS: sp.RequireTLS,
		InitQuery: sp.Pool.InitQuery, NeedMaxConnections: needMax, Pooled: pd}
}

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
