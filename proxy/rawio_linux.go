package proxy

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn is a TCP connection whose reads and writes are raw system calls
// on its non-blocking socket: EAGAIN still parks the goroutine in the
// runtime's poller (deadlines included), but the calls skip the runtime's
// syscall bookkeeping. That bookkeeping is what made the proxy expensive
// per message: on loopback a send runs the receiver's TCP input and wakes
// it, often preempting the sender inside the call, and the runtime then
// counted the call as blocking, handing the thread's P to another thread;
// and any syscall entered while every P was idle woke sysmon, which then
// polled every 20 µs for a while, at every transaction of a quiet client.
// MSG_NOSIGNAL turns a broken connection into EPIPE instead of SIGPIPE.
type rawConn struct {
	net.Conn
	rc syscall.RawConn

	// The callbacks given to rc and their arguments and results live in
	// the connection so that a call allocates nothing. One goroutine reads
	// and one writes at a time.
	readFn, writeFn, peekFn, waitFn func(fd uintptr) bool
	rbuf, wbuf                      []byte
	rn, wn                          int
	rerr, werr                      error
	idle                            bool
}

// RawConn wraps a TCP connection so that its reads and writes are raw
// system calls (see rawConn); anything else is returned as is. The core
// wraps accepted client connections; protocols wrap their server
// connections.
func RawConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &rawConn{Conn: c, rc: rc}
	rw.readFn, rw.writeFn, rw.peekFn, rw.waitFn = rw.read, rw.write, rw.peek, rw.wait
	return rw
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err != nil {
		return 0, err
	}
	return c.rn, c.rerr
}

func (c *rawConn) read(fd uintptr) bool {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)))
		switch e {
		case 0:
			c.rn = int(r)
			if c.rn == 0 {
				c.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until readable
		default:
			c.rerr = c.opError("read", e)
			return true
		}
	}
}

func (c *rawConn) Write(p []byte) (int, error) {
	c.wbuf, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	c.wbuf = nil
	if c.werr != nil {
		err = c.werr
	}
	return c.wn, err
}

func (c *rawConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&c.wbuf[c.wn])), uintptr(len(c.wbuf)-c.wn),
			syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			c.wn += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait until writable
		default:
			c.werr = c.opError("write", e)
			return true
		}
	}
	return true
}

func (c *rawConn) opError(op string, e error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: e}
}

// peekIdle reports whether the idle socket has nothing to read and no EOF:
// a one-byte recv with MSG_PEEK|MSG_DONTWAIT answering EAGAIN.
func (c *rawConn) peekIdle() bool {
	c.idle = false
	err := c.rc.Read(c.peekFn)
	return err == nil && c.idle
}

func (c *rawConn) peek(fd uintptr) bool {
	var buf [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.idle = e == syscall.EAGAIN
	return true
}

// waitReadable blocks until the socket has bytes to read, EOF or an error,
// consuming nothing; a read deadline ends the wait with an error.
func (c *rawConn) waitReadable() error { return c.rc.Read(c.waitFn) }

func (c *rawConn) wait(fd uintptr) bool {
	var buf [1]byte
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e != syscall.EINTR {
			return e != syscall.EAGAIN // else wait until readable
		}
	}
}
