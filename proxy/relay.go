package proxy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rdslocal/rdslocal/proxy/pg"
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
	lifeEnd := s.born.Add(s.m.cfg.Limits.ClientMaxAge)
	em := &s.ep.metrics
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
			if (s.b == nil || s.lastZ == pg.TxIdle) && (deadline.IsZero() || lifeEnd.Before(deadline)) {
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
		}
		typ, n, err := s.cr.Header()
		if !grace.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
			s.cr.ClearTimeout()
			s.conn.SetReadDeadline(deadline)
			s.startWatch()
			typ, n, err = s.cr.Header()
		}
		fired := s.stopWatch()
		if !deadline.IsZero() || !grace.IsZero() || fired {
			s.conn.SetReadDeadline(time.Time{})
		}
		if err != nil {
			if fired && errors.Is(err, os.ErrDeadlineExceeded) {
				// The backend has something to say while the client waits.
				s.cr.ClearTimeout()
				if !s.relayAsync() {
					return
				}
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && !s.killed.Load() {
				if deadline.Equal(lifeEnd) {
					s.sendFatal("57P01", "terminating connection because it reached RDS Proxy's maximum client connection life (%s)", s.m.cfg.Limits.ClientMaxAge)
				} else {
					s.sendFatal("57P05", "terminating connection because the client was idle for longer than the proxy's IdleClientTimeout (%s)", idle)
				}
			}
			return
		}
		switch typ {
		case pg.MsgTerminate:
			return
		case pg.MsgCopyData, pg.MsgCopyDone, pg.MsgCopyFail:
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
				if s.ctx.Err() != nil || s.broken {
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
			s.forward(pg.MsgFlush, nil)
			err = s.flushAndRelay()
		}
		if err != nil {
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
			em.QueryResponseLatency.observe(time.Since(s.reqStart))
			if s.lastZ == pg.TxIdle && !s.pinned {
				s.releaseBackend(true)
			}
			s.releaseBuffers()
		}
	}
}

// watchAfter is how long a pinned session's client may take to send its
// next request before the session watches its backend (startWatch).
const watchAfter = time.Millisecond

// watch is a wait for the held backend to become readable while the
// session waits for its client (see startWatch).
type watch struct {
	done  chan struct{}
	fired atomic.Bool
}

// startWatch makes a session that waits for its client notice what its
// backend sends meanwhile: a pinned session between requests
// (NotificationResponse for its LISTEN, NoticeResponse, ParameterStatus,
// the FATAL of a terminated backend), or a COPY FROM STDIN whose client
// pauses (the server's ErrorResponse). A goroutine waits, without reading,
// until the backend is readable and then wakes the session by expiring the
// client read deadline; the session relays the messages itself. One
// goroutine per wait of those two kinds, none otherwise.
func (s *session) startWatch() {
	w := &watch{done: make(chan struct{})}
	s.watch = w
	conn := s.b.conn
	go func() {
		defer close(w.done)
		if waitReadable(conn) == nil {
			w.fired.Store(true)
			s.conn.SetReadDeadline(time.Now())
		}
	}()
}

// stopWatch ends the session's watch, if any, and reports whether it saw
// the backend readable (the client read deadline is then expired).
func (s *session) stopWatch() bool {
	w := s.watch
	if w == nil {
		return false
	}
	s.watch = nil
	conn := s.b.conn
	conn.SetReadDeadline(time.Now())
	<-w.done
	conn.SetReadDeadline(time.Time{})
	return w.fired.Load()
}

// relayAsync forwards what an idle backend sent on its own: notifications,
// notices, parameter changes, and a FATAL (after which the session ends,
// as the server ends the connection). Anything else breaks the session. It
// reports whether the session goes on.
func (s *session) relayAsync() bool {
	err := s.relayAsyncMessages()
	var be backendError
	if errors.As(err, &be) && !s.fatal {
		s.backendLost(be.error)
	}
	return err == nil
}

func (s *session) relayAsyncMessages() error {
	b := s.b
	s.writer()
	defer s.releaseBuffers()
	for {
		typ, body, err := b.r.Next()
		if err != nil {
			return backendError{err}
		}
		switch typ {
		case pg.MsgNotification, pg.MsgNotice:
		case pg.MsgParameterStatus:
			s.noteParam(body)
		case pg.MsgErrorResponse:
			if isFatal(body) {
				s.fatal = true
			}
		default:
			return backendError{fmt.Errorf("unexpected message %q from an idle server connection", typ)}
		}
		if err := pg.WriteMessage(s.cw, typ, body); err != nil {
			return clientError{err}
		}
		if s.fatal || b.alive() {
			break
		}
	}
	if err := s.cw.Flush(); err != nil {
		return clientError{err}
	}
	if s.fatal {
		return errors.New("server ended the connection")
	}
	return nil
}

// backendLost ends the session after its server connection failed: the
// client gets FATAL 08006 unless the server's own FATAL reached it.
func (s *session) backendLost(err error) {
	s.broken = true
	if !s.fatal && !s.killed.Load() {
		s.sendFatal("08006", "Request returned an error: the database connection was lost (%v).", err)
	}
}

// rejectRequest answers a request that could not get a backend: an
// ErrorResponse, then (after skipping to the client's Sync for the extended
// protocol) ReadyForQuery 'I'.
func (s *session) rejectRequest(typ byte, err error) error {
	s.inBatch = false
	defer s.releaseBuffers()
	e := &pg.Error{Severity: "ERROR", Code: errorCode(err), Message: errorText(err)}
	s.cw.Write(pg.AppendErrorResponse(nil, e))
	for typ != pg.MsgQuery && typ != pg.MsgSync && typ != pg.MsgFunctionCall {
		if err := s.cw.Flush(); err != nil {
			return err
		}
		var n int
		var rerr error
		typ, n, rerr = s.cr.Header()
		if rerr != nil {
			return rerr
		}
		if typ == pg.MsgTerminate {
			return io.EOF
		}
		if rerr = s.cr.Skip(n); rerr != nil {
			return rerr
		}
	}
	s.cw.Write(pg.AppendReadyForQuery(nil, pg.TxIdle))
	return s.cw.Flush()
}

// handle processes one client message on the held backend.
func (s *session) handle(typ byte, body []byte) error {
	b := s.b
	em := &s.ep.metrics
	if s.skipping {
		// After an error in the extended protocol the server ignores
		// everything up to Sync; so does the proxy.
		switch typ {
		case pg.MsgSync:
		case pg.MsgFlush:
			if len(s.pending) == 0 {
				return nil
			}
		default:
			return nil
		}
	}
	if s.lastZ == pg.TxIdle {
		// Between transactions: no portal depends on a statement.
		if d := s.p.regs.dead.Load(); b.swept != d {
			s.closeUnneeded(d)
		}
		if len(b.prepared) > s.m.cfg.Limits.PreparedPerConnection {
			s.trimPrepared()
		}
	}
	switch typ {
	case pg.MsgQuery:
		q, err := pg.ParseQuery(body)
		if err != nil {
			return s.protocolViolation("malformed Query message")
		}
		c := pg.Classify(q)
		s.classify(c, len(q))
		s.debugSQL(q)
		em.QueryRequests.Add(1)
		s.countTLS()
		b.unnamed = nil
		s.unnamed = nil
		p := pend{kind: pkQuery}
		if c&pg.ClassPrepare != 0 {
			if sql, st, name, held := s.deallocate(q, false); st != nil {
				if !held && len(s.pending) == 0 && (s.lastZ == pg.TxIdle || s.lastZ == pg.TxInTx) {
					// Nothing to deallocate on this backend: the client's
					// statement is gone once the session forgets it.
					s.pending = append(s.pending, pend{kind: pkSynDealloc})
					return s.flushAndRelay()
				}
				body = pg.AppendQuery(s.out[:0], sql)[5:]
				p.st, p.name = st, name
			}
		}
		s.forward(typ, body)
		s.pending = append(s.pending, p)
		return s.flushAndRelay()
	case pg.MsgParse:
		return s.handleParse(body)
	case pg.MsgBind:
		portal, name, rest, err := pg.ParseBind(body)
		if err != nil {
			return s.protocolViolation("malformed Bind message")
		}
		if len(name) == 0 {
			s.ensureUnnamed()
			s.forward(typ, body)
		} else if st := s.stmts[string(name)]; st != nil {
			s.ensure(st)
			s.out = pg.AppendBind(s.out[:0], string(portal), st.name, rest)
			s.send(s.out)
		} else {
			s.forward(typ, body)
		}
		s.pending = append(s.pending, pend{kind: pkBind})
	case pg.MsgDescribe:
		kind, name, err := pg.ParseDescribeClose(body)
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
			s.send(pg.AppendDescribeClose(s.out[:0], pg.MsgDescribe, 'S', st.name))
		} else {
			s.forward(typ, body)
		}
		s.pending = append(s.pending, pend{kind: pkDescS})
	case pg.MsgClose:
		kind, name, err := pg.ParseDescribeClose(body)
		if err != nil {
			return s.protocolViolation("malformed Close message")
		}
		if kind == 'S' && len(name) > 0 {
			if st, ok := s.stmts[string(name)]; ok {
				// Answered here; the backend keeps its copy for other
				// clients, or closes it at its next request if none needs
				// it (closeUnneeded).
				delete(s.stmts, string(name))
				s.p.regs.release(st, true)
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
	case pg.MsgExecute:
		em.QueryRequests.Add(1)
		s.countTLS()
		s.forward(typ, body)
		s.pending = append(s.pending, pend{kind: pkExec})
	case pg.MsgSync:
		s.skipping = false
		s.forward(typ, body)
		s.pending = append(s.pending, pend{kind: pkSync})
		return s.flushAndRelay()
	case pg.MsgFlush:
		s.forward(typ, body)
		return s.flushAndRelay()
	case pg.MsgFunctionCall:
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
		s.ep.metrics.QueryRequestsTLS.Add(1)
	} else {
		s.ep.metrics.QueryRequestsNoTLS.Add(1)
	}
}

func (s *session) protocolViolation(msg string) error {
	return clientError{s.sendFatal("08P01", "%s", msg)}
}

func (s *session) debugSQL(q []byte) {
	if s.spec.DebugLogging {
		s.m.log.Info("query", "proxy", s.spec.Name, "endpoint", s.ep.spec.Name, "dbConnection", s.b.id, "sql", string(q))
	}
}

// forward queues a client message for the backend unchanged.
func (s *session) forward(typ byte, body []byte) {
	s.lastZ = 0
	s.sent += 5 + len(body)
	pg.WriteMessage(s.b.w, typ, body)
}

// send queues a message built by the proxy for the backend.
func (s *session) send(msg []byte) {
	s.lastZ = 0
	s.sent += len(msg)
	s.b.w.Write(msg)
}

// classify applies the pinning policy to a statement.
func (s *session) classify(c pg.Class, textLen int) {
	if textLen > pinTextLimit {
		s.pin(reasonTextSize)
	}
	if c == 0 {
		return
	}
	if r := pinReason(c); r != "" {
		s.pin(r)
	}
	if c&pg.ClassDDL != 0 && c&pg.ClassTemp == 0 {
		// Statements prepared before may no longer fit the schema; again
		// when the transaction commits (see stmtRegistry).
		s.p.regs.schemaChanged()
		s.ddl = true
	}
	if c&pg.ClassDropsPrepared != 0 {
		clear(s.b.prepared)
		for _, st := range s.stmts {
			s.p.regs.release(st, true)
		}
		clear(s.stmts)
		s.b.unnamed = nil
		s.unnamed = nil
	}
	if c&pg.ClassLoad != 0 {
		s.b.loaded = true
	}
}

// handleParse tracks a Parse: named statements get their global name and
// are sent only if the backend lacks them.
func (s *session) handleParse(body []byte) error {
	b := s.b
	name, query, params, err := pg.ParseParse(body)
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
			st = &stmt{query: append([]byte(nil), query...), params: append([]byte(nil), params...), class: pg.Classify(query)}
		}
		s.classify(st.class, len(query))
		s.unnamed, b.unnamed = st, st
		if st.class&pg.ClassPrepare != 0 {
			if sql, dst, _, _ := s.deallocate(query, true); dst != nil {
				body = pg.AppendParse(s.out[:0], "", []byte(sql), params)[5:]
			}
		}
		s.forward(pg.MsgParse, body)
		s.pending = append(s.pending, pend{kind: pkParse, unnamed: true})
		return nil
	}
	if old, ok := s.stmts[string(name)]; ok {
		// The name is taken. Let the server fail the same way, so that it
		// aborts the transaction and skips to Sync as it would directly:
		// re-parse the statement under its server name (42P05), and tell
		// the client its own name in the error.
		s.ensure(old)
		s.send(pg.AppendParse(s.out[:0], old.name, old.query, old.params))
		s.pending = append(s.pending, pend{kind: pkParseDup, name: string(name)})
		return nil
	}
	if s.pinned {
		return s.parseOwnName(name, query, params, body)
	}
	st := s.p.regs.get(query, params, s.m.cfg.Limits.RegistryStatements)
	if st.big {
		s.pin(reasonTextSize)
	}
	s.classify(st.class, 0)
	if s.pinned {
		return s.parseOwnName(name, query, params, body)
	}
	s.stmts[string(name)] = st
	s.p.regs.retain(st)
	if _, ok := b.prepared[st.id]; ok {
		b.touch(st)
		s.pending = append(s.pending, pend{kind: pkSynParse, st: st, name: string(name)})
		return nil
	}
	s.send(pg.AppendParse(s.out[:0], st.name, st.query, st.params))
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
	c := pg.Classify(query)
	s.classify(c, len(query))
	if c&pg.ClassPrepare != 0 {
		if sql, st, _, _ := s.deallocate(query, true); st != nil {
			body = pg.AppendParse(s.out[:0], string(name), []byte(sql), params)[5:]
		}
	}
	s.forward(pg.MsgParse, body)
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
	name, ok := pg.DeallocateName(q)
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
	s.p.regs.release(st, true)
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
	s.send(pg.AppendParse(s.out[:0], st.name, st.query, st.params))
	s.pending = append(s.pending, pend{kind: pkParseInj, st: st})
}

// trimPrepared closes the backend's least recently used statements when it
// holds more than the cap (PgBouncer's max_prepared_statements LRU). It runs
// only between transactions, when no portal can depend on them; a session
// that needs one again gets it re-prepared.
func (s *session) trimPrepared() {
	b := s.b
	keep := s.m.cfg.Limits.PreparedPerConnection * 3 / 4
	ids := make([]uint32, 0, len(b.prepared))
	for id := range b.prepared {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y uint32) int { return cmp.Compare(b.prepared[x].use, b.prepared[y].use) })
	for _, id := range ids[:len(ids)-keep] {
		delete(b.prepared, id)
		s.send(pg.AppendDescribeClose(s.out[:0], pg.MsgClose, 'S', stmtName(id)))
		s.pending = append(s.pending, pend{kind: pkCloseInj})
	}
}

// closeUnneeded closes the backend's statements that no session needs any
// more (see stmtRegistry) before the request it is about to serve.
func (s *session) closeUnneeded(dead uint64) {
	b := s.b
	b.swept = dead
	for id, h := range b.prepared {
		if s.p.regs.unneeded(h.st) {
			delete(b.prepared, id)
			s.send(pg.AppendDescribeClose(s.out[:0], pg.MsgClose, 'S', h.st.name))
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
	s.send(pg.AppendParse(s.out[:0], "", s.unnamed.query, s.unnamed.params))
	b.unnamed = s.unnamed
	s.pending = append(s.pending, pend{kind: pkParseInj, unnamed: true})
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
				s.cw.Write(pg.AppendEmpty(s.out[:0], pg.MsgParseComplete))
			case pkSynClose:
				s.cw.Write(pg.AppendEmpty(s.out[:0], pg.MsgCloseComplete))
			case pkSynDealloc:
				s.cw.Write(pg.AppendCommandComplete(s.out[:0], "DEALLOCATE"))
				s.cw.Write(pg.AppendReadyForQuery(s.out[:0], s.lastZ))
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
		case pg.MsgDataRow, pg.MsgCopyData:
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
		case pg.MsgReadyForQuery:
			if len(body) != 1 {
				return backendError{pg.ErrMalformed}
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
		case pg.MsgErrorResponse:
			if isFatal(body) {
				s.fatal = true
			}
			if head == pkParseDup {
				e := pg.ParseErrorResponse(body)
				if e.Code == "42P05" {
					e.Message = `prepared statement "` + s.pending[0].name + `" already exists`
					body = pg.AppendErrorResponse(s.out[:0], e)[5:]
				}
			}
			if p := s.pending[0]; p.kind == pkQuery && p.st != nil {
				// The DEALLOCATE failed: the statement is still there.
				s.stmts[p.name] = p.st
				s.p.regs.retain(p.st)
				b.touch(p.st)
			}
			if staleStatementError(pg.ParseErrorResponse(body)) {
				// A schema change the proxy did not see (see stmtRegistry).
				s.p.regs.schemaChanged()
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
		case pg.MsgParameterStatus:
			s.noteParam(body)
		case pg.MsgParseComplete:
			if head == pkParseInj {
				s.pop()
				continue // swallowed
			}
			if head == pkParse || head == pkParseDup {
				s.pop()
			}
		case pg.MsgBindComplete:
			if head == pkBind {
				s.pop()
			}
		case pg.MsgCloseComplete:
			if head == pkCloseInj {
				s.pop()
				continue // swallowed
			}
			if head == pkClose {
				s.pop()
			}
		case pg.MsgRowDescription, pg.MsgNoData:
			if head == pkDescS || head == pkDescP {
				s.pop()
			}
		case pg.MsgCommandComplete, pg.MsgEmptyQuery, pg.MsgPortalSuspended:
			if head == pkExec {
				s.pop()
			}
		case pg.MsgCopyBothResponse:
			return backendError{errors.New("COPY BOTH (replication) is not supported")}
		}
		if err := pg.WriteMessage(s.cw, typ, body); err != nil {
			return clientError{err}
		}
		if typ == pg.MsgCopyInResponse {
			s.copying, s.copyExtended = true, head == pkExec
			if s.copyExtended {
				s.pending = slices.DeleteFunc(s.pending, func(p pend) bool { return p.kind == pkSync })
			}
		}
	}
}

// noteParam records a ParameterStatus the client is about to see.
func (s *session) noteParam(body []byte) {
	b := s.b
	before := b.params
	name, value := b.noteParam(body)
	if s.seen != nil && name != "" {
		s.seen[name] = value
		// seen still equals the backend's set only if it did before.
		if s.seenSet == before {
			s.seenSet = b.params
		} else {
			s.seenSet = nil
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
				s.p.regs.release(p.st, false)
			}
		case pkSynClose:
			s.stmts[p.name] = p.st
			s.p.regs.retain(p.st)
		}
	}
	s.pending = append(s.pending[:0], s.pending[k:]...)
}

// noteZ records a ReadyForQuery status.
func (s *session) noteZ(st byte) {
	b := s.b
	s.lastZ = st
	if st == pg.TxIdle && s.ddl {
		// The DDL is committed (or rolled back): statements prepared
		// while it was under way may not fit.
		s.ddl = false
		s.p.regs.schemaChanged()
	}
	if in := st != pg.TxIdle; in != b.inTx {
		b.inTx = in
		if in {
			b.t.metrics.DatabaseConnectionsCurrentlyInTransaction.Add(1)
		} else {
			b.t.metrics.DatabaseConnectionsCurrentlyInTransaction.Add(-1)
		}
	}
	b.t.metrics.QueryDatabaseResponseLatency.observe(time.Since(s.dbStart))
}

func isFatal(body []byte) bool {
	e := pg.ParseErrorResponse(body)
	return e.Severity == "FATAL" || e.Severity == "PANIC"
}

// stream forwards a message body without buffering all of it.
func (s *session) stream(typ byte, n int) error {
	if err := pg.WriteHeader(s.cw, typ, n); err != nil {
		return clientError{err}
	}
	r := s.b.r
	if n <= 32<<10 {
		body, err := r.Body(n)
		if err != nil {
			return backendError{err}
		}
		if _, err := s.cw.Write(body); err != nil {
			return clientError{err}
		}
		return nil
	}
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
		case pg.MsgCopyData:
			pg.WriteHeader(b.w, typ, n)
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
		case pg.MsgCopyDone, pg.MsgCopyFail:
			body, err := s.cr.Body(n)
			for err != nil && s.woken(err) {
				body, err = s.cr.Body(n)
			}
			if err != nil {
				return false, clientError{err}
			}
			pg.WriteMessage(b.w, typ, body)
			if err := b.w.Flush(); err != nil {
				return false, backendError{err}
			}
			return true, nil
		case pg.MsgFlush, pg.MsgSync:
			if err := s.cr.Skip(n); err != nil {
				return false, clientError{err}
			}
		default:
			return false, clientError{fmt.Errorf("unexpected message %q during COPY IN", typ)}
		}
	}
}

// woken reports whether a client read failed only because the session's
// watch woke it; the watch is then over and reading can go on.
func (s *session) woken(err error) bool {
	if w := s.watch; w == nil || !w.fired.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	s.wake()
	return true
}

// wake ends a watch that fired: the client read deadline it expired is
// cleared, and so is the error a read may have kept.
func (s *session) wake() {
	s.stopWatch()
	s.conn.SetReadDeadline(time.Time{})
	s.cr.ClearTimeout()
}
