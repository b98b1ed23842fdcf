package proxy

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawWriter writes to a TCP socket with send(2) issued as a raw system
// call. The socket is non-blocking, so the call never blocks (EAGAIN waits
// for writability through the poller). What the raw call skips is the
// runtime's syscall bookkeeping: on loopback, send runs the receiver's TCP
// input and wakes it, which often preempts the sender inside the call; the
// runtime would then count the call as blocking, hand this thread's P to
// another thread and make the sender wait for a P afterwards, two extra
// context switches per message. MSG_NOSIGNAL turns a broken connection
// into EPIPE instead of SIGPIPE.
type rawWriter struct {
	c  net.Conn
	rc syscall.RawConn
}

// newRawWriter returns a writer for c that uses rawWriter when c is a TCP
// connection, else c itself.
func newRawWriter(c net.Conn) io.Writer {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawWriter{c: c, rc: rc}
}

// rawWriteConn is a net.Conn whose writes go through a rawWriter (for
// crypto/tls, which writes its records to the connection it wraps).
type rawWriteConn struct {
	net.Conn
	w io.Writer
}

func (c rawWriteConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (w *rawWriter) Write(p []byte) (int, error) {
	written := 0
	var serr error
	err := w.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written),
				syscall.MSG_NOSIGNAL, 0, 0)
			switch e {
			case 0:
				written += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false // wait until writable
			default:
				serr = e
				return true
			}
		}
		return true
	})
	if serr != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: w.c.LocalAddr(), Addr: w.c.RemoteAddr(), Err: serr}
	}
	return written, err
}
