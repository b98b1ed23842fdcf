//go:build !linux

package proxy

import (
	"io"
	"net"
)

func newRawWriter(c net.Conn) io.Writer { return c }

type rawWriteConn struct {
	net.Conn
	w io.Writer
}
