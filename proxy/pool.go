package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Pools: each target has a connection budget (MaxConnectionsPercent of the
// server's max_connections, learned with the first connection) shared by
// the pools of its (user, database, variant) keys; borrowers take an idle
// connection (checked for liveness), else open one within the budget,
// else wait in FIFO order up to their deadline. Returned connections go
// back to their pool's idle list; the reaper closes those idle too long
// beyond MaxIdleConnectionsPercent, and old ones.

// target is one database behind a proxy: its address, the pools of its
// (user, database) pairs, and the connection budget they share.
type target struct {
	p    *proxyState
	spec TargetSpec
	addr string

	mu        sync.Mutex
	pools     map[PoolKey]*pool
	open      int // connections open or being dialled
	idleCount int // idle connections over all pools
	serverMax int // the server's max_connections; 0 until first connect
	// busyCap caps the budget until busyUntil: the connections the proxy
	// held when the server last refused one for lack of slots.
	busyCap   int
	busyUntil time.Time
	maxPct    int
	idlePct   int
	waiters   []*waiter
	retired   bool
	gone      atomic.Bool // retired, read without t.mu (Borrow)

	health  atomic.Pointer[targetHealth]
	metrics TargetMetrics
}

// pool holds the idle connections of one key of a target.
type pool struct {
	t         *target
	key       PoolKey
	secretArn string    // under t.mu
	idle      []*Pooled // under t.mu; LIFO
	password  string    // last password that worked (under t.mu)
	state     local     // the protocol's (Pooled.PoolState)
}

// waiter is a borrower waiting for a connection of pool.
type waiter struct {
	pool *pool
	ch   chan grant // buffered 1
}

// grant hands a waiter either an idle connection or a reserved slot to dial.
type grant struct {
	b    *Pooled
	slot bool
}

func newTarget(p *proxyState, spec TargetSpec) *target {
	t := &target{p: p, spec: spec, addr: joinHostPort(spec.Host, spec.Port), pools: map[PoolKey]*pool{}}
	t.health.Store(&targetHealth{State: healthRegistering})
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
	c := max(1, t.serverMax*t.maxPct/100)
	if !t.liftLocked().IsZero() {
		return min(c, t.busyCap)
	}
	return c
}

// busyHold is how long a server's "too many connections" caps the budget
// at what the proxy held then; after it, a new borrow may try again.
const busyHold = time.Second

func (t *target) idleCap() int {
	if t.serverMax == 0 {
		return 1
	}
	return t.serverMax * t.idlePct / 100
}

// getPool returns the pool for key, creating it; its connections are
// opened with secretArn's password.
func (t *target) getPool(key PoolKey, secretArn string) *pool {
	t.mu.Lock()
	defer t.mu.Unlock()
	pl := t.pools[key]
	if pl == nil {
		pl = &pool{t: t, key: key}
		t.pools[key] = pl
	}
	pl.secretArn = secretArn
	return pl
}

// borrow takes a connection of pl: prefer if it is idle there, else the
// most recently returned idle one (either checked for liveness), else a
// new one if the target's budget allows, else it waits in FIFO order until
// a connection is returned or deadline passes. once: a dial that fails
// with an error retrying could cure is not retried (errDialOnce).
func (t *target) borrow(ctx context.Context, pl *pool, deadline time.Time, prefer *Pooled, once bool) (*Pooled, error) {
	t.metrics.DatabaseConnectionRequests.Add(1)
	for {
		t.mu.Lock()
		if t.retired {
			t.mu.Unlock()
			return nil, errRetired
		}
		if n := len(pl.idle); n > 0 {
			i := n - 1
			if prefer != nil && prefer.pl == pl {
				for j, b := range pl.idle {
					if b == prefer {
						i = j
						break
					}
				}
			}
			b := pl.idle[i]
			copy(pl.idle[i:], pl.idle[i+1:])
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
		var victim *Pooled
		if t.open >= t.capacity() && t.idleCount > 0 {
			victim = t.takeIdleLocked() // make room from another pool
		}
		if victim != nil || t.open < t.capacity() {
			if victim == nil {
				t.open++
			}
			t.mu.Unlock()
			if victim != nil {
				victim.conn.Close()
				t.metrics.DatabaseConnections.Add(-1)
			}
			b, err := t.dialSlot(ctx, pl, deadline, once)
			if err == errBusy {
				continue // wait for a connection to come back
			}
			return b, err
		}
		w := &waiter{pool: pl, ch: make(chan grant, 1)}
		t.waiters = append(t.waiters, w)
		lift := t.liftLocked()
		t.mu.Unlock()
		g, err := t.wait(ctx, w, deadline, lift)
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
		b, err := t.dialSlot(ctx, pl, deadline, once)
		if err == errBusy {
			continue
		}
		return b, err
	}
}

// wait waits for w's grant until deadline. lift, if not zero, is when a
// server's refusal stops capping the budget (busyCap): nothing else would
// hand out the slots the budget then has again, so the waiter does
// (grantSlotsLocked, first come first served) and waits on.
func (t *target) wait(ctx context.Context, w *waiter, deadline, lift time.Time) (grant, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var liftC <-chan time.Time
	var lt *time.Timer
	if !lift.IsZero() {
		lt = time.NewTimer(time.Until(lift))
		defer lt.Stop()
		liftC = lt.C
	}
	var err error
	for err == nil {
		select {
		case g := <-w.ch:
			return g, nil
		case <-timer.C:
			err = errBorrowTimeout
		case <-ctx.Done():
			err = ctx.Err()
		case <-liftC:
			t.mu.Lock()
			t.grantSlotsLocked()
			lift = t.liftLocked()
			t.mu.Unlock()
			liftC = nil
			if !lift.IsZero() { // capped again meanwhile
				lt.Reset(time.Until(lift))
				liftC = lt.C
			}
		}
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
func (t *target) takeIdleLocked() *Pooled {
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
// retrying until deadline while the database is unreachable (once: not
// retrying, errDialOnce).
func (t *target) dialSlot(ctx context.Context, pl *pool, deadline time.Time, once bool) (*Pooled, error) {
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
		if busyDialError(err) && t.capAtBusy() {
			t.freeSlot()
			return nil, errBusy
		}
		final := finalDialError(err)
		if once && !final && ctx.Err() == nil {
			t.freeSlot()
			return nil, errDialOnce
		}
		if final || ctx.Err() != nil || time.Now().Add(backoff).After(deadline) {
			t.freeSlot()
			if !final && ctx.Err() == nil {
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

// capAtBusy caps the budget at the connections the proxy holds besides
// the slot whose dial the server refused for lack of slots, and reports
// whether it holds any: then the borrower waits for one of them;
// otherwise it retries the dial until its deadline, as for a server that
// does not answer.
func (t *target) capAtBusy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	held := t.open - 1
	if held > 0 {
		t.busyCap, t.busyUntil = held, time.Now().Add(busyHold)
	}
	return held > 0
}

// liftLocked is when the cap a server's refusal put on the budget ends,
// zero when there is none (t.mu held).
func (t *target) liftLocked() time.Time {
	if t.busyCap > 0 && time.Now().Before(t.busyUntil) {
		return t.busyUntil
	}
	return time.Time{}
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
func (t *target) release(b *Pooled, reusable bool) {
	now := time.Now()
	t.mu.Lock()
	if !reusable || t.retired {
		t.mu.Unlock()
		t.discard(b)
		return
	}
	if len(t.waiters) > 0 {
		w := t.waiters[0]
		t.waiters = t.waiters[1:]
		if w.pool == b.pl {
			t.mu.Unlock()
			w.ch <- grant{b: b}
			return
		}
		t.mu.Unlock()
		b.conn.Close() // its slot goes to the waiter of another pool
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
	b.pl.idle = append(b.pl.idle, b)
	t.idleCount++
	t.mu.Unlock()
}

// reap closes the idle connections RDS Proxy would close: those unused
// for lim.IdleConnectionAfter beyond MaxIdleConnectionsPercent of the
// server's max_connections, least recently used first, and any older than
// lim.ConnectionMaxAge.
func (t *target) reap(lim Limits) {
	now := time.Now()
	var victims []*Pooled
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
func (t *target) discard(b *Pooled) {
	b.conn.Close()
	t.metrics.DatabaseConnections.Add(-1)
	t.freeSlot()
}

// retire stops the target: idle connections close now, borrowed ones when
// returned, waiters get errRetired by retrying.
func (t *target) retire() {
	t.mu.Lock()
	t.retired = true
	t.gone.Store(true)
	var idle []*Pooled
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
		b.conn.Close()
		t.metrics.DatabaseConnections.Add(-1)
	}
	for _, w := range ws {
		w.ch <- grant{slot: true}
	}
}

// dial opens and authenticates one connection for pl with the proxy's
// protocol, and records the outcome in the target's health and metrics.
func (t *target) dial(ctx context.Context, pl *pool) (*Pooled, error) {
	p := t.p
	spec := p.spec()
	password, err := p.password(pl)
	if err != nil {
		t.dialFailed(err)
		return nil, err
	}
	t.mu.Lock()
	retired, needMax := t.retired, t.serverMax == 0
	t.mu.Unlock()
	if retired {
		return nil, errRetired
	}
	if spec.RequireTLS {
		t.metrics.DatabaseConnectionRequestsWithTLS.Add(1)
	}
	pd := &Pooled{t: t, pl: pl, id: p.m.connSeq.Add(1)}
	sc, err := p.proto.Dial(ctx, t.dialRequest(pl, spec, password, needMax, pd))
	if err == nil && (sc == nil || sc.pooled() != pd || pd.nc == nil) {
		if sc != nil {
			sc.Close()
		}
		err = errors.New("proxy: the protocol's Dial returned a connection without its DialRequest's Pooled (embedded and Init called)")
	}
	if err != nil {
		t.metrics.DatabaseConnectionsSetupFailed.Add(1)
		t.dialFailed(err)
		return nil, err
	}
	pd.conn, pd.born = sc, time.Now()
	t.metrics.DatabaseConnectionsSetupSucceeded.Add(1)
	t.metrics.DatabaseConnections.Add(1)
	t.setHealth(healthAvailable, "", "")
	t.mu.Lock()
	pl.password = password
	if needMax && pd.maxConns > 0 && t.serverMax == 0 {
		t.serverMax = pd.maxConns
		t.metrics.MaxDatabaseConnectionsAllowed.Store(int64(t.capacity()))
		t.grantSlotsLocked()
	}
	t.mu.Unlock()
	return pd, nil
}

// alive reports whether an idle connection still looks usable: its socket
// has nothing to read (an idle server sends nothing unless it is going
// away, e.g. a FATAL after pg_terminate_backend) and no EOF. It never
// blocks.
func (b *Pooled) alive() bool { return SocketIdle(b.nc) }
