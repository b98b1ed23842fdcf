package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// DefaultMaxMessage is the largest message body a Reader accepts unless told
// otherwise: PostgreSQL's own limit for a non-COPY message is 1 GiB; a proxy
// that buffers whole messages must be stricter.
const DefaultMaxMessage = 256 << 20

// ErrMessageTooLarge is returned by Reader for a message whose declared
// length exceeds its limit.
var ErrMessageTooLarge = errors.New("pg: message too large")

// Reader reads typed protocol messages (one type byte, a big-endian int32
// length that counts itself, then the body) from a buffered stream. It is the
// proxy's hot-path frame reader: Next returns the body as a slice into the
// read buffer when it fits, so a message costs no allocation, and Header plus
// Body in chunks stream a body that is too large to buffer.
//
// A Reader made by NewSmallReader starts with a small buffer of its own and
// borrows a full-size one from a shared pool only while messages or bursts
// need it; Release gives it back once everything buffered is consumed. That
// keeps an idle client session down to a few hundred bytes of buffer. A read
// error (a timeout included) is kept and returned by every later call. A
// Reader is not safe for concurrent use.
type Reader struct {
	rd      io.Reader
	buf     []byte // buf[r:w] is unread
	r, w    int
	err     error  // sticky read error, returned once the buffer is drained
	small   []byte // NewSmallReader's own buffer; nil for fixed-size readers
	pooled  bool   // buf is a bigBufs buffer
	scratch []byte
	// Max is the largest body accepted; zero means DefaultMaxMessage.
	Max int
}

// BigBufferSize is the size of the pooled buffers small Readers grow into.
const BigBufferSize = 16 << 10

var bigBufs = sync.Pool{New: func() any { b := make([]byte, BigBufferSize); return &b }}

// NewReader returns a Reader over r with a fixed read buffer of size bytes.
func NewReader(r io.Reader, size int) *Reader {
	return &Reader{rd: r, buf: make([]byte, size)}
}

// NewSmallReader returns a Reader over r that owns a buffer of size bytes
// and grows into a pooled BigBufferSize buffer when it needs more.
func NewSmallReader(r io.Reader, size int) *Reader {
	b := make([]byte, size)
	return &Reader{rd: r, buf: b, small: b}
}

// Reset makes the Reader read from r, dropping anything buffered.
func (r *Reader) Reset(rd io.Reader) {
	r.rd, r.r, r.w, r.err = rd, 0, 0, nil
	r.Release()
}

// Release returns a pooled buffer (and any large scratch space) when nothing
// is buffered; a small Reader then reads into its own buffer again.
func (r *Reader) Release() {
	r.scratch = nil
	if !r.pooled || r.r != r.w {
		return
	}
	b := r.buf
	bigBufs.Put(&b)
	r.buf, r.pooled, r.r, r.w = r.small, false, 0, 0
}

// ClearTimeout forgets a read-deadline error so that reading can go on:
// the caller set the deadline to interrupt a wait, and nothing buffered was
// consumed by the failed read.
func (r *Reader) ClearTimeout() {
	if errors.Is(r.err, os.ErrDeadlineExceeded) {
		r.err = nil
	}
}

// Buffered reports how many bytes are buffered and not yet consumed.
func (r *Reader) Buffered() int { return r.w - r.r }

func (r *Reader) max() int {
	if r.Max > 0 {
		return r.Max
	}
	return DefaultMaxMessage
}

// size is the most the Reader can buffer at once.
func (r *Reader) size() int {
	if r.small != nil {
		return max(len(r.buf), BigBufferSize)
	}
	return len(r.buf)
}

// grow moves the unread bytes into a pooled buffer.
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
			// A read that filled the small buffer is likely part of a
			// burst: read the rest into a big one.
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

// Header reads the next message's type and body length without consuming
// the body. The caller must then consume exactly n bytes with Body or
// CopyBody (or Skip).
func (r *Reader) Header() (typ byte, n int, err error) {
	h, err := r.peek(5)
	if err != nil {
		if err == io.EOF && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	l := int(int32(binary.BigEndian.Uint32(h[1:])))
	if l < 4 {
		return 0, 0, fmt.Errorf("pg: invalid message length %d", l)
	}
	if l-4 > r.max() {
		return 0, 0, ErrMessageTooLarge
	}
	typ = h[0]
	r.r += 5
	return typ, l - 4, nil
}

// Body reads n body bytes announced by Header (or a part of them). The
// slice is valid until the next call on the Reader.
func (r *Reader) Body(n int) ([]byte, error) {
	if n <= r.size() {
		b, err := r.peek(n)
		if err != nil {
			return nil, eof(err)
		}
		r.r += n
		return b, nil
	}
	if cap(r.scratch) < n {
		r.scratch = make([]byte, n)
	}
	b := r.scratch[:n]
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, eof(err)
	}
	return b, nil
}

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

// CopyBody copies n body bytes announced by Header to w without buffering
// the whole body.
func (r *Reader) CopyBody(w io.Writer, n int) error {
	for n > 0 {
		b, err := r.Body(min(n, r.size()))
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= len(b)
	}
	return nil
}

// Skip discards n body bytes announced by Header.
func (r *Reader) Skip(n int) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(); err != nil && r.r == r.w {
				return eof(err)
			}
		}
		k := min(n, r.w-r.r)
		r.r += k
		n -= k
	}
	return nil
}

// Next reads a whole message. The body is valid until the next call.
func (r *Reader) Next() (typ byte, body []byte, err error) {
	typ, n, err := r.Header()
	if err != nil {
		return 0, nil, err
	}
	body, err = r.Body(n)
	return typ, body, err
}

// PeekReady reports, without blocking, whether a whole message is buffered.
func (r *Reader) PeekReady() bool {
	if r.w-r.r < 5 {
		return false
	}
	h := r.buf[r.r:]
	l := int(int32(binary.BigEndian.Uint32(h[1:])))
	return l >= 4 && r.w-r.r >= l+1
}

func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteMessage writes one message with type typ and the given body.
func WriteMessage(w *bufio.Writer, typ byte, body []byte) error {
	WriteHeader(w, typ, len(body))
	_, err := w.Write(body)
	return err
}

// WriteHeader writes a message header announcing an n-byte body; the caller
// writes the body.
func WriteHeader(w *bufio.Writer, typ byte, n int) error {
	// Built in the writer's own buffer: a local array would escape to the
	// heap through Write.
	h := append(w.AvailableBuffer(), typ)
	h = binary.BigEndian.AppendUint32(h, uint32(n+4))
	_, err := w.Write(h)
	return err
}

// Message starts a message of type typ in dst; finish it with EndMessage.
// Use the Append* helpers in between.
func Message(dst []byte, typ byte) ([]byte, int) {
	start := len(dst)
	return append(dst, typ, 0, 0, 0, 0), start
}

// EndMessage fills in the length of the message begun at start.
func EndMessage(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-1))
	return dst
}

// AppendString appends s and its NUL terminator.
func AppendString(dst []byte, s string) []byte { return append(append(dst, s...), 0) }

// AppendInt32 appends a big-endian int32.
func AppendInt32(dst []byte, v int32) []byte { return binary.BigEndian.AppendUint32(dst, uint32(v)) }

// AppendInt16 appends a big-endian int16.
func AppendInt16(dst []byte, v int16) []byte { return binary.BigEndian.AppendUint16(dst, uint16(v)) }
