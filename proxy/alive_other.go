//go:build !unix

package proxy

import (
	"errors"
	"net"
)

// alive reports whether an idle server connection looks usable; without a
// non-blocking peek only buffered bytes are checked.
func (b *backend) alive() bool { return b.r.Buffered() == 0 }

// waitReadable is not available here: async server messages reach an
// idle pinned client with the next response instead.
func waitReadable(net.Conn) error {
	return errors.New("proxy: cannot watch connections on this system")
}
