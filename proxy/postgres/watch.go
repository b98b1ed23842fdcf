package postgres

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
)

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
		if proxy.WaitReadable(conn) == nil {
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
		case wire.MsgNotification, wire.MsgNotice:
		case wire.MsgParameterStatus:
			s.noteParam(body)
		case wire.MsgErrorResponse:
			if isFatal(body) {
				s.fatal = true
			}
		default:
			return backendError{fmt.Errorf("unexpected message %q from an idle server connection", typ)}
		}
		if err := wire.WriteMessage(s.cw, typ, body); err != nil {
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
