package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// defaultBorrowTimeout is RDS's ConnectionBorrowTimeout default.
const defaultBorrowTimeout = 120 * time.Second

// Client is one accepted client connection as the core hands it to
// Protocol.Serve: the connection, the proxy's settings and secrets, and
// the pools of the target its endpoint routes to.
//
// The session's goroutine calls its methods; Context, Held and the
// metrics may be used from any goroutine. A session holds at most one
// server connection at a time.
type Client struct {
	ep   *endpoint
	p    *proxyState
	raw  net.Conn // the accepted connection
	conn net.Conn // raw, with raw system-call I/O where possible
	born time.Time

	ctx    context.Context
	cancel context.CancelFunc
	cont   func() // set by Continue

	transport int8   // 0 not known yet, 1 plaintext, 2 TLS (the ClientConnections gauges)
	secretArn string // of the Auth entry Credentials found last
	pool      *pool  // of the last Borrow

	// mu guards held and pinned, which the session's goroutine changes and
	// others read (kill, Held, and evict, which finds the sessions holding
	// or pinned to a retired target's connections).
	mu     sync.Mutex
	held   *Pooled
	pinned *Pooled // counted in DatabaseConnectionsCurrentlySessionPinned

	evicted atomic.Bool // set by evictLocked, cleared by Release
}

func newClient(ep *endpoint, nc net.Conn) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{ep: ep, p: ep.p, raw: nc, conn: RawConn(nc), born: time.Now(), ctx: ctx, cancel: cancel}
}

// run serves the client on its goroutine and accounts for it.
func (c *Client) run() {
	em := &c.ep.metrics
	em.ClientConnectionsReceived.Add(1)
	em.ClientConnections.Add(1)
	c.p.proto.Serve(c)
	if f := c.cont; f != nil {
		c.cont = nil
		go func() {
			f()
			c.end()
		}()
		return
	}
	c.end()
}

// end closes what the session left and removes it from its endpoint.
func (c *Client) end() {
	c.cancel()
	c.mu.Lock()
	held := c.held
	c.mu.Unlock()
	if held != nil { // the protocol did not give it back
		c.Release(held.conn, false)
	}
	em := &c.ep.metrics
	em.ClientConnections.Add(-1)
	em.ClientConnectionsClosed.Add(1)
	switch c.transport {
	case 1:
		em.ClientConnectionsNoTLS.Add(-1)
	case 2:
		em.ClientConnectionsTLS.Add(-1)
	}
	c.raw.Close()
	c.ep.forget(c)
}

// kill ends the session from another goroutine (endpoint removed, proxy
// deleted, Manager closed): its context is cancelled, its client
// connection closed, and a server read or write in progress interrupted.
func (c *Client) kill() {
	c.cancel()
	c.raw.Close()
	c.mu.Lock()
	if c.held != nil {
		c.held.nc.SetDeadline(time.Now())
	}
	c.mu.Unlock()
}

// Evicted is non-nil (an *Error of Kind Failover) when the server
// connection the session holds was taken away at a failover: its target
// left the proxy or stopped being the writer while the session was pinned
// to it or had a transaction or statement in progress on it. Such a
// session's state cannot move to another server, so the protocol ends it
// with its database's error for that (PostgreSQL: FATAL 57P01). It is the
// core's one hook for failover, and protocol-neutral:
//
//   - To interrupt the session wherever it waits, the core sets the held
//     connection's deadline (Pooled.Init's stream) and the client
//     connection's read deadline to now. Reads and writes on the held
//     connection fail from then on, so nothing more reaches the former
//     target; a wait for the client's next message ends with a timeout.
//   - The protocol asks Evicted when an I/O error or timeout reaches it,
//     before anything else (an idle timeout's error, its own "connection
//     lost"), and before it releases the connection: Release clears it.
//   - A protocol that sets the client connection's read deadline before
//     waiting for the client asks Evicted after setting it (the core's
//     deadline may have been overwritten).
//
// Sessions that hold no server connection (idle, not pinned) are never
// evicted: their next Borrow goes to the new target. A Borrow that takes a
// connection of a target retired meanwhile gives it back and routes again.
func (c *Client) Evicted() error {
	if c.evicted.Load() {
		return errFailover
	}
	return nil
}

// Conn is the accepted connection (reads and writes are raw system calls
// where the platform allows; see RawConn). The protocol owns it.
func (c *Client) Conn() net.Conn { return c.conn }

// Context is cancelled when the session must end: its endpoint was
// removed, its proxy deleted, or the Manager closed.
func (c *Client) Context() context.Context { return c.ctx }

// Continue makes the session go on, after Serve returns, on a new
// goroutine running f (whose stack starts small again: a protocol calls
// it after the handshake, whose TLS and authentication grow the stack an
// idle session would otherwise keep). The session ends when f returns.
// Only Serve may call it, once.
func (c *Client) Continue(f func()) { c.cont = f }

// Spec is the proxy's current settings. A session keeps the ones it
// logged in with, except pool sizes and the borrow timeout, which Borrow
// reads each time.
func (c *Client) Spec() *ProxySpec { return c.p.spec() }

// EndpointName is the endpoint's name ("default" for the proxy's own).
func (c *Client) EndpointName() string { return c.ep.spec.Name }

// TLSConfig is the endpoint's server TLS configuration; nil: the endpoint
// offers no TLS.
func (c *Client) TLSConfig() *tls.Config { return c.ep.tlsConf }

// TargetAddr is host:port of the target the endpoint routes to now, ""
// when none does (whose greeting a protocol may want to show).
func (c *Client) TargetAddr() string {
	if t := c.p.route(c.ep.role); t != nil {
		return t.addr
	}
	return ""
}

// MaxAge says when the client connection reaches its maximum life
// (Limits.ClientMaxAge from when it was accepted): the protocol ends it at
// its first moment outside a transaction after that.
func (c *Client) MaxAge() (end time.Time, maxAge time.Duration) {
	lim := c.p.m.cfg.Limits.ClientMaxAge
	return c.born.Add(lim), lim
}

// Logger receives the session's log lines, with the proxy and endpoint
// named.
func (c *Client) Logger() *slog.Logger {
	return c.p.m.log.With("proxy", c.p.spec().Name, "endpoint", c.ep.spec.Name)
}

// Credentials finds the Auth entry whose secret's username is user and
// returns it with the password, both read now. Later borrows open server
// connections with that entry's secret (without a call, with the secret
// whose username is the pool key's user).
func (c *Client) Credentials(user string) (auth AuthSpec, password string, ok bool) {
	auth, password, ok = c.p.lookupUser(c.p.spec(), user)
	if ok {
		c.secretArn = auth.SecretArn
	}
	return auth, password, ok
}

// CheckToken validates an IAM auth token for the endpoint's advertised
// addresses, the proxy's region and user (and rds-db:connect where the
// checker enforces IAM policies). A rejection is an *Error of Kind
// AuthFailed.
func (c *Client) CheckToken(token, user string) error {
	return c.p.checkToken(c.ep, token, user)
}

// Borrow returns a server connection of the pool key names on the target
// the endpoint routes to now (the writer for READ_WRITE; for READ_ONLY a
// healthy reader with the fewest borrowed connections, round robin among
// equals, never the writer): prefer if it is idle in that pool (a protocol
// passes the connection the session used last, so that statements reading
// its previous results find them), else any idle one, else a new one
// within the target's budget, else the first one returned, waiting up to
// ConnectionBorrowTimeout (then an *Error of Kind BorrowTimeout). While no
// target serves the role (a failover under way, every reader down) it
// waits for one up to the same deadline; a reader whose dial fails is
// skipped for another at once. A READ_ONLY endpoint of a proxy without
// readers (ProxySpec.HasReaders) fails at once (Kind NoReaders). A
// refusal by the database is the protocol's *DialError; a cancelled
// session gets its context's error.
func (c *Client) Borrow(key PoolKey, prefer ServerConn) (ServerConn, error) {
	p := c.p
	sp := p.spec()
	bt := sp.Pool.BorrowTimeout
	if bt <= 0 {
		bt = defaultBorrowTimeout
	}
	reader := c.ep.role == RoleReadOnly
	if reader && !sp.HasReaders {
		return nil, errNoReaders
	}
	deadline := time.Now().Add(bt)
	var pref *Pooled
	if prefer != nil {
		pref = prefer.pooled()
	}
	var failed map[*target]bool // readers whose dial failed in this borrow
	backoff := 50 * time.Millisecond
	for {
		var t *target
		once := false
		if reader {
			t, _ = p.pickReader(failed)
			if t == nil && len(failed) > 0 {
				// Every reader failed once: start a new round after a
				// pause, as a writer's dial retries.
				if !c.pause(deadline, backoff) {
					return nil, c.waitErr()
				}
				backoff = min(backoff*2, time.Second)
				failed = nil
				continue
			}
			// A reader is dialled once, so that a dead one is skipped at
			// once for another (its health turns UNAVAILABLE); one known
			// to be down is tried when no healthy one is left, once per
			// round.
			once = true
		} else {
			t = p.route(c.ep.role)
		}
		if t == nil {
			if !c.pause(deadline, 50*time.Millisecond) {
				return nil, c.waitErr()
			}
			continue
		}
		pl := c.pool
		if pl == nil || pl.t != t || pl.key != key {
			if c.secretArn == "" { // Credentials was not called
				if a, _, ok := p.lookupUser(p.spec(), key.User); ok {
					c.secretArn = a.SecretArn
				}
			}
			pl = t.getPool(key, c.secretArn)
			c.pool = pl
		}
		start := time.Now()
		b, err := t.borrow(c.ctx, pl, deadline, pref, once)
		if errors.Is(err, errRetired) {
			continue
		}
		if errors.Is(err, errDialOnce) {
			if failed == nil {
				failed = map[*target]bool{}
			}
			failed[t] = true
			continue
		}
		if err != nil {
			return nil, err
		}
		t.metrics.DatabaseConnectionsBorrowLatency.Observe(time.Since(start))
		t.metrics.DatabaseConnectionsCurrentlyBorrowed.Add(1)
		c.mu.Lock()
		c.held = b
		if c.ctx.Err() != nil { // killed meanwhile
			b.nc.SetDeadline(time.Now())
		}
		c.mu.Unlock()
		if t.gone.Load() {
			// Retired since, before anything was sent on it: route again.
			// If evict saw the session hold it, undo its wake-up of the
			// client read (the session is not waiting for its client).
			evicted := c.evicted.Load()
			c.Release(b.conn, false)
			if evicted {
				c.conn.SetReadDeadline(time.Time{})
			}
			continue
		}
		return b.conn, nil
	}
}

// pause waits d (not beyond deadline) and reports whether the borrow may
// go on: false once the deadline has passed or the session was killed.
func (c *Client) pause(deadline time.Time, d time.Duration) bool {
	if !time.Now().Before(deadline) {
		return false
	}
	tm := time.NewTimer(min(d, time.Until(deadline)))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// waitErr is a wait's end: the session's context error if it was killed,
// else the borrow timeout.
func (c *Client) waitErr() error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	return errBorrowTimeout
}

// Release gives a borrowed connection back to its pool, or closes it when
// it is not reusable (mid-response, broken, or in a state the protocol
// cannot reset). A connection of a target that left the proxy closes.
func (c *Client) Release(sc ServerConn, reusable bool) {
	b := sc.pooled()
	t := b.t
	c.mu.Lock()
	if c.held == b {
		c.held = nil
	}
	if c.pinned == b {
		c.pinned = nil
		t.metrics.DatabaseConnectionsCurrentlySessionPinned.Add(-1)
	}
	c.evicted.Store(false)
	c.mu.Unlock()
	b.InTransaction(false)
	t.metrics.DatabaseConnectionsCurrentlyBorrowed.Add(-1)
	t.release(b, reusable)
}

// Pin records that the session keeps sc for the rest of its life: RDS's
// log line, and DatabaseConnectionsCurrentlySessionPinned until the
// session releases sc.
func (c *Client) Pin(sc ServerConn, reason string) {
	b := sc.pooled()
	c.mu.Lock()
	if c.pinned == b {
		c.mu.Unlock()
		return
	}
	if c.pinned != nil {
		c.pinned.t.metrics.DatabaseConnectionsCurrentlySessionPinned.Add(-1)
	}
	c.pinned = b
	c.mu.Unlock()
	b.t.metrics.DatabaseConnectionsCurrentlySessionPinned.Add(1)
	c.p.m.log.Info(fmt.Sprintf("The client session was pinned to the database connection [dbConnection=%d] for the remainder of the session. The proxy can't reuse this connection until the session ends. Reason: %s", b.id, reason),
		"proxy", c.p.spec().Name, "endpoint", c.ep.spec.Name)
}

// Held runs f with the connection the session holds (nil if none) while
// neither Borrow nor Release can change it: another session's cancel
// request or KILL reaches the statement running now, never the next
// client of a connection returned meanwhile.
func (c *Client) Held(f func(ServerConn)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		f(nil)
		return
	}
	f(c.held.conn)
}

// Metrics are the endpoint's client-side counters; a protocol bumps
// QueryRequests and the like directly.
func (c *Client) Metrics() *EndpointMetrics { return &c.ep.metrics }

// Transport records whether the client connection uses TLS, for the
// ClientConnectionsTLS / NoTLS gauges (until it ends). The first call
// counts.
func (c *Client) Transport(tls bool) {
	if c.transport != 0 {
		return
	}
	if tls {
		c.transport = 2
		c.ep.metrics.ClientConnectionsTLS.Add(1)
	} else {
		c.transport = 1
		c.ep.metrics.ClientConnectionsNoTLS.Add(1)
	}
}

// SetupDone counts a client connection that logged in
// (ClientConnectionsSetupSucceeded), recording its transport if Transport
// was not called.
func (c *Client) SetupDone(tls bool) {
	c.Transport(tls)
	c.ep.metrics.ClientConnectionsSetupSucceeded.Add(1)
}

// SetupFailed counts a client connection that did not log in; auth says
// the proxy refused its credentials or TLS (ClientConnectionsSetupFailedAuth).
func (c *Client) SetupFailed(auth bool) {
	if auth {
		c.ep.metrics.ClientConnectionsSetupFailedAuth.Add(1)
	}
}

// QueryDone counts one client request (QueryRequests, by transport) and
// its latencies: total as the client saw it (QueryResponseLatency), db the
// part spent on the held connection's database
// (QueryDatabaseResponseLatency). Protocols that count per message bump
// the metrics themselves.
func (c *Client) QueryDone(tls bool, total, db time.Duration) {
	em := &c.ep.metrics
	em.QueryRequests.Add(1)
	if tls {
		em.QueryRequestsTLS.Add(1)
	} else {
		em.QueryRequestsNoTLS.Add(1)
	}
	em.QueryResponseLatency.Observe(total)
	if b := c.held; b != nil {
		b.t.metrics.QueryDatabaseResponseLatency.Observe(db)
	}
}

// ProxyState returns the protocol's private state for the client's proxy
// (PostgreSQL: its prepared-statement registry), made by newState on
// first use and dropped with the proxy.
func (c *Client) ProxyState(newState func() any) any { return c.p.state.get(newState) }
