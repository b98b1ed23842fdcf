//go:build unix

package proxy

import "syscall"

// peekIdle reports whether an idle socket has nothing to read and no EOF.
func peekIdle(rc syscall.RawConn) bool {
	ok := false
	err := rc.Read(func(fd uintptr) bool {
		var buf [1]byte
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && ok
}
