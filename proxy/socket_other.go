//go:build !unix

package proxy

import (
	"errors"
	"net"
)

// SocketIdle reports whether an idle connection looks usable; without a
// non-blocking peek every connection does.
func SocketIdle(net.Conn) bool { return true }

// WaitReadable is not available here: asynchronous server messages reach
// an idle pinned client with the next response instead.
func WaitReadable(net.Conn) error {
	return errors.New("proxy: cannot watch connections on this system")
}
