//go:build unix

package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// Socket helpers for protocols and pools: whether an idle connection has
// something to read, and waiting until it has, without reading.

// SocketIdle reports whether an idle connection has nothing to read and
// no EOF: a one-byte recv with MSG_PEEK|MSG_DONTWAIT on its socket
// answering EAGAIN. It never blocks. A TLS connection is judged by its
// socket (bytes its TLS layer has already decrypted are not seen, which
// cannot happen to an idle connection whose last record was read whole).
func SocketIdle(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if rc, ok := c.(interface{ peekIdle() bool }); ok {
		return rc.peekIdle()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	err = rc.Read(func(fd uintptr) bool {
		var buf [1]byte
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && idle
}

// WaitReadable blocks until the connection has something to read (a
// message, EOF or an error) without consuming it. A read deadline on the
// connection ends the wait with an error. Under TLS it watches the socket,
// as SocketIdle does.
func WaitReadable(c net.Conn) error {
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
