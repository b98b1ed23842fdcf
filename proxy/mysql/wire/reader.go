package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
)

// MaxPayload is the largest payload of one packet; a payload of exactly
// this length is continued in the next packet.
const MaxPayload = 1<<24 - 1

// DefaultMaxPacket is the largest logical packet (continuations joined)
// ReadPacket accepts unless told otherwise: the proxy buffers whole
// packets only in the connection phase and for commands it must parse.
const DefaultMaxPacket = 64 << 20

// ErrPacketTooLarge is returned for a logical packet over the limit.
var ErrPacketTooLarge = errors.New("mysql: packet too large")

// ErrMalformed is returned by the parsers for a truncated or inconsistent
// packet.
var ErrMalformed = errors.New("mysql: malformed packet")

// Reader reads MySQL packets (a 3-byte little-endian payload length, a
// sequence number, the payload) from a buffered stream. It is the proxy's
// hot-path reader: Header then Body returns a payload as a slice into the
// read buffer when it fits, so a packet costs no allocation; Peek and CopyN
// stream a payload too large to buffer.
//
// A Reader made by NewSmallReader starts with a small buffer of its own and
// borrows a BigBufferSize one from a shared pool only while a burst needs
// it; Release gives it back once everything buffered is consumed, which
// keeps an idle session's buffer small. A read error (a timeout included)
// is kept and returned by every later call. A Reader is not safe for
// concurrent use.
type Reader struct {
	rd      io.Reader
	buf     []byte // buf[r:w] is unread
	r, w    int
	err     error
	small   []byte // NewSmallReader's own buffer; nil for fixed-size readers
	pooled  bool
	scratch []byte
	// Max bounds ReadPacket; zero means DefaultMaxPacket.
	Max int
}

// BigBufferSize is the size of the pooled buffers small Readers grow into.
const BigBufferSize = 16 << 10

var bigBufs = sync.Pool{New: func() any { b := make([]byte, BigBufferSize); return &b }}

// NewReader returns a Reader over r with a fixed buffer of size bytes.
func NewReader(r io.Reader, size int) *Reader {
	return &Reader{rd: r, buf: make([]byte, size)}
}

// NewSmallReader returns a Reader over r that owns a buffer of size bytes
// and grows into a pooled BigBufferSize buffer when it needs more.
func NewSmallReader(r io.Reader, size int) *Reader {
	b := make([]byte, size)
	return &Reader{rd: r, buf: b, small: b}
}

// Reset makes the Reader read from rd, dropping anything buffered.
func (r *Reader) Reset(rd io.Reader) {
	r.rd, r.r, r.w, r.err = rd, 0, 0, nil
	r.Release()
}

// Release returns a pooled buffer (and any scratch space) when nothing is
// buffered.
func (r *Reader) Release() {
	r.scratch = nil
	if !r.pooled || r.r != r.w {
		return
	}
	b := r.buf
	bigBufs.Put(&b)
	r.buf, r.pooled, r.r, r.w = r.small, false, 0, 0
}

// Buffered reports how many bytes are buffered and not yet consumed.
func (r *Reader) Buffered() int { return r.w - r.r }

func (r *Reader) size() int {
	if r.small != nil {
		return max(len(r.buf), BigBufferSize)
	}
	return len(r.buf)
}

func (r *Reader) grow() {
	nb := *bigBufs.Get().(*[]byte)
	r.w = copy(nb, r.buf[r.r:r.w])
	r.r = 0
	r.buf, r.pooled = nb, true
}

// fill reads at least once more into the buffer, making room first.
func (r *Reader) fill() error {
	if r.err != nil {
		return r.err
	}
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if r.w == len(r.buf) {
		if r.small == nil || r.pooled {
			return bufio.ErrBufferFull
		}
		r.grow()
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		r.w += n
		if err != nil {
			r.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			if r.w == len(r.buf) && r.small != nil && !r.pooled {
				r.grow()
			}
			return nil
		}
	}
	r.err = io.ErrNoProgress
	return r.err
}

// peek returns the next n (≤ size()) bytes without consuming them.
func (r *Reader) peek(n int) ([]byte, error) {
	for r.w-r.r < n {
		if n > len(r.buf) && r.small != nil && !r.pooled {
			r.grow()
		}
		if err := r.fill(); err != nil {
			if r.w-r.r >= n {
				break
			}
			return r.buf[r.r:r.w], err
		}
	}
	return r.buf[r.r : r.r+n], nil
}

// Ready reports whether a whole packet header is already buffered, so that
// reading it will not block.
func (r *Reader) Ready() bool { return r.w-r.r >= 4 }

// Header reads the next packet's header. The caller must then consume
// exactly n payload bytes (Body, Skip, CopyN).
func (r *Reader) Header() (n int, seq byte, err error) {
	h, err := r.peek(4)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	n = int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	seq = h[3]
	r.r += 4
	return n, seq, nil
}

// Body reads n payload bytes announced by Header (or a part of them). The
// slice is valid until the next call on the Reader.
func (r *Reader) Body(n int) ([]byte, error) {
	if n <= r.size() {
		b, err := r.peek(n)
		if err != nil {
			return nil, unexpected(err)
		}
		r.r += n
		return b, nil
	}
	if cap(r.scratch) < n {
		r.scratch = make([]byte, n)
	}
	b := r.scratch[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, unexpected(err)
	}
	return b, nil
}

// Peek returns up to k of the next payload bytes without consuming them
// (fewer only at an error); k must be at most BigBufferSize.
func (r *Reader) Peek(k int) ([]byte, error) {
	b, err := r.peek(k)
	if err != nil {
		return b, unexpected(err)
	}
	return b, nil
}

// Skip discards n payload bytes.
func (r *Reader) Skip(n int) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(); err != nil {
				return unexpected(err)
			}
		}
		k := min(n, r.w-r.r)
		r.r += k
		n -= k
	}
	return nil
}

// CopyN writes the next n payload bytes to w. A write error is returned
// wrapped in a WriteError, so callers can tell which side failed.
func (r *Reader) CopyN(w io.Writer, n int) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(); err != nil {
				return unexpected(err)
			}
		}
		k := min(n, r.w-r.r)
		if _, err := w.Write(r.buf[r.r : r.r+k]); err != nil {
			return WriteError{err}
		}
		r.r += k
		n -= k
	}
	return nil
}

// WriteError wraps an error of the writer given to CopyN.
type WriteError struct{ Err error }

func (e WriteError) Error() string { return e.Err.Error() }
func (e WriteError) Unwrap() error { return e.Err }

// Read implements io.Reader over the buffered stream.
func (r *Reader) Read(p []byte) (int, error) {
	if r.r == r.w {
		if len(p) >= len(r.buf) {
			if r.err != nil {
				return 0, r.err
			}
			n, err := r.rd.Read(p)
			if err != nil {
				r.err = err
			}
			return n, err
		}
		if err := r.fill(); err != nil && r.r == r.w {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.r += n
	return n, nil
}

// ReadPacket reads one logical packet, joining continuation packets, and
// returns its payload and the sequence number of its last packet. The
// payload is valid until the next call on the Reader.
func (r *Reader) ReadPacket() ([]byte, byte, error) {
	limit := r.Max
	if limit <= 0 {
		limit = DefaultMaxPacket
	}
	n, seq, err := r.Header()
	if err != nil {
		return nil, 0, err
	}
	if n < MaxPayload {
		b, err := r.Body(n)
		return b, seq, err
	}
	// A continued packet: gather it in scratch space.
	out := r.scratch[:0]
	for {
		if len(out)+n > limit {
			return nil, 0, ErrPacketTooLarge
		}
		start := len(out)
		out = append(out, make([]byte, n)...)
		if _, err := io.ReadFull(r, out[start:]); err != nil {
			return nil, 0, unexpected(err)
		}
		if n < MaxPayload {
			r.scratch = out
			return out, seq, nil
		}
		var s byte
		n, s, err = r.Header()
		if err != nil {
			return nil, 0, unexpected(err)
		}
		if s != seq+1 {
			return nil, 0, fmt.Errorf("mysql: packets out of order: %d after %d", s, seq)
		}
		seq = s
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
