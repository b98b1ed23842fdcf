package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rdslocal/rdslocal/proxy/pg"
	"github.com/rdslocal/rdslocal/secrets"
)

// errBorrowTimeout is RDS Proxy's PostgreSQL text for a borrow that waited
// ConnectionBorrowTimeout.
//
//lint:ignore ST1005 RDS Proxy's exact text reaches the client.
var errBorrowTimeout = errors.New("Timed-out waiting to acquire database connection.")

// errRetired means the target left the proxy's target list (or changed
// address) while a borrow waited; the session re-routes and tries again.
var errRetired = errors.New("proxy: target retired")

// trackedSettings are the run-time parameters a client may set in its
// startup packet. The proxy makes a borrowed backend carry the client's
// values (SET at borrow when they differ), so pools need not be keyed by
// them.
var trackedSettings = [...]string{"application_name", "client_encoding", "DateStyle", "TimeZone", "extra_float_digits"}

// settingValues holds one value per trackedSettings entry.
type settingValues [len(trackedSettings)]string

// settingIndex returns name's index in trackedSettings, or -1.
func settingIndex(name string) int {
	switch name {
	case "application_name":
		return 0
	case "client_encoding":
		return 1
	case "DateStyle":
		return 2
	case "TimeZone":
		return 3
	case "extra_float_digits":
		return 4
	}
	return -1
}

// paramSet is an immutable set of server parameters (ParameterStatus
// values). Backends of a pool that report the same values share one, so a
// session borrowing a backend whose set it has already seen needs no
// comparison beyond the pointer.
type paramSet struct{ m map[string]string }

// internParams returns the pool's shared set equal to m, adding m if none is.
func (pl *pool) internParams(m map[string]string) *paramSet {
	pl.paramsMu.Lock()
	defer pl.paramsMu.Unlock()
	for _, ps := range pl.paramSets {
		if maps.Equal(ps.m, m) {
			return ps
		}
	}
	ps := &paramSet{m: m}
	if len(pl.paramSets) < 16 {
		pl.paramSets = append(pl.paramSets, ps)
	}
	return ps
}

// target is one database behind a proxy: its address, the pools of its
// (user, database) pairs, and the connection budget they share.
type target struct {
	p    *proxyState
	spec TargetSpec
	addr string

	mu        sync.Mutex
	pools     map[poolKey]*pool
	open      int // connections open or being dialled
	idleCount int // idle connections over all pools
	serverMax int // the server's max_connections; 0 until first connect
	maxPct    int
	idlePct   int
	waiters   []*waiter
	retired   bool

	health  atomic.Pointer[targetHealth]
	metrics targetMetrics
}

type poolKey struct{ user, db string }

// pool holds the idle connections of one (target, user, database).
type pool struct {
	t           *target
	key         poolKey
	secretArn   string
	idle        []*backend    // under t.mu; LIFO
	defaults    settingValues // as the first connection reported them
	hasDefaults bool
	password    string // last password that worked (under t.mu)

	paramsMu  sync.Mutex
	paramSets []*paramSet
}

type waiter struct {
	pool *pool
	ch   chan grant // buffered 1
}

// grant hands a waiter either an idle connection or a reserved slot to dial.
type grant struct {
	b    *backend
	slot bool
}

// held is a statement a server connection has prepared.
type held struct {
	st  *stmt
	use uint64 // when last used (backend.useSeq)
}

// backend is one server connection, owned by at most one session at a time.
type backend struct {
	t      *target
	pool   *pool
	id     int64 // dbConnection=N in pin log lines
	conn   net.Conn
	r      *pg.Reader
	w      *bufio.Writer
	pid    uint32
	secret []byte

	params   *paramSet       // as the server last reported them
	settings settingValues   // trackedSettings as last set or reported
	prepared map[uint32]held // by statement id
	useSeq   uint64
	swept    uint64 // the registry's dead generation when unneeded statements were last closed
	unnamed  *stmt  // the client statement now in the unnamed slot
	inTx     bool
	loaded   bool      // LOAD ran: never reuse
	born     time.Time // when it was opened
	lastUsed time.Time // when it was last returned (idle lists only)
}

func newTarget(p *proxyState, spec TargetSpec) *target {
	t := &target{p: p, spec: spec, addr: net.JoinHostPort(spec.Host, strconv.Itoa(spec.Port)),
		pools: map[poolKey]*pool{}}
	t.health.Store(&targetHealth{State: "REGISTERING"})
	return t
}

// configure updates the pool percentages (under t.mu by the caller).
func (t *target) configure(ps PoolSpec) {
	t.maxPct = ps.MaxConnectionsPercent
	if t.maxPct <= 0 || t.maxPct > 100 {
		t.maxPct = 100
	}
	t.idlePct = min(max(ps.MaxIdleConnectionsPercent, 0), t.maxPct)
	t.metrics.MaxDatabaseConnectionsAllowed.Store(int64(t.capacity()))
}

func (t *target) capacity() int {
	if t.serverMax == 0 {
		return 1 // learn max_connections from one connection first
	}
	return max(1, t.serverMax*t.maxPct/100)
}

func (t *target) idleCap() int {
	if t.serverMax == 0 {
		return 1
	}
	return t.serverMax * t.idlePct / 100
}

// getPool returns the pool for (user, db), creating it.
func (t *target) getPool(user, db, secretArn string) *pool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := poolKey{user, db}
	pl := t.pools[k]
	if pl == nil {
		pl = &pool{t: t, key: k, secretArn: secretArn}
		t.pools[k] = pl
	}
	pl.secretArn = secretArn
	return pl
}

// borrow takes a connection of pl: an idle one if any (checked for
// liveness), else a new one if the target's budget allows, else it waits in
// FIFO order until a connection is returned or deadline passes.
func (t *target) borrow(ctx context.Context, pl *pool, deadline time.Time) (*backend, error) {
	t.metrics.DatabaseConnectionRequests.Add(1)
	for {
		t.mu.Lock()
		if t.retired {
			t.mu.Unlock()
			return nil, errRetired
		}
		if n := len(pl.idle); n > 0 {
			b := pl.idle[n-1]
			pl.idle[n-1] = nil
			pl.idle = pl.idle[:n-1]
			t.idleCount--
			t.mu.Unlock()
			if b.alive() {
				return b, nil
			}
			t.discard(b)
			continue
		}
		var victim *backend
		if t.open >= t.capacity() && t.idleCount > 0 {
			victim = t.takeIdleLocked() // make room from another pool
		}
		if victim != nil || t.open < t.capacity() {
			if victim == nil {
				t.open++
			}
			t.mu.Unlock()
			if victim != nil {
				victim.closeConn()
				t.metrics.DatabaseConnections.Add(-1)
			}
			return t.dialSlot(ctx, pl, deadline)
		}
		w := &waiter{pool: pl, ch: make(chan grant, 1)}
		t.waiters = append(t.waiters, w)
		t.mu.Unlock()
		g, err := t.wait(ctx, w, deadline)
		if err != nil {
			return nil, err
		}
		if g.b != nil {
			if g.b.alive() {
				return g.b, nil
			}
			t.discard(g.b)
			continue
		}
		return t.dialSlot(ctx, pl, deadline)
	}
}

func (t *target) wait(ctx context.Context, w *waiter, deadline time.Time) (grant, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var err error
	select {
	case g := <-w.ch:
		return g, nil
	case <-timer.C:
		err = errBorrowTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	t.mu.Lock()
	for i, x := range t.waiters {
		if x == w {
			t.waiters = append(t.waiters[:i], t.waiters[i+1:]...)
			t.mu.Unlock()
			return grant{}, err
		}
	}
	t.mu.Unlock()
	// Granted while giving up: pass it on.
	g := <-w.ch
	if g.b != nil {
		t.release(g.b, true)
	} else {
		t.freeSlot()
	}
	return grant{}, err
}

// takeIdleLocked removes the least recently queued idle connection of any
// pool (t.mu held).
func (t *target) takeIdleLocked() *backend {
	for _, pl := range t.pools {
		if len(pl.idle) > 0 {
			b := pl.idle[0]
			pl.idle = append(pl.idle[:0], pl.idle[1:]...)
			t.idleCount--
			return b
		}
	}
	return nil
}

// dialSlot opens a connection in a slot already counted in t.open,
// retrying until deadline while the database is unreachable.
func (t *target) dialSlot(ctx context.Context, pl *pool, deadline time.Time) (*backend, error) {
	backoff := 50 * time.Millisecond
	for {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		b, err := t.dial(dctx, pl)
		cancel()
		if err == nil {
			return b, nil
		}
		if errors.Is(err, errRetired) {
			t.freeSlot()
			return nil, err
		}
		var pe *pgconn.PgError
		authErr := errors.As(err, &pe)
		if authErr || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			t.freeSlot()
			if !authErr && ctx.Err() == nil {
				return nil, errBorrowTimeout
			}
			return nil, err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(backoff*2, time.Second)
	}
}

// freeSlot gives back a slot counted in t.open and lets a waiter use it.
func (t *target) freeSlot() {
	t.mu.Lock()
	t.open--
	t.grantSlotsLocked()
	t.mu.Unlock()
}

// grantSlotsLocked hands dial slots to waiters while the budget allows.
func (t *target) grantSlotsLocked() {
	for len(t.waiters) > 0 && t.open < t.capacity() {
		w := t.waiters[0]
		t.waiters = t.waiters[1:]
		t.open++
		w.ch <- grant{slot: true}
	}
}

// release returns a borrowed connection. reusable false closes it.
func (t *target) release(b *backend, reusable bool) {
	now := time.Now()
	t.mu.Lock()
	if !reusable || t.retired || b.loaded {
		t.mu.Unlock()
		t.discard(b)
		return
	}
	if len(t.waiters) > 0 {
		w := t.waiters[0]
		t.waiters = t.waiters[1:]
		if w.pool == b.pool {
			t.mu.Unlock()
			w.ch <- grant{b: b}
			return
		}
		t.mu.Unlock()
		b.closeConn() // its slot goes to the waiter of another pool
		t.metrics.DatabaseConnections.Add(-1)
		w.ch <- grant{slot: true}
		return
	}
	if t.open > t.capacity() {
		t.mu.Unlock()
		t.discard(b) // the pool was made smaller
		return
	}
	// Kept even above MaxIdleConnectionsPercent: a connection counts as
	// idle only after Limits.IdleConnectionAfter unused (reap).
	b.lastUsed = now
	b.pool.idle = append(b.pool.idle, b)
	t.idleCount++
	t.mu.Unlock()
}

// reap closes the idle connections RDS Proxy would close: those unused
// for lim.IdleConnectionAfter beyond MaxIdleConnectionsPercent of the
// server's max_connections, least recently used first, and any older than
// lim.ConnectionMaxAge.
func (t *target) reap(lim Limits) {
	now := time.Now()
	var victims []*backend
	t.mu.Lock()
	stale := 0
	for _, pl := range t.pools {
		for _, b := range pl.idle {
			if now.Sub(b.lastUsed) >= lim.IdleConnectionAfter {
				stale++
			}
		}
	}
	excess := stale - t.idleCap()
	for _, pl := range t.pools {
		kept := pl.idle[:0]
		for _, b := range pl.idle { // least recently used first
			unused := now.Sub(b.lastUsed) >= lim.IdleConnectionAfter
			if now.Sub(b.born) < lim.ConnectionMaxAge && !(unused && excess > 0) {
				kept = append(kept, b)
				continue
			}
			if unused {
				excess--
			}
			victims = append(victims, b)
		}
		clear(pl.idle[len(kept):])
		pl.idle = kept
	}
	t.idleCount -= len(victims)
	t.mu.Unlock()
	for _, b := range victims {
		t.discard(b)
	}
}

// discard closes a connection that holds a slot and frees the slot.
func (t *target) discard(b *backend) {
	b.closeConn()
	t.metrics.DatabaseConnections.Add(-1)
	t.freeSlot()
}

// retire stops the target: idle connections close now, borrowed ones when
// returned, waiters get errRetired by retrying.
func (t *target) retire() {
	t.mu.Lock()
	t.retired = true
	var idle []*backend
	for _, pl := range t.pools {
		idle = append(idle, pl.idle...)
		pl.idle = nil
	}
	t.idleCount = 0
	t.open -= len(idle)
	ws := t.waiters
	t.waiters = nil
	t.open += len(ws) // each waiter gets a slot, finds the target retired, frees it
	t.mu.Unlock()
	for _, b := range idle {
		b.closeConn()
		t.metrics.DatabaseConnections.Add(-1)
	}
	for _, w := range ws {
		w.ch <- grant{slot: true}
	}
}

// dial opens and authenticates one connection for pl.
func (t *target) dial(ctx context.Context, pl *pool) (*backend, error) {
	p := t.p
	spec := p.spec()
	password, err := p.password(pl)
	if err != nil {
		t.setHealth("UNAVAILABLE", "AUTH_FAILURE", err.Error())
		return nil, &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: err.Error()}
	}
	t.mu.Lock()
	retired, needMax := t.retired, t.serverMax == 0
	t.mu.Unlock()
	if retired {
		return nil, errRetired
	}
	var serverMax int
	extraFloat := "1"
	cfg := pg.DialConfig{Host: t.spec.Host, Port: t.spec.Port, User: pl.key.user, Password: password, Database: pl.key.db,
		Setup: func(ctx context.Context, c *pgconn.PgConn) error {
			if spec.Pool.InitQuery != "" {
				if _, err := c.Exec(ctx, spec.Pool.InitQuery).ReadAll(); err != nil {
					return fmt.Errorf("init query: %w", err)
				}
			}
			q := "SELECT current_setting('extra_float_digits')"
			if needMax {
				q += ", current_setting('max_connections')"
			}
			res, err := c.Exec(ctx, q).ReadAll()
			if err != nil {
				return err
			}
			if len(res) == 1 && len(res[0].Rows) == 1 {
				row := res[0].Rows[0]
				extraFloat = string(row[0])
				if needMax && len(row) > 1 {
					serverMax, _ = strconv.Atoi(string(row[1]))
				}
			}
			return nil
		}}
	if spec.RequireTLS {
		cfg.TLS = &tls.Config{InsecureSkipVerify: true} // sslmode=require
		t.metrics.DatabaseConnectionRequestsWithTLS.Add(1)
	}
	sc, err := pg.Dial(ctx, cfg)
	if err != nil {
		t.metrics.DatabaseConnectionsSetupFailed.Add(1)
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe) && (pe.Code == "28P01" || pe.Code == "28000"):
			t.setHealth("UNAVAILABLE", "AUTH_FAILURE", pe.Message)
		case errors.As(err, &pe):
			t.setHealth("UNAVAILABLE", "CONNECTION_FAILED", pe.Message)
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.setHealth("UNAVAILABLE", "UNREACHABLE", err.Error())
			} else {
				t.setHealth("UNAVAILABLE", "CONNECTION_FAILED", err.Error())
			}
		}
		return nil, err
	}
	t.metrics.DatabaseConnectionsSetupSucceeded.Add(1)
	t.metrics.DatabaseConnections.Add(1)
	t.setHealth("AVAILABLE", "", "")
	conn := newRawConn(sc.Conn)
	b := &backend{t: t, pool: pl, id: p.m.connSeq.Add(1), conn: conn, pid: sc.PID, secret: sc.Secret, born: time.Now(),
		r: pg.NewReader(conn, 32<<10), w: bufio.NewWriterSize(conn, 32<<10),
		params: pl.internParams(sc.Params), prepared: map[uint32]held{}}
	for i, k := range trackedSettings {
		b.settings[i] = sc.Params[k]
	}
	b.settings[settingIndex("extra_float_digits")] = extraFloat
	t.mu.Lock()
	pl.password = password
	if !pl.hasDefaults {
		pl.defaults, pl.hasDefaults = b.settings, true
	}
	if needMax && serverMax > 0 && t.serverMax == 0 {
		t.serverMax = serverMax
		t.metrics.MaxDatabaseConnectionsAllowed.Store(int64(t.capacity()))
		t.grantSlotsLocked()
	}
	t.mu.Unlock()
	return b, nil
}

func (b *backend) closeConn() {
	b.conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
	b.conn.Write(pg.AppendEmpty(nil, pg.MsgTerminate))
	b.conn.Close()
}

// exec runs sql on the connection with the simple protocol, reading until
// ReadyForQuery; it records ParameterStatus changes and returns the first
// error the server reported.
func (b *backend) exec(sql string) (status byte, err error) {
	return b.roundTrip(pg.AppendQuery(nil, sql))
}

// roundTrip sends msgs (ending in a Query or Sync) and reads until
// ReadyForQuery, like exec.
func (b *backend) roundTrip(msgs []byte) (status byte, err error) {
	b.w.Write(msgs)
	if err := b.w.Flush(); err != nil {
		return 0, err
	}
	var first error
	for {
		typ, body, err := b.r.Next()
		if err != nil {
			return 0, err
		}
		switch typ {
		case pg.MsgReadyForQuery:
			if len(body) != 1 {
				return 0, pg.ErrMalformed
			}
			return body[0], first
		case pg.MsgErrorResponse:
			if first == nil {
				first = pg.ParseErrorResponse(body)
			}
		case pg.MsgParameterStatus:
			b.noteParam(body)
		case pg.MsgCopyInResponse, pg.MsgCopyOutResponse, pg.MsgCopyBothResponse:
			return 0, errors.New("proxy: unexpected COPY in an internal query")
		}
	}
}

// touch records that the backend holds st and uses it now.
func (b *backend) touch(st *stmt) {
	b.useSeq++
	b.prepared[st.id] = held{st: st, use: b.useSeq}
}

// noteParam records a ParameterStatus body.
func (b *backend) noteParam(body []byte) (name, value string) {
	name, value, err := pg.ParseParameterStatus(body)
	if err != nil {
		return "", ""
	}
	if cur, ok := b.params.m[name]; !ok || cur != value {
		m := maps.Clone(b.params.m)
		if m == nil {
			m = map[string]string{}
		}
		m[name] = value
		b.params = b.pool.internParams(m)
	}
	if i := settingIndex(name); i >= 0 {
		b.settings[i] = value
	}
	return name, value
}

// cleanup returns the connection to its pristine state after a pinned
// session: ROLLBACK if needed, DISCARD ALL, the init query again. It reports
// whether the connection is reusable.
func (b *backend) cleanup(txStatus byte, initQuery string) bool {
	b.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer b.conn.SetDeadline(time.Time{})
	if txStatus != pg.TxIdle {
		if st, err := b.exec("ROLLBACK"); err != nil || st != pg.TxIdle {
			return false
		}
	}
	if st, err := b.exec("DISCARD ALL"); err != nil || st != pg.TxIdle {
		return false
	}
	clear(b.prepared)
	b.unnamed = nil
	if initQuery != "" {
		if st, err := b.exec(initQuery); err != nil || st != pg.TxIdle {
			return false
		}
	}
	b.settings = b.pool.defaults
	return true
}

// poolPassword reads the pool's secret now (so a rotated password is used
// for new connections), falling back to the last one that worked.
func (p *proxyState) password(pl *pool) (string, error) {
	spec := p.spec()
	pl.t.mu.Lock()
	arn := pl.secretArn
	pl.t.mu.Unlock()
	v, err := p.m.cfg.Secrets.CurrentValue(spec.Account, spec.Region, arn)
	if err == nil {
		var pw string
		if _, pw, err = secrets.ParseCredentials(v); err == nil {
			return pw, nil
		}
	}
	pl.t.mu.Lock()
	last := pl.password
	pl.t.mu.Unlock()
	if last != "" {
		return last, nil
	}
	return "", fmt.Errorf("cannot read secret %s: %v", arn, err)
}
