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
	case s.broken || b.broken:
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
// the session's tracked values.
func (s *session) acquire(prefer bool) error {
	var pb *Backend
	if prefer {
		pb = s.prev
	}
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
	if q := b.syncSQL(&s.want); q != "" {
		b.nc.SetDeadline(time.Now().Add(10 * time.Second))
		err := b.exec(q)
		b.nc.SetDeadline(time.Time{})
		if err != nil {
			s.release(false)
			var me *gm.MyError
			if errors.As(err, &me) {
				return me
			}
			return err
		}
		b.cur.v = s.want.v
	}
	return nil
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
	s.c.Release(b, reusable)
}

// pin keeps the held connection for the rest of the session.
func (s *session) pin(reason string) {
	if s.pinned || s.b == nil {
		return
	}
	s.pinned = true
	s.c.Pin(s.b, reason)
}

// borrowError renders a failure to get a server connection as the error
// the client sees.
func borrowError(err error) *gm.MyError {
	var me *gm.MyError
	switch {
	case proxy.KindOf(err) == proxy.BorrowTimeout:
		return &gm.MyError{Code: 9501, State: "HY000", Message: "Timed-out waiting to acquire database connection"}
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
