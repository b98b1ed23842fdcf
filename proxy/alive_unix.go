//go:build unix

package proxy

import (
	"crypto/tls"
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
	ok = false
	err = rc.Read(func(fd uintptr) bool {
		var buf [1]byte
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && ok
}
