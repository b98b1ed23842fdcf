//go:build !unix

package proxy

// alive reports whether an idle server connection looks usable; without a
// non-blocking peek only buffered bytes are checked.
func (b *backend) alive() bool { return b.r.Buffered() == 0 }
