package mysql

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/mysql/wire"
)

// session is one client connection, run by one goroutine: the connection
// phase, then the command loop, which borrows a server connection at a
// command that needs one, forwards the command, relays the response
// inline and returns the connection when the response's status flags show
// no transaction (or keeps it: pinned, in a transaction, or state unknown).
type session struct {
	p   *Protocol
	c   *proxy.Client
	set Settings

	raw  net.Conn // the accepted connection
	conn net.Conn // raw, or its TLS wrapper
	cr   *wire.Reader
	cw   *bufio.Writer // taken from clientWriters while a command runs
	tls  bool

	id     uint32 // the connection ID the client was given
	serial uint64
	salt   []byte

	user    string // written under mu after login (KILL reads it)
	auth    Auth
	caps    uint32 // negotiated with the client
	charset byte
	key     Key

	want  state // the tracked values the client must see
	known bool  // want is set (from the first connection borrowed)

	lastInsertID uint64 // from the session's last OK packet with one
	prev         *Backend
	oneShot      bool // SET TRANSACTION ran; held until the next statement
	uncertain    bool // an ERR left the transaction state unknown (autocommit off)

	mu     sync.Mutex // guards b against KILL from another session
	b      *Backend
	pinned bool
	broken bool // b is mid-response or lost
	failed bool // the failover's ERR was sent
	killed atomic.Bool

	resp     wire.Response
	relayed  bool // part of the current response reached the client
	reqStart time.Time
	dbTime   time.Duration
	hdr      [4]byte
}

func (p *Protocol) newSession(c *proxy.Client) *session {
	raw := c.Conn()
	return &session{p: p, c: c, raw: raw, conn: raw, serial: p.serial.Add(1)}
}

// clientWriters are the buffered writers toward clients while commands
// run; an idle session holds none.
var clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

func (s *session) writer() *bufio.Writer {
	if s.cw == nil {
		s.cw = clientWriters.Get().(*bufio.Writer)
		s.cw.Reset(s.conn)
	}
	return s.cw
}

func (s *session) putWriter() {
	if s.cw != nil {
		s.cw.Reset(nil)
		clientWriters.Put(s.cw)
		s.cw = nil
	}
}

// idle gives the per-command buffers back.
func (s *session) idle() {
	if s.cw != nil && s.cw.Buffered() == 0 {
		s.putWriter()
	}
	if s.cr != nil {
		s.cr.Release()
	}
}

// kill ends the session from another goroutine: the client connection is
// closed and a server read in progress interrupted.
func (s *session) kill() {
	s.killed.Store(true)
	s.raw.Close()
	s.mu.Lock()
	if s.b != nil {
		s.b.nc.SetDeadline(time.Now())
	}
	s.mu.Unlock()
}

// finish returns or closes the held connection and releases the session's
// resources.
func (s *session) finish() {
	s.endState()
	s.p.unregister(s)
	s.conn.Close()
	s.raw.Close()
	s.putWriter()
	if s.cr != nil {
		s.cr.Reset(nil)
	}
}

// endState gives back the held server connection as the session ends (or
// changes user): a pinned one is reset, one in a transaction rolled back;
// one that cannot be made clean is closed.
func (s *session) endState() {
	b := s.b
	if b == nil {
		return
	}
	b.nc.SetDeadline(time.Time{})
	reusable := false
	switch {
	case s.broken || b.broken || s.c.Evicted() != nil:
		// Nothing more is sent to it: a failover may have taken it.
	case s.pinned || s.oneShot:
		reusable = b.reset()
	case b.inTx || s.uncertain:
		b.nc.SetDeadline(time.Now().Add(5 * time.Second))
		err := b.exec("ROLLBACK")
		b.nc.SetDeadline(time.Time{})
		if err == nil {
			s.setInTx(b.status&gm.SERVER_STATUS_IN_TRANS != 0)
		}
		reusable = err == nil && !b.inTx && b.restoreSchema()
	default:
		reusable = b.restoreSchema()
	}
	s.release(reusable)
	s.pinned, s.oneShot, s.uncertain = false, false, false
}

// acquire borrows a server connection for the session and makes it carry
// the session's tracked values. A connection whose target a failover
// retired while those were being set is given back and another borrowed:
// the session held nothing on it yet.
func (s *session) acquire(prefer bool) error {
	var pb *Backend
	if prefer {
		pb = s.prev
	}
	for {
		start := time.Now()
		b, err := borrow(s.c, s.key, pb)
		s.dbTime += time.Since(start)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.b = b
		s.mu.Unlock()
		s.broken = false
		if s.killed.Load() {
			b.nc.SetDeadline(time.Now())
		}
		if !s.known {
			s.want = b.base
			s.want.schema = s.key.Database
			s.known = true
		}
		q := b.syncSQL(&s.want)
		if q == "" {
			return nil
		}
		b.nc.SetDeadline(time.Now().Add(10 * time.Second))
		if s.c.Evicted() != nil { // before anything is sent on it
			s.release(false)
			pb = nil
			continue
		}
		err = b.exec(q)
		b.nc.SetDeadline(time.Time{})
		if ev := s.c.Evicted(); ev != nil && err == nil {
			err = ev // its expired deadline was overwritten just now
		}
		if err == nil {
			b.cur.v = s.want.v
			return nil
		}
		evicted := s.c.Evicted() != nil // asked before the release forgets it
		s.release(false)
		if evicted && !s.killed.Load() {
			pb = nil
			continue
		}
		var me *gm.MyError
		if errors.As(err, &me) {
			return me
		}
		return err
	}
}

// release gives the held connection back to the core.
func (s *session) release(reusable bool) {
	b := s.b
	if b == nil {
		return
	}
	s.mu.Lock()
	s.b = nil
	s.mu.Unlock()
	if b.inTx {
		b.inTx = false
		b.InTransaction(false)
	}
	if s.broken || b.broken {
		reusable = false
	}
	if reusable {
		s.prev = b
	} else {
		s.prev = nil
	}
	s.broken = false
	b.r.Release()
	evicted := s.c.Evicted() != nil
	s.c.Release(b, reusable)
	if evicted {
		// The session had finished with the connection when a failover
		// took it (or is ending): undo the wake-up of its client read.
		s.conn.SetReadDeadline(time.Time{})
	}
}

// pin keeps the held connection for the rest of the session.
func (s *session) pin(reason string) {
	if s.pinned || s.b == nil {
		return
	}
	s.pinned = true
	s.c.Pin(s.b, reason)
}

// Failover errors: what a session gets when the core takes its server
// connection away because the target stopped serving the endpoint
// (proxy.Client.Evicted). AWS documents that such sessions are closed, not
// the error. ER_SERVER_SHUTDOWN (1053, SQLSTATE 08S01) is what MySQL and
// MariaDB themselves send each session a server ends under it at
// shutdown, the counterpart of PostgreSQL's 57P01; its SQLSTATE class 08
// (connection exception, 08S01 "communication link failure") is what
// connectors take as a lost connection (Connector/J's
// CommunicationsException, the AWS JDBC wrapper's failover), which
// MariaDB's ER_CONNECTION_KILLED (1927, 70100: query-interrupted class)
// is not. The texts are the PostgreSQL proxy's.
const (
	failoverCode       = 1053
	failoverState      = "08S01"
	failoverPinnedText = "terminating connection because of a failover: the session was pinned to a database connection of a DB instance that no longer serves this proxy endpoint"
	failoverTxText     = "terminating connection because of a failover: a transaction or statement was in progress on a DB instance that no longer serves this proxy endpoint"
)

// noReadersCode and noReadersText answer a request to a READ_ONLY
// endpoint whose proxy has no reader at all (an RDS instance, or an Aurora
// cluster with a writer only): AWS documents that such requests fail with
// an error, not which. ER_UNKNOWN_ERROR (1105, HY000), as the proxy's other
// "Request returned an error" answers; the text is the PostgreSQL proxy's.
const (
	noReadersCode = 1105
	noReadersText = "Request returned an error: this RDS Proxy endpoint is READ_ONLY, and the proxy's target has no reader DB instances (reader endpoints need an Aurora DB cluster with at least one reader)."
)

func failoverError(pinned bool) *gm.MyError {
	text := failoverTxText
	if pinned {
		text = failoverPinnedText
	}
	return &gm.MyError{Code: failoverCode, State: failoverState, Message: text}
}

// evicted ends a session whose server connection the core took away at a
// failover, and reports whether it did. The client gets the failover's ERR
// as the answer to its command (sequence 1; a client waiting between
// commands reads it as the answer to its next one) unless part of a
// response reached it already: then the connection just closes, never
// with a packet inside a result. Every path that meets an I/O error or
// timeout asks it first.
func (s *session) evicted() bool {
	if s.c.Evicted() == nil {
		return false
	}
	s.broken = true
	if !s.failed && !s.relayed && !s.killed.Load() {
		s.failed = true
		s.sendError(1, failoverError(s.pinned))
	}
	return true
}

// borrowError renders a failure to get a server connection as the error
// the client sees.
func borrowError(err error) *gm.MyError {
	var me *gm.MyError
	switch {
	case proxy.KindOf(err) == proxy.BorrowTimeout:
		return &gm.MyError{Code: 9501, State: "HY000", Message: "Timed-out waiting to acquire database connection"}
	case proxy.KindOf(err) == proxy.NoReaders:
		return &gm.MyError{Code: noReadersCode, State: "HY000", Message: noReadersText}
	case proxy.KindOf(err) == proxy.Failover:
		return failoverError(false)
	case errors.As(err, &me): // the server's refusal (a *proxy.DialError wraps it)
		return me
	case proxy.KindOf(err) == proxy.NoCredentials:
		return &gm.MyError{Code: gm.ER_ACCESS_DENIED_ERROR, State: "28000", Message: "RDS Proxy could not read the database credentials: " + err.Error()}
	}
	return &gm.MyError{Code: gm.ER_UNKNOWN_ERROR, State: "HY000", Message: fmt.Sprintf("Request returned an error: %v", err)}
}

// sendError writes an ERR packet with sequence number seq and flushes.
func (s *session) sendError(seq byte, e *gm.MyError) error {
	w := s.writer()
	s.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w.Write(wire.AppendError(nil, seq, e))
	err := w.Flush()
	s.conn.SetWriteDeadline(time.Time{})
	return err
}
