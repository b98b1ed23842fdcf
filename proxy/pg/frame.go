package pg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
// CopyBody stream a body that is too large to buffer. A Reader is not safe for
// concurrent use.
type Reader struct {
	br      *bufio.Reader
	scratch []byte
	// Max is the largest body accepted; zero means DefaultMaxMessage.
	Max int
}

// NewReader returns a Reader over r with a read buffer of size bytes.
func NewReader(r io.Reader, size int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, size)}
}

// Reset makes the Reader read from r, dropping anything buffered.
func (r *Reader) Reset(rd io.Reader) { r.br.Reset(rd) }

// Buffered reports how many bytes are buffered and not yet consumed.
func (r *Reader) Buffered() int { return r.br.Buffered() }

func (r *Reader) max() int {
	if r.Max > 0 {
		return r.Max
	}
	return DefaultMaxMessage
}

// Header reads the next message's type and body length without consuming
// the body. The caller must then consume exactly n bytes with Body or
// CopyBody (or Skip).
func (r *Reader) Header() (typ byte, n int, err error) {
	h, err := r.br.Peek(5)
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
	r.br.Discard(5)
	return typ, l - 4, nil
}

// Body reads n body bytes announced by Header. The slice is valid until the
// next call on the Reader.
func (r *Reader) Body(n int) ([]byte, error) {
	if n <= r.br.Size() {
		b, err := r.br.Peek(n)
		if err != nil {
			return nil, eof(err)
		}
		r.br.Discard(n)
		return b, nil
	}
	if cap(r.scratch) < n {
		r.scratch = make([]byte, n)
	}
	b := r.scratch[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, eof(err)
	}
	return b, nil
}

// CopyBody copies n body bytes announced by Header to w without buffering
// the whole body.
func (r *Reader) CopyBody(w io.Writer, n int) error {
	if n <= r.br.Size() {
		b, err := r.Body(n)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err := io.CopyN(w, r.br, int64(n))
	return eof(err)
}

// Skip discards n body bytes announced by Header.
func (r *Reader) Skip(n int) error {
	_, err := r.br.Discard(n)
	return eof(err)
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
	if r.br.Buffered() < 5 {
		return false
	}
	h, _ := r.br.Peek(5)
	l := int(int32(binary.BigEndian.Uint32(h[1:])))
	return l >= 4 && r.br.Buffered() >= l+1
}

// Peek1 returns the next byte without consuming it; it blocks until one
// arrives or the read fails (liveness probes use it with a short deadline).
func (r *Reader) Peek1() (byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// WriteMessage writes one message with type typ and the given body.
func WriteMessage(w *bufio.Writer, typ byte, body []byte) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(body)+4))
	w.Write(h[:])
	_, err := w.Write(body)
	return err
}

// WriteHeader writes a message header announcing an n-byte body; the caller
// writes the body.
func WriteHeader(w *bufio.Writer, typ byte, n int) error {
	var h [5]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(n+4))
	_, err := w.Write(h[:])
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
