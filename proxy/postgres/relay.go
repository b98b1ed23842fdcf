package postgres

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
)

// pend is one request forwarded to (or answered in place of) the backend
// whose response has not been relayed yet. The queue mirrors the server's
// processing order, so responses can be matched to requests: injected
// Parse messages are swallowed, synthetic completions are emitted in their
// place, and after an error the entries the server skips are dropped.
type pend struct {
	kind    pendKind
	st      *stmt  // Parse/Close entries: the statement concerned
	name    string // client Parse/Close entries: the client's statement name
	unnamed bool   // Parse entries: into the unnamed statement
}

// pendKind says what response ends a pending request.
type pendKind uint8

// Pending request kinds.
const (
	pkQuery      pendKind = iota + 1 // Query: ends at ReadyForQuery
	pkSync                           // Sync: ends at ReadyForQuery
	pkFunc                           // FunctionCall: ends at ReadyForQuery
	pkParse                          // client Parse: ParseComplete forwarded
	pkParseInj                       // proxy-injected Parse: ParseComplete swallowed
	pkBind                           // BindComplete
	pkClose                          // CloseComplete
	pkDescS                          // ParameterDescription, then RowDescription/NoData
	pkDescP                          // RowDescription/NoData
	pkExec                           // CommandComplete/EmptyQueryResponse/PortalSuspended
	pkCloseInj                       // proxy-injected Close: CloseComplete swallowed
	pkSynParse                       // answered here: ParseComplete
	pkSynClose                       // answered here: CloseComplete
	pkParseDup                       // client Parse of a name in use, sent as a Parse of its server name: 42P05 renamed
	pkSynDealloc                     // answered here: a Query's DEALLOCATE of a statement the backend lacks
)

// flushAfter is how many bytes of a client's batch the proxy forwards
// before it asks the server for the responses so far (an injected Flush)
// and relays them. Without it a client that pipelines megabytes without
// Sync while reading in the background (pgx's batches) would fill the
// server's output buffers and stall, because responses are otherwise
// relayed only at Sync or Flush.
const flushAfter = 64 << 10

func (k pendKind) endsAtZ() bool { return k == pkQuery || k == pkSync || k == pkFunc }

// backendError and clientError tell which side of a relay failed.
type backendError struct{ error }
type clientError struct{ error }

func (e backendError) Unwrap() error { return e.error }
func (e clientError) Unwrap() error  { return e.error }

// loop is the session's command phase.
func (s *session) loop() {
	idle := s.spec.IdleClientTimeout
	lifeEnd, maxAge := s.c.MaxAge()
	em := s.em
	for {
		var deadline, grace time.Time
		if !s.cr.PeekReady() {
			// About to wait for the client: what it sent so far goes to
			// the server now, so the server sees the client's own timing
			// (statement_timeout runs from the first message of an
			// extended-protocol request, not from its Sync).
			if s.b != nil && s.b.w.Buffered() > 0 {
				if err := s.b.w.Flush(); err != nil {
					s.backendLost(err)
					return
				}
			}
			if idle > 0 {
				deadline = time.Now().Add(idle)
			}
			// The maximum client life ends a session only between
			// transactions.
			if (s.b == nil || s.lastZ == wire.TxIdle) && (deadline.IsZero() || lifeEnd.Before(deadline)) {
				deadline = lifeEnd
			}
			rd := deadline
			if s.pinned && s.b != nil && len(s.pending) == 0 && s.lastZ != 0 {
				if s.b.r.Buffered() > 0 {
					// Sent right after the last response.
					if !s.relayAsync() {
						return
					}
					continue
				}
				// Watch the backend only for a client that does not come
				// back at once: most send their next request within
				// microseconds, and a watch costs a goroutine and two
				// deadline changes.
				grace = time.Now().Add(watchAfter)
				if rd.IsZero() || grace.Before(rd) {
					rd = grace
				} else {
					grace = time.Time{}
				}
			}
			s.conn.SetReadDeadline(rd)
			// A failover's wake-up may have been overwritten just now.
			if s.b != nil && s.evicted() {
				return
			}
		}
		typ, n, err := s.cr.Header()
		if !grace.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) && s.c.Evicted() == nil {
			s.cr.ClearTimeout()
			s.conn.SetReadDeadline(deadline)
			if s.evicted() {
				return
			}
			s.startWatch()
			typ, n, err = s.cr.Header()
		}
		fired := s.stopWatch()
		if !deadline.IsZero() || !grace.IsZero() || fired {
			s.conn.SetReadDeadline(time.Time{})
		}
		if err != nil {
			if s.b != nil && s.evicted() {
				return
			}
			if fired && errors.Is(err, os.ErrDeadlineExceeded) {
				// The backend has something to say while the client waits.
				s.cr.ClearTimeout()
				if !s.relayAsync() {
					return
				}
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && !s.killed() {
				if deadline.Equal(lifeEnd) {
					s.sendFatal("57P01", "terminating connection because it reached RDS Proxy's maximum client connection life (%s)", maxAge)
				} else {
					s.sendFatal("57P05", "terminating connection because the client was idle for longer than the proxy's IdleClientTimeout (%s)", idle)
				}
			}
			return
		}
		switch typ {
		case wire.MsgTerminate:
			return
		case wire.MsgCopyData, wire.MsgCopyDone, wire.MsgCopyFail:
			// Outside COPY the server ignores these too.
			if s.cr.Skip(n) != nil {
				return
			}
			continue
		}
		body, err := s.cr.Body(n)
		if err != nil {
			return
		}
		if !s.inBatch {
			s.inBatch = true
			s.reqStart = time.Now()
			s.writer()
		}
		if s.b == nil {
			if err := s.acquire(); err != nil {
				if s.killed() || s.broken || s.evicted() {
					return
				}
				if s.rejectRequest(typ, err) != nil {
					return
				}
				continue
			}
		}
		err = s.handle(typ, body)
		if err == nil && s.sent >= flushAfter && len(s.pending) > 0 && !s.skipping {
			s.forward(wire.MsgFlush, nil)
			err = s.flushAndRelay()
		}
		if err != nil {
			if s.evicted() {
				return
			}
			var be backendError
			if errors.As(err, &be) {
				s.backendLost(be.error)
			} else {
				var ce clientError
				if errors.As(err, &ce) && len(s.pending) > 0 {
					s.broken = true
				}
			}
			return
		}
		if s.fatal {
			return
		}
		if len(s.pending) == 0 && s.lastZ != 0 {
			s.inBatch = false
			em.QueryResponseLatency.Observe(time.Since(s.reqStart))
			if s.lastZ == wire.TxIdle && !s.pinned {
				s.releaseBackend(true)
			}
			s.releaseBuffers()
		}
	}
}

// backendLost ends the session after its server connection failed: the
// client gets FATAL 08006 unless the server's own FATAL reached it.
func (s *session) backendLost(err error) {
	if s.evicted() {
		return
	}
	s.broken = true
	if !s.fatal && !s.killed() && !s.midMessage {
		s.sendFatal("08006", "Request returned an error: the database connection was lost (%v).", err)
	}
}

// rejectRequest answers a request that could not get a backend: an
// ErrorResponse, then (after skipping to the client's Sync for the extended
// protocol) ReadyForQuery 'I'.
func (s *session) rejectRequest(typ byte, err error) error {
	s.inBatch = false
	defer s.releaseBuffers()
	e := &wire.Error{Severity: "ERROR", Code: errorCode(err), Message: errorText(err)}
	s.cw.Write(wire.AppendErrorResponse(nil, e))
	for typ != wire.MsgQuery && typ != wire.MsgSync && typ != wire.MsgFunctionCall {
		if err := s.cw.Flush(); err != nil {
			return err
		}
		var n int
		var rerr error
		typ, n, rerr = s.cr.Header()
		if rerr != nil {
			return rerr
		}
		if typ == wire.MsgTerminate {
			return io.EOF
		}
		if rerr = s.cr.Skip(n); rerr != nil {
			return rerr
		}
	}
	s.cw.Write(wire.AppendReadyForQuery(nil, wire.TxIdle))
	return s.cw.Flush()
}

// handle processes one client message on the held backend.
func (s *session) handle(typ byte, body []byte) error {
	b := s.b
	em := s.em
	if s.skipping {
		// After an error in the extended protocol the server ignores
		// everything up to Sync; so does the proxy.
		switch typ {
		case wire.MsgSync:
		case wire.MsgFlush:
			if len(s.pending) == 0 {
				return nil
			}
		default:
			return nil
		}
	}
	if s.lastZ == wire.TxIdle {
		// Between transactions: no portal depends on a statement.
		if d := s.regs.dead.Load(); b.swept != d {
			s.closeUnneeded(d)
		}
		if len(b.prepared) > s.p.cfg.PreparedPerConnection {
			s.trimPrepared()
		}
	}
	switch typ {
	case wire.MsgQuery:
		q, err := wire.ParseQuery(body)
		if err != nil {
			return s.protocolViolation("malformed Query message")
		}
		c := wire.Classify(q)
		s.classify(c, len(q))
		s.debugSQL(q)
		em.QueryRequests.Add(1)
		s.countTLS()
		b.unnamed = nil
		s.unnamed = nil
		p := pend{kind: pkQuery}
		if c&wire.ClassPrepare != 0 {
			if sql, st, name, held := s.deallocate(q, false); st != nil {
				if !held && len(s.pending) == 0 && (s.lastZ == wire.TxIdle || s.lastZ == wire.TxInTx) {
					// Nothing to deallocate on this backend: the client's
					// statement is gone once the session forgets it.
					s.pending = append(s.pending, pend{kind: pkSynDealloc})
					return s.flushAndRelay()
				}
				body = wire.AppendQuery(s.out[:0], sql)[5:]
				p.st, p.name = st, name
			}
		}
		s.forward(typ, body)
		s.pending = append(s.pending, p)
		return s.flushAndRelay()
	case wire.MsgParse:
		return s.handleParse(body)
	case wire.MsgBind:
		portal, name, rest, err := wire.ParseBind(body)
		if err != nil {
			return s.protocolViolation("malformed Bind message")
		}
		if len(name) == 0 {
			s.ensureUnnamed()
			s.forward(typ, body)
		} else if st := s.stmts[string(name)]; st != nil {
			s.ensure(st)
			s.out = wire.AppendBind(s.out[:0], string(portal), st.name, rest)
			s.send(s.out)
		} else {
			s.forward(typ, body)
		}
		s.pending = append(s.pending, pend{kind: pkBind})
	case wire.MsgDescribe:
		kind, name, err := wire.ParseDescribeClose(body)
		if err != nil {
			return s.protocolViolation("malformed Describe message")
		}
		if kind == 'P' {
			s.forward(typ, body)
			s.pending = append(s.pending, pend{kind: pkDescP})
			break
		}
		if len(name) == 0 {
			s.ensureUnnamed()
			s.forward(typ, body)
		} else if st := s.stmts[string(name)]; st != nil {
			s.ensure(st)
			s.send(wire.AppendDescribeClose(s.out[:0], wire.MsgDescribe, 'S', st.name))
		} else {
			s.forward(typ, body)
		}
		s.pending = append(s.pending, pend{kind: pkDescS})
	case wire.MsgClose:
		kind, name, err := wire.ParseDescribeClose(body)
		if err != nil {
			return s.protocolViolation("malformed Close message")
		}
		if kind == 'S' && len(name) > 0 {
			if st, ok := s.stmts[string(name)]; ok {
				// Answered here; the backend keeps its copy for other
				// clients, or closes it at its next request if none needs
				// it (closeUnneeded).
				delete(s.stmts, string(name))
				s.regs.release(st, true)
				s.pending = append(s.pending, pend{kind: pkSynClose, st: st, name: string(name)})
				break
			}
		}
		if kind == 'S' {
			s.unnamed = nil
			b.unnamed = nil
		}
		s.forward(typ, body)
		s.pending = append(s.pending, pend{kind: pkClose})
	case wire.MsgExecute:
		em.QueryRequests.Add(1)
		s.countTLS()
		s.forward(typ, body)
		s.pending = append(s.pending, pend{kind: pkExec})
	case wire.MsgSync:
		s.skipping = false
		s.forward(typ, body)
		s.pending = append(s.pending, pend{kind: pkSync})
		return s.flushAndRelay()
	case wire.MsgFlush:
		s.forward(typ, body)
		return s.flushAndRelay()
	case wire.MsgFunctionCall:
		em.QueryRequests.Add(1)
		s.forward(typ, body)
		s.pending = append(s.pending, pend{kind: pkFunc})
		return s.flushAndRelay()
	default:
		return s.protocolViolation(fmt.Sprintf("invalid frontend message type %d", typ))
	}
	return nil
}

func (s *session) countTLS() {
	if s.tls {
		s.em.QueryRequestsTLS.Add(1)
	} else {
		s.em.QueryRequestsNoTLS.Add(1)
	}
}

func (s *session) protocolViolation(msg string) error {
	return clientError{s.sendFatal("08P01", "%s", msg)}
}

func (s *session) debugSQL(q []byte) {
	if s.spec.DebugLogging {
		s.c.Logger().Info("query", "dbConnection", s.b.ID(), "sql", string(q))
	}
}

// forward queues a client message for the backend unchanged.
func (s *session) forward(typ byte, body []byte) {
	s.lastZ = 0
	s.sent += 5 + len(body)
	wire.WriteMessage(s.b.w, typ, body)
}

// send queues a message built by the proxy for the backend.
func (s *session) send(msg []byte) {
	s.lastZ = 0
	s.sent += len(msg)
	s.b.w.Write(msg)
}

// flushAndRelay sends the queued messages and relays the responses.
func (s *session) flushAndRelay() error {
	s.dbStart = time.Now()
	s.sent = 0
	if err := s.b.w.Flush(); err != nil {
		return backendError{err}
	}
	err := s.relay()
	if ferr := s.cw.Flush(); ferr != nil && err == nil {
		err = clientError{ferr}
	}
	return err
}

// relay reads server messages and forwards them to the client until every
// pending request has been answered. Row data and COPY data are streamed;
// only ReadyForQuery, ErrorResponse, ParameterStatus and the completion
// messages the queue needs are looked at.
func (s *session) relay() error {
	b := s.b
	for {
		for len(s.pending) > 0 {
			switch s.pending[0].kind {
			case pkSynParse:
				s.cw.Write(wire.AppendEmpty(s.out[:0], wire.MsgParseComplete))
			case pkSynClose:
				s.cw.Write(wire.AppendEmpty(s.out[:0], wire.MsgCloseComplete))
			case pkSynDealloc:
				s.cw.Write(wire.AppendCommandComplete(s.out[:0], "DEALLOCATE"))
				s.cw.Write(wire.AppendReadyForQuery(s.out[:0], s.lastZ))
			default:
				goto read
			}
			s.pop()
		}
		return nil
	read:
		if s.copying {
			ended, err := s.copyIn()
			if err != nil {
				return err
			}
			if ended {
				s.copying = false
				if s.copyExtended {
					// COPY FROM STDIN run by Execute: the server ignores
					// the Sync that followed in the batch, and answers
					// CopyDone or CopyFail only at the client's next Sync
					// or Flush, so the session goes back to reading the
					// client.
					return nil
				}
			}
		}
		typ, n, err := b.r.Header()
		if err != nil {
			return backendError{err}
		}
		switch typ {
		case wire.MsgDataRow, wire.MsgCopyData:
			if err := s.stream(typ, n); err != nil {
				return err
			}
			continue
		}
		body, err := b.r.Body(n)
		if err != nil {
			return backendError{err}
		}
		head := s.pending[0].kind
		switch typ {
		case wire.MsgReadyForQuery:
			if len(body) != 1 {
				return backendError{wire.ErrMalformed}
			}
			s.noteZ(body[0])
			s.copying = false
			for len(s.pending) > 0 {
				k := s.pending[0].kind
				s.pop()
				if k.endsAtZ() {
					break
				}
			}
		case wire.MsgErrorResponse:
			if isFatal(body) {
				s.fatal = true
			}
			if head == pkParseDup {
				e := wire.ParseErrorResponse(body)
				if e.Code == "42P05" {
					e.Message = `prepared statement "` + s.pending[0].name + `" already exists`
					body = wire.AppendErrorResponse(s.out[:0], e)[5:]
				}
			}
			if p := s.pending[0]; p.kind == pkQuery && p.st != nil {
				// The DEALLOCATE failed: the statement is still there.
				s.stmts[p.name] = p.st
				s.regs.retain(p.st)
				b.touch(p.st)
			}
			if staleStatementError(wire.ParseErrorResponse(body)) {
				// A schema change the proxy did not see (see stmtRegistry).
				s.regs.schemaChanged()
			}
			// A failed COPY is over for the server, which drops the COPY
			// messages still coming (answering ReadyForQuery now, or at
			// the client's Sync if Execute ran it); so does the session.
			s.copying = false
			if !head.endsAtZ() {
				s.dropUntilSync()
				// Nothing left to answer before the client's Sync: the
				// server now skips until then, and the session with it.
				s.skipping = len(s.pending) == 0
			}
		case wire.MsgParameterStatus:
			s.noteParam(body)
		case wire.MsgParseComplete:
			if head == pkParseInj {
				s.pop()
				continue // swallowed
			}
			if head == pkParse || head == pkParseDup {
				s.pop()
			}
		case wire.MsgBindComplete:
			if head == pkBind {
				s.pop()
			}
		case wire.MsgCloseComplete:
			if head == pkCloseInj {
				s.pop()
				continue // swallowed
			}
			if head == pkClose {
				s.pop()
			}
		case wire.MsgRowDescription, wire.MsgNoData:
			if head == pkDescS || head == pkDescP {
				s.pop()
			}
		case wire.MsgCommandComplete, wire.MsgEmptyQuery, wire.MsgPortalSuspended:
			if head == pkExec {
				s.pop()
			}
		case wire.MsgCopyBothResponse:
			return backendError{errors.New("COPY BOTH (replication) is not supported")}
		}
		if err := wire.WriteMessage(s.cw, typ, body); err != nil {
			return clientError{err}
		}
		if typ == wire.MsgCopyInResponse {
			s.copying, s.copyExtended = true, head == pkExec
			if s.copyExtended {
				s.pending = slices.DeleteFunc(s.pending, func(p pend) bool { return p.kind == pkSync })
			}
		}
	}
}

func (s *session) pop() {
	copy(s.pending, s.pending[1:])
	s.pending = s.pending[:len(s.pending)-1]
}

// dropUntilSync drops the entries the server skips after an error in the
// extended protocol: everything up to the next Sync, Query messages
// included. Statements that were to be prepared by skipped Parse messages
// are not on the backend, and the client's skipped Parse and Close of named
// statements did not happen; they are undone newest first, so that a Close
// after a Parse of the same name ends with the name as it was.
func (s *session) dropUntilSync() {
	b := s.b
	k := 0
	for k < len(s.pending) && s.pending[k].kind != pkSync {
		k++
	}
	for i := k - 1; i >= 0; i-- {
		p := s.pending[i]
		switch p.kind {
		case pkParse, pkParseInj:
			if p.st != nil {
				delete(b.prepared, p.st.id)
			}
			if p.unnamed {
				b.unnamed = nil
			}
		}
		switch p.kind {
		case pkParse, pkSynParse:
			if p.name != "" && s.stmts[p.name] == p.st {
				delete(s.stmts, p.name)
				s.regs.release(p.st, false)
			}
		case pkSynClose:
			s.stmts[p.name] = p.st
			s.regs.retain(p.st)
		}
	}
	s.pending = append(s.pending[:0], s.pending[k:]...)
}

// noteZ records a ReadyForQuery status.
func (s *session) noteZ(st byte) {
	b := s.b
	s.lastZ = st
	if st == wire.TxIdle && s.ddl {
		// The DDL is committed (or rolled back): statements prepared
		// while it was under way may not fit.
		s.ddl = false
		s.regs.schemaChanged()
	}
	b.InTransaction(st != wire.TxIdle)
	b.tm.QueryDatabaseResponseLatency.Observe(time.Since(s.dbStart))
}

func isFatal(body []byte) bool {
	e := wire.ParseErrorResponse(body)
	return e.Severity == "FATAL" || e.Severity == "PANIC"
}

// stream forwards a message body without buffering all of it.
func (s *session) stream(typ byte, n int) error {
	r := s.b.r
	if n <= 32<<10 {
		// Read whole before any of it goes to the client, so that a
		// backend lost meanwhile leaves the client between messages (its
		// FATAL then reads as one).
		body, err := r.Body(n)
		if err != nil {
			return backendError{err}
		}
		if err := wire.WriteHeader(s.cw, typ, n); err != nil {
			return clientError{err}
		}
		if _, err := s.cw.Write(body); err != nil {
			return clientError{err}
		}
		return nil
	}
	if err := wire.WriteHeader(s.cw, typ, n); err != nil {
		return clientError{err}
	}
	s.midMessage = true // until the whole body went; a failure ends the session
	for n > 0 {
		chunk := min(n, 32<<10)
		body, err := r.Body(chunk)
		if err != nil {
			return backendError{err}
		}
		if _, err := s.cw.Write(body); err != nil {
			return clientError{err}
		}
		n -= chunk
	}
	s.midMessage = false
	return nil
}

// copyIn relays the client's COPY data to the server until CopyDone or
// CopyFail (ended), or until the server has something to say while the
// client streams or pauses (an ErrorResponse that should stop it, a
// notice): the relay forwards that and comes back. A watch (startWatch)
// runs for the whole COPY, one goroutine that stays parked while the
// server is silent; its wake-up interrupts whatever client read is under
// way, which then goes on, and the session returns to the relay at the
// next message boundary. Flush and Sync during COPY IN are ignored, as the
// server does.
func (s *session) copyIn() (ended bool, err error) {
	if err := s.cw.Flush(); err != nil {
		return false, clientError{err}
	}
	b := s.b
	if b.r.Buffered() > 0 {
		return false, nil // the server has spoken already
	}
	s.startWatch()
	defer func() {
		if s.watch != nil && s.stopWatch() {
			// It fired after all: undo its wake-up.
			s.conn.SetReadDeadline(time.Time{})
			s.cr.ClearTimeout()
		}
	}()
	for {
		if w := s.watch; w == nil || w.fired.Load() {
			if w != nil {
				s.wake()
			}
			return false, nil
		}
		if !s.cr.PeekReady() {
			if err := b.w.Flush(); err != nil {
				return false, backendError{err}
			}
		}
		typ, n, err := s.cr.Header()
		if err != nil {
			if s.woken(err) {
				continue
			}
			return false, clientError{err}
		}
		switch typ {
		case wire.MsgCopyData:
			wire.WriteHeader(b.w, typ, n)
			for n > 0 {
				chunk := min(n, 16<<10)
				body, err := s.cr.Body(chunk)
				if err != nil {
					if s.woken(err) {
						continue
					}
					return false, clientError{err}
				}
				if _, err := b.w.Write(body); err != nil {
					return false, backendError{err}
				}
				n -= chunk
			}
		case wire.MsgCopyDone, wire.MsgCopyFail:
			body, err := s.cr.Body(n)
			for err != nil && s.woken(err) {
				body, err = s.cr.Body(n)
			}
			if err != nil {
				return false, clientError{err}
			}
			wire.WriteMessage(b.w, typ, body)
			if err := b.w.Flush(); err != nil {
				return false, backendError{err}
			}
			return true, nil
		case wire.MsgFlush, wire.MsgSync:
			if err := s.cr.Skip(n); err != nil {
				return false, clientError{err}
			}
		default:
			return false, clientError{fmt.Errorf("unexpected message %q during COPY IN", typ)}
		}
	}
}
