package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
)

// session is one client connection. A single goroutine runs it: the
// handshake, then the loop that reads client messages, borrows a backend at
// the first message of a transaction, forwards, relays the responses inline
// and returns the backend at ReadyForQuery 'I'.
type session struct {
	p    *Protocol
	c    *proxy.Client
	em   *proxy.EndpointMetrics
	regs *stmtRegistry // the proxy's

	raw  net.Conn // the accepted connection (c.Conn())
	conn net.Conn // raw, or its TLS wrapper
	cr   *wire.Reader
	cw   *bufio.Writer
	tls  bool

	spec    *proxy.ProxySpec // as of login
	user    string
	db      string
	want    settingValues // settings from the startup packet
	wantSet [len(trackedSettings)]bool
	seen    map[string]string // ParameterStatus values the client knows
	seenSet *paramSet         // a set known to equal seen, if any

	pid    uint32
	secret [4]byte

	b *backend // held (the core's Client guards it against cancel and kill)

	pinned       bool
	stmts        map[string]*stmt
	unnamed      *stmt
	pending      []pend
	lastZ        byte // last ReadyForQuery status from the held backend; 0 unknown
	sent         int  // bytes forwarded since the last flush to the backend
	skipping     bool // after an extended-protocol error, until the client's Sync
	ddl          bool // DDL ran in the current transaction
	copying      bool // in COPY FROM STDIN, until the client's CopyDone or CopyFail
	copyExtended bool // that COPY was run by Execute
	broken       bool // the held backend is mid-message or gone
	fatal        bool // a FATAL from the server was forwarded
	midMessage   bool // a large message is being streamed to the client: nothing else may be sent

	watch *watch // while a pinned session waits for its client

	inBatch  bool
	reqStart time.Time
	dbStart  time.Time
	out      []byte
}

func newSession(p *Protocol, c *proxy.Client) *session {
	regs := c.ProxyState(func() any { return &stmtRegistry{m: map[string]*stmt{}} }).(*stmtRegistry)
	return &session{p: p, c: c, em: c.Metrics(), regs: regs, raw: c.Conn(), conn: c.Conn(), stmts: map[string]*stmt{}}
}

// killed reports whether the core ended the session (endpoint removed,
// proxy deleted, shutdown).
func (s *session) killed() bool { return s.c.Context().Err() != nil }

// Failover texts: the FATAL a session gets when the core takes its
// server connection away because the target stopped serving the endpoint
// (proxy.Client.Evicted). AWS documents that such sessions are closed,
// not the text; 57P01 (admin_shutdown) is what PostgreSQL itself sends
// when a server ends a connection under a session, which drivers and
// poolers take as "reconnect".
const (
	failoverCode       = "57P01"
	failoverPinnedText = "terminating connection because of a failover: the session was pinned to a database connection of a DB instance that no longer serves this proxy endpoint"
	failoverTxText     = "terminating connection because of a failover: a transaction or statement was in progress on a DB instance that no longer serves this proxy endpoint"
)

// evicted ends a session whose server connection the core took away at a
// failover, with the FATAL that says so, and reports whether it did.
// Every path that meets an I/O error or timeout asks it first.
func (s *session) evicted() bool {
	if s.c.Evicted() == nil {
		return false
	}
	s.broken = true
	if !s.fatal && !s.killed() && !s.midMessage {
		s.fatal = true
		text := failoverTxText
		if s.pinned {
			text = failoverPinnedText
		}
		s.sendFatal(failoverCode, "%s", text)
	}
	return true
}

// finish returns or closes the held backend and releases the session's
// resources.
func (s *session) finish() {
	if s.watch != nil {
		s.stopWatch()
	}
	if b := s.b; b != nil {
		reusable := false
		switch {
		case s.broken || s.fatal || len(s.pending) > 0 || b.w.Buffered() > 0 || s.c.Evicted() != nil:
			// Nothing more is sent to it: a failover may have taken it.
		case s.pinned:
			reusable = b.cleanup(s.lastZ, s.c.Spec().Pool.InitQuery)
		case s.lastZ != wire.TxIdle:
			b.conn.SetDeadline(time.Now().Add(5 * time.Second))
			st, err := s.lastZ, error(nil)
			if s.skipping {
				// The server ignores everything but Sync after an error.
				st, err = b.roundTrip(wire.AppendEmpty(nil, wire.MsgSync))
			}
			if err == nil && st != wire.TxIdle {
				st, err = b.exec("ROLLBACK")
			}
			b.conn.SetDeadline(time.Time{})
			reusable = err == nil && st == wire.TxIdle
		default:
			reusable = true
		}
		s.releaseBackend(reusable)
	}
	s.pinned = false
	for _, st := range s.stmts {
		s.regs.release(st, false)
	}
	clear(s.stmts)
	if s.pid != 0 {
		s.p.unregisterKey(s)
	}
	s.conn.Close()
	s.raw.Close()
	if s.cw != nil {
		s.putWriter()
	}
	if s.cr != nil {
		s.cr.Reset(nil)
	}
}

// writer returns the session's client writer, taking one from the pool.
func (s *session) writer() *bufio.Writer {
	if s.cw == nil {
		s.cw = s.p.writers.Get().(*bufio.Writer)
		s.cw.Reset(s.conn)
	}
	return s.cw
}

// putWriter returns the client writer to the pool, dropping anything in it.
func (s *session) putWriter() {
	s.cw.Reset(nil)
	s.p.writers.Put(s.cw)
	s.cw = nil
}

// releaseBuffers gives the client-side buffers back while the session
// waits for its client; they are taken again at the next request.
func (s *session) releaseBuffers() {
	if s.cw != nil && s.cw.Buffered() == 0 {
		s.putWriter()
	}
	if s.cr != nil {
		s.cr.Release()
	}
}

// sendFatal writes a FATAL ErrorResponse and returns it as an error.
func (s *session) sendFatal(code, format string, args ...any) error {
	e := &wire.Error{Severity: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
	w := s.writer()
	s.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	w.Write(wire.AppendErrorResponse(nil, e))
	w.Flush()
	return e
}

// borrowTimeoutText is RDS Proxy's PostgreSQL text for a borrow that
// waited ConnectionBorrowTimeout.
const borrowTimeoutText = "Timed-out waiting to acquire database connection."

// noReadersCode and noReadersText answer a request to a READ_ONLY
// endpoint whose proxy has no reader at all (an RDS instance, or an Aurora
// cluster with a writer only): AWS documents that such requests fail with
// an error, not its text. 08004 (sqlserver_rejected_establishment_of_
// sqlconnection): the login itself borrows, so clients meet it at connect.
const (
	noReadersCode = "08004"
	noReadersText = "Request returned an error: this RDS Proxy endpoint is READ_ONLY, and the proxy's target has no reader DB instances (reader endpoints need an Aurora DB cluster with at least one reader)."
)

// errorCode and errorText turn a borrow failure into what the client
// sees: RDS's text for a borrow timeout, the server's code and message
// for a refusal, 08006 for anything else.
func errorCode(err error) string {
	var de *proxy.DialError
	var we *wire.Error
	switch {
	case proxy.KindOf(err) == proxy.BorrowTimeout:
		return "53300"
	case proxy.KindOf(err) == proxy.NoCredentials:
		return "28000"
	case proxy.KindOf(err) == proxy.NoReaders:
		return noReadersCode
	case proxy.KindOf(err) == proxy.Failover:
		return failoverCode
	case errors.As(err, &de):
		return de.Code
	case errors.As(err, &we):
		return we.Code
	}
	return "08006"
}

func errorText(err error) string {
	var de *proxy.DialError
	var we *wire.Error
	switch {
	case proxy.KindOf(err) == proxy.BorrowTimeout:
		return borrowTimeoutText
	case proxy.KindOf(err) == proxy.NoReaders:
		return noReadersText
	case proxy.KindOf(err) == proxy.Failover:
		return failoverTxText
	case errors.As(err, &de):
		return "Request returned an error: " + de.Msg
	case errors.As(err, &we):
		return "Request returned an error: " + we.Message
	}
	return "Request returned an error: " + err.Error()
}

// acquire borrows a backend for the session from the pool of the target
// its endpoint routes to, then makes the backend carry the client's
// settings and tells the client about server parameters that differ from
// what it has seen.
func (s *session) acquire() error {
	sc, err := s.c.Borrow(proxy.PoolKey{User: s.user, Database: s.db}, nil)
	if err != nil {
		return err
	}
	s.b = sc.(*backend)
	s.lastZ = wire.TxIdle
	if err := s.syncSettings(); err != nil {
		s.evicted() // before the release forgets it
		s.releaseBackend(false)
		return err
	}
	return nil
}

// releaseBackend gives the held backend back to its pool (or closes it).
// A backend that ran LOAD, or holds bytes the server sent after its last
// response (a notice, or the FATAL of a terminated backend), is closed.
func (s *session) releaseBackend(reusable bool) {
	b := s.b
	if b == nil {
		return
	}
	s.b = nil
	if s.broken || s.fatal || b.loaded || b.r.Buffered() > 0 {
		reusable = false
	}
	s.broken = false
	s.skipping = false
	s.copying = false
	s.sent = 0
	s.pending = s.pending[:0]
	s.c.Release(b, reusable)
}

// cancelQuery forwards a client's CancelRequest to the backend currently
// serving it, if any. RDS Proxy ignores CancelRequest; the emulator goes
// further. The session's connection cannot be returned (and serve another
// client) until the server has taken the request.
func (s *session) cancelQuery() {
	s.c.Held(func(sc proxy.ServerConn) {
		b, ok := sc.(*backend)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := wire.SendCancel(ctx, b.TargetAddr(), b.pid, b.secret); err != nil {
			s.p.log.Debug("proxy: cancel failed", "err", err)
		}
	})
}

// pin keeps the held backend for the rest of the session.
func (s *session) pin(reason string) {
	if s.pinned {
		return
	}
	s.pinned = true
	s.c.Pin(s.b, reason)
}
