//go:build !linux

package proxy

import "net"

// RawConn returns c: raw system-call I/O is implemented for Linux only.
func RawConn(c net.Conn) net.Conn { return c }
