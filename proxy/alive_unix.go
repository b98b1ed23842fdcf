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
