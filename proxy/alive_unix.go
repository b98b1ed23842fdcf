//go:build unix

package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// alive reports whether an idle server connection still looks usable: no
// unread bytes (an idle server sends nothing unless it is going away, e.g. a
// FATAL after pg_terminate_backend) and no EOF. It peeks at the socket with
// MSG_PEEK|MSG_DONTWAIT, so it never blocks.
func (b *backend) alive() bool {
	if b.r.Buffered() > 0 {
		return false
	}
	if rc, ok := b.conn.(interface{ peekIdle() bool }); ok {
		return rc.peekIdle()
	}
	var c net.Conn = b.conn
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	return peekIdle(rc)
}

// waitReadable blocks until the server connection has something to read
// (a message, EOF or an error) without consuming it. A read deadline on
// the connection ends the wait with an error. Under TLS it watches the
// socket: bytes the TLS layer has already decrypted into its own buffer are
// not seen, which cannot happen to an idle connection whose last record
// the reader took whole.
func waitReadable(c net.Conn) error {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if rc, ok := c.(interface{ waitReadable() error }); ok {
		return rc.waitReadable()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return errors.New("proxy: cannot watch this connection")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		var buf [1]byte
		for {
			_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err != syscall.EINTR {
				return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
			}
		}
	})
}
