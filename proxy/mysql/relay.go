package mysql

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rdslocal/rdslocal/proxy/mysql/wire"
)

// pinTextLimit is RDS Proxy's statement-size limit: a longer statement
// pins the session.
const pinTextLimit = 16384

// bigCommand is the size above which a command is streamed to the server
// instead of being buffered (and classified: it pins for its size anyway).
const bigCommand = 1 << 20

// errQuit ends the session without an error.
var errQuit = errors.New("mysql: client quit")

// backendError and clientError tell which side of a relay failed.
type backendError struct{ error }
type clientError struct{ error }

func (e backendError) Unwrap() error { return e.error }
func (e clientError) Unwrap() error  { return e.error }

// loop is the command phase: one command at a time, each answered in full
// before the next is read (MySQL is request-response; a client that
// pipelines still gets its answers in order).
func (s *session) loop() {
	s.cr = wire.NewSmallReader(s.conn, 256)
	idle := s.set.IdleClientTimeout
	lifeEnd, _ := s.c.MaxAge()
	for {
		var deadline time.Time
		if !s.cr.Ready() {
			if idle > 0 {
				deadline = time.Now().Add(idle)
			}
			// The maximum client life ends a session only between
			// transactions.
			if (s.b == nil || (!s.b.inTx && !s.uncertain)) && (deadline.IsZero() || lifeEnd.Before(deadline)) {
				deadline = lifeEnd
			}
			s.conn.SetReadDeadline(deadline)
			// A failover's wake-up may have been overwritten just now.
			if s.b != nil && s.evicted() {
				return
			}
		}
		n, seq, err := s.cr.Header()
		if !deadline.IsZero() {
			s.conn.SetReadDeadline(time.Time{})
		}
		if err != nil {
			// Evicted at a failover (the failover's ERR), else gone,
			// killed, idle longer than IdleClientTimeout or past the
			// maximum client life: the connection closes, as a MySQL
			// server closes one past its wait_timeout.
			s.evicted()
			return
		}
		if seq != 0 || n == 0 {
			s.sendError(seq+1, gm.NewDefaultError(gm.ER_NET_PACKETS_OUT_OF_ORDER))
			return
		}
		s.reqStart, s.dbTime, s.relayed = time.Now(), 0, false
		var body []byte
		buffered := n <= bigCommand
		if buffered {
			body, err = s.cr.Body(n)
		} else {
			body, err = s.cr.Peek(1)
		}
		if err != nil {
			s.evicted()
			return
		}
		err = s.command(n, body, buffered)
		if err != nil {
			if errors.Is(err, errQuit) || s.evicted() {
				return
			}
			var be backendError
			if errors.As(err, &be) {
				s.broken = true
				if !s.killed.Load() && !s.relayed {
					s.sendError(1, &gm.MyError{Code: gm.ER_UNKNOWN_ERROR, State: "HY000",
						Message: fmt.Sprintf("Request returned an error: the database connection was lost (%v).", be.error)})
				}
			}
			var ce clientError
			if errors.As(err, &ce) && s.b != nil && !s.resp.Ended() {
				s.broken = true
			}
			return
		}
		s.relayed = false // between commands an ERR may go again
		if s.b == nil {
			s.idle()
		}
	}
}

// command runs one client command whose first n payload bytes start with
// body (all of them when buffered).
func (s *session) command(n int, body []byte, buffered bool) error {
	cmd := body[0]
	switch cmd {
	case gm.COM_QUIT:
		return errQuit
	case gm.COM_PING:
		if s.b == nil {
			// Answered by the proxy: no connection needed.
			return s.reply(wire.AppendOK(nil, 1, wire.OK{Status: s.status()}))
		}
	case gm.COM_CHANGE_USER:
		if !buffered {
			return errors.New("oversized COM_CHANGE_USER")
		}
		return s.changeUser(body[1:])
	case gm.COM_PROCESS_KILL:
		if n < 5 {
			return s.reply(wire.AppendError(nil, 1, gm.NewDefaultError(gm.ER_MALFORMED_PACKET)))
		}
		return s.killThread(false, uint64(binary.LittleEndian.Uint32(body[1:5])))
	case gm.COM_QUERY:
		var cls Class
		if buffered {
			cls = Classify(body[1:])
		}
		if cls.Kill != nil {
			if cls.Kill.Unsupported {
				return s.reply(wire.AppendErr(nil, 1, gm.ER_NOT_SUPPORTED_YET, "42000",
					"RDS Proxy supports only KILL [CONNECTION | QUERY] followed by a connection ID."))
			}
			return s.killThread(cls.Kill.Query, cls.Kill.ID)
		}
		return s.forward(n, body, buffered, &cls)
	case gm.COM_STMT_EXECUTE, gm.COM_STMT_FETCH, gm.COM_STMT_RESET, gm.COM_STMT_CLOSE, gm.COM_STMT_SEND_LONG_DATA:
		if !s.pinned {
			// Prepared statements pin, so without a pinned connection
			// the session has none.
			if err := s.skipCommand(n, buffered); err != nil {
				return err
			}
			if wire.KindOf(cmd) == wire.KindNone {
				return nil
			}
			return s.reply(wire.AppendError(nil, 1, gm.NewDefaultError(gm.ER_UNKNOWN_STMT_HANDLER, 0, "mysqld_stmt_execute")))
		}
	case gm.COM_RESET_CONNECTION:
		if s.b == nil && !s.pinned {
			// Nothing of the session lives on a server connection: the
			// session starts afresh.
			s.known, s.lastInsertID, s.oneShot = false, 0, false
			return s.reply(wire.AppendOK(nil, 1, wire.OK{Status: gm.SERVER_STATUS_AUTOCOMMIT}))
		}
	case gm.COM_BINLOG_DUMP, gm.COM_BINLOG_DUMP_GTID, gm.COM_REGISTER_SLAVE, gm.COM_TABLE_DUMP:
		if err := s.skipCommand(n, buffered); err != nil {
			return err
		}
		return s.reply(wire.AppendErr(nil, 1, gm.ER_NOT_SUPPORTED_YET, "42000", "RDS Proxy doesn't support replication."))
	case gm.COM_SHUTDOWN, gm.COM_SLEEP, gm.COM_CONNECT, gm.COM_TIME, gm.COM_DELAYED_INSERT, gm.COM_CONNECT_OUT, gm.COM_DAEMON:
		if err := s.skipCommand(n, buffered); err != nil {
			return err
		}
		return s.reply(wire.AppendError(nil, 1, gm.NewDefaultError(gm.ER_UNKNOWN_COM_ERROR)))
	}
	return s.forward(n, body, buffered, nil)
}

// status is the status flags the proxy reports for the session in its own
// answers.
func (s *session) status() uint16 {
	st := gm.SERVER_STATUS_AUTOCOMMIT
	if s.known && s.want.v[varAutocommit] == "0" {
		st = 0
	}
	return st
}

// reply writes a packet built by the proxy to the client.
func (s *session) reply(pkt []byte) error {
	w := s.writer()
	w.Write(pkt)
	if err := w.Flush(); err != nil {
		return clientError{err}
	}
	return nil
}

// skipCommand discards the rest of a command the proxy answers itself.
func (s *session) skipCommand(n int, buffered bool) error {
	if !buffered {
		if err := s.cr.Skip(n); err != nil {
			return clientError{err}
		}
	}
	for n == wire.MaxPayload {
		var err error
		if n, _, err = s.cr.Header(); err != nil {
			return clientError{err}
		}
		if err := s.cr.Skip(n); err != nil {
			return clientError{err}
		}
	}
	return nil
}

// forward sends a command to a server connection (borrowing one if the
// session holds none) and relays the response.
func (s *session) forward(n int, body []byte, buffered bool, cls *Class) error {
	cmd := body[0]
	kind := wire.KindOf(cmd)
	if s.b == nil {
		prefer := cls != nil && (cls.LastInsertID || cls.PrevResult)
		if err := s.acquire(prefer); err != nil {
			if s.killed.Load() {
				return err
			}
			if err := s.skipCommand(n, buffered); err != nil {
				return err
			}
			if kind == wire.KindNone {
				return nil
			}
			return s.reply(wire.AppendError(nil, 1, borrowError(err)))
		}
	}
	b := s.b
	switch cmd {
	case gm.COM_QUERY:
		if n-1 > pinTextLimit {
			s.pin(reasonTextSize)
		}
		if cls.Pin != "" {
			s.pin(cls.Pin)
		}
		if cls.VarPin != "" && !s.set.ExcludeVariableSets {
			s.pin(cls.VarPin)
		}
		if s.set.DebugLogging && buffered {
			s.c.Logger().Info("query", "dbConnection", b.ID(), "sql", string(body[1:]))
		}
		if cls.LastInsertID && b.owner != s.serial && b.lastInsertID != s.lastInsertID {
			// Another session used the connection since: give it the
			// session's LAST_INSERT_ID() back.
			if err := b.exec("SELECT LAST_INSERT_ID(" + strconv.FormatUint(s.lastInsertID, 10) + ")"); err != nil {
				return backendError{err}
			}
			b.lastInsertID = s.lastInsertID
		}
	case gm.COM_STMT_PREPARE:
		s.pin(reasonPrepare)
	case gm.COM_SET_OPTION:
		s.pin(reasonSet)
	}
	b.owner = s.serial
	if err := s.send(n, body, buffered); err != nil {
		return err
	}
	s.resp.Start(kind, s.caps&gm.CLIENT_DEPRECATE_EOF != 0)
	if kind != wire.KindNone {
		if err := s.relay(); err != nil {
			return err
		}
	}
	return s.settle(cmd, body, cls)
}

// send forwards the command (and any continuation packets) unchanged.
func (s *session) send(n int, body []byte, buffered bool) error {
	w := s.b.w
	w.Write(wire.AppendHeader(s.hdr[:0], n, 0))
	if buffered {
		w.Write(body)
	} else if err := s.cr.CopyN(w, n); err != nil {
		var we wire.WriteError
		if errors.As(err, &we) {
			return backendError{err}
		}
		return clientError{err}
	}
	for n == wire.MaxPayload {
		var seq byte
		var err error
		if n, seq, err = s.cr.Header(); err != nil {
			s.broken = true
			return clientError{err}
		}
		w.Write(wire.AppendHeader(s.hdr[:0], n, seq))
		if err := s.cr.CopyN(w, n); err != nil {
			s.broken = true
			var we wire.WriteError
			if errors.As(err, &we) {
				return backendError{err}
			}
			return clientError{err}
		}
	}
	if err := w.Flush(); err != nil {
		return backendError{err}
	}
	return nil
}

// relay streams the server's response to the client until it ends,
// looking only at the first bytes of each packet.
func (s *session) relay() error {
	b := s.b
	w := s.writer()
	start := time.Now()
	defer func() { s.dbTime += time.Since(start) }()
	for !s.resp.Ended() {
		n, seq, err := b.r.Header()
		if err != nil {
			return backendError{err}
		}
		head, err := b.r.Peek(min(n, wire.HeadSize))
		if err != nil {
			return backendError{err}
		}
		ev, err := s.resp.Next(n, head)
		if err != nil {
			return backendError{err}
		}
		s.relayed = true
		w.Write(wire.AppendHeader(s.hdr[:0], n, seq))
		if err := b.r.CopyN(w, n); err != nil {
			var we wire.WriteError
			if errors.As(err, &we) {
				return clientError{err}
			}
			return backendError{err}
		}
		if ev == wire.LocalInfile {
			if err := s.relayInfile(); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return clientError{err}
	}
	return nil
}

// relayInfile forwards the client's file for LOAD DATA LOCAL INFILE: its
// packets up to the empty one that ends it.
func (s *session) relayInfile() error {
	if err := s.cw.Flush(); err != nil {
		return clientError{err}
	}
	w := s.b.w
	for {
		n, seq, err := s.cr.Header()
		if err != nil {
			return clientError{err}
		}
		w.Write(wire.AppendHeader(s.hdr[:0], n, seq))
		if err := s.cr.CopyN(w, n); err != nil {
			var we wire.WriteError
			if errors.As(err, &we) {
				return backendError{err}
			}
			return clientError{err}
		}
		if n == 0 {
			if err := w.Flush(); err != nil {
				return backendError{err}
			}
			return nil
		}
	}
}

// settle records what a finished command did to the connection's state
// and returns the connection when the session no longer needs it.
func (s *session) settle(cmd byte, body []byte, cls *Class) error {
	b := s.b
	r := &s.resp
	switch {
	case r.HasStatus:
		b.noteStatus(r.Status)
		s.setInTx(r.Status&gm.SERVER_STATUS_IN_TRANS != 0)
		s.uncertain = false
	case r.Err && b.cur.v[varAutocommit] == "0":
		// An ERR carries no status: with autocommit off the statement
		// may have opened a transaction. Keep the connection until a
		// status says.
		s.uncertain = true
	}
	if r.InsertID != 0 {
		b.lastInsertID, s.lastInsertID = r.InsertID, r.InsertID
	}
	switch {
	case cmd == gm.COM_INIT_DB && !r.Err:
		b.cur.schema = string(body[1:])
	case cmd == gm.COM_RESET_CONNECTION && !r.Err:
		b.lastInsertID, s.lastInsertID, s.oneShot = 0, 0, false
		if err := b.initSession(); err != nil {
			return backendError{err}
		}
	case cls != nil && cls.Tracked:
		b.nc.SetDeadline(time.Now().Add(10 * time.Second))
		err := b.readBack()
		b.nc.SetDeadline(time.Time{})
		if err != nil {
			return backendError{err}
		}
	}
	s.want.v, s.want.schema = b.cur.v, b.cur.schema
	s.key.Database = s.want.schema
	if cls != nil && cls.OneShot {
		s.oneShot = true
	} else if s.oneShot && (cmd == gm.COM_QUERY || cmd == gm.COM_STMT_EXECUTE) {
		s.oneShot = false
	}
	s.c.QueryDone(s.tls, time.Since(s.reqStart), s.dbTime)
	if !s.pinned && !b.inTx && !s.uncertain && !s.oneShot {
		s.release(b.restoreSchema())
	}
	return nil
}

// setInTx records whether the held connection is in a transaction.
func (s *session) setInTx(in bool) {
	b := s.b
	if in != b.inTx {
		b.inTx = in
		b.InTransaction(in)
	}
}

// killThread maps KILL [QUERY] id (and COM_PROCESS_KILL) from the connection
// IDs the proxy gives clients to the server connection running that
// session's statement. Only sessions of the same proxy and user can be
// reached, as MySQL lets a user kill only its own threads.
func (s *session) killThread(query bool, id uint64) error {
	var t *session
	if id <= math.MaxUint32 {
		t = s.p.lookup(uint32(id))
	}
	if t != nil && t != s {
		t.mu.Lock()
		reachable := t.set.ProxyID == s.set.ProxyID && t.user == s.user
		t.mu.Unlock()
		if !reachable {
			t = nil
		}
	}
	if t == nil {
		return s.reply(wire.AppendError(nil, 1, gm.NewDefaultError(gm.ER_NO_SUCH_THREAD, id)))
	}
	if t == s {
		if query {
			return s.reply(wire.AppendErr(nil, 1, gm.ER_QUERY_INTERRUPTED, "70100", "Query execution was interrupted"))
		}
		s.reply(wire.AppendErr(nil, 1, 1927, "70100", "Connection was killed"))
		return errQuit
	}
	t.mu.Lock()
	busy := t.b != nil
	t.mu.Unlock()
	if busy && s.b == nil {
		// A connection to send KILL QUERY on, borrowed before taking
		// the target's lock so the lock is never held while waiting.
		if err := s.acquire(false); err != nil {
			return s.reply(wire.AppendError(nil, 1, borrowError(err)))
		}
	}
	t.mu.Lock()
	var kerr error
	if tb := t.b; tb != nil && s.b != nil {
		// t cannot return tb while the lock is held, so the KILL reaches
		// t's statement and no one else's.
		s.b.nc.SetDeadline(time.Now().Add(10 * time.Second))
		kerr = s.b.exec("KILL QUERY " + strconv.FormatUint(uint64(tb.threadID), 10))
		s.b.nc.SetDeadline(time.Time{})
	}
	if !query {
		t.killed.Store(true)
		t.raw.Close()
		if t.b != nil {
			t.b.nc.SetDeadline(time.Now())
		}
	}
	t.mu.Unlock()
	var out []byte
	var me *gm.MyError
	switch {
	case kerr == nil:
		out = wire.AppendOK(nil, 1, wire.OK{Status: s.status()})
	case errors.As(kerr, &me):
		out = wire.AppendError(nil, 1, me)
	default:
		return backendError{kerr}
	}
	if b := s.b; b != nil && !s.pinned && !b.inTx && !s.uncertain && !s.oneShot {
		s.release(true)
	}
	return s.reply(out)
}
