package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestReaderSizes reads messages of every size class through fixed and
// small (pooled) readers over streams that deliver one byte, half a buffer
// or everything at a time, checking each body and that a small reader gives
// its pooled buffer back once drained.
func TestReaderSizes(t *testing.T) {
	sizes := []int{0, 1, 100, 507, 508, 1019, 1020, 4000, BigBufferSize - 5, BigBufferSize, BigBufferSize + 1, 100_000}
	var stream []byte
	for i, n := range sizes {
		stream = append(stream, 'Q', 0, 0, 0, 0)
		start := len(stream) - 5
		for j := range n {
			stream = append(stream, byte(i+j))
		}
		stream = EndMessage(stream, start)
	}
	wraps := map[string]func(io.Reader) io.Reader{
		"whole":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
		"dataerr": iotest.DataErrReader,
	}
	readers := map[string]func(io.Reader) *Reader{
		"fixed32k": func(r io.Reader) *Reader { return NewReader(r, 32<<10) },
		"fixed64":  func(r io.Reader) *Reader { return NewReader(r, 64) },
		"small1k":  func(r io.Reader) *Reader { return NewSmallReader(r, 1024) },
		"small16":  func(r io.Reader) *Reader { return NewSmallReader(r, 16) },
	}
	for wn, wrap := range wraps {
		for rn, mk := range readers {
			t.Run(wn+"/"+rn, func(t *testing.T) {
				r := mk(wrap(bytes.NewReader(stream)))
				for i, n := range sizes {
					typ, l, err := r.Header()
					if err != nil || typ != 'Q' || l != n {
						t.Fatalf("message %d: header %c %d %v, want Q %d", i, typ, l, err, n)
					}
					var got []byte
					if i%2 == 0 {
						for l > 0 { // in chunks, as the relay streams
							b, err := r.Body(min(l, 4096))
							if err != nil {
								t.Fatalf("message %d: %v", i, err)
							}
							got = append(got, b...)
							l -= len(b)
						}
					} else {
						var buf bytes.Buffer
						if err := r.CopyBody(&buf, l); err != nil {
							t.Fatalf("message %d: %v", i, err)
						}
						got = buf.Bytes()
					}
					for j := range n {
						if got[j] != byte(i+j) {
							t.Fatalf("message %d byte %d: %d", i, j, got[j])
						}
					}
					if r.Buffered() == 0 {
						r.Release()
						if r.pooled {
							t.Fatalf("message %d: pooled buffer kept after Release", i)
						}
					}
				}
				if _, _, err := r.Header(); err != io.EOF {
					t.Fatalf("after the last message: %v, want EOF", err)
				}
			})
		}
	}
}

// TestReaderTruncated checks that a stream ending inside a message reports
// io.ErrUnexpectedEOF, never a short body.
func TestReaderTruncated(t *testing.T) {
	msg := EndMessage(append([]byte{'Q', 0, 0, 0, 0}, make([]byte, 3000)...), 0)
	for cut := 1; cut < len(msg); cut += 499 {
		r := NewSmallReader(bytes.NewReader(msg[:cut]), 64)
		_, n, err := r.Header()
		if err == nil {
			_, err = r.Body(n)
		}
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("cut at %d: %v", cut, err)
		}
	}
}

// frames reads messages until an error, recording each and the error.
func frames(r *Reader) (out []string, err error) {
	for {
		typ, n, err := r.Header()
		if err != nil {
			return out, err
		}
		var body []byte
		for n > 0 {
			b, err := r.Body(min(n, 3000))
			if err != nil {
				return out, err
			}
			body = append(body, b...)
			n -= len(b)
		}
		out = append(out, string(typ)+string(body))
		if r.Buffered() == 0 {
			r.Release()
		}
	}
}

// FuzzReader compares a small pooled Reader fed a byte at a time with a
// fixed Reader fed the whole input: the same messages, then the same error.
func FuzzReader(f *testing.F) {
	f.Add([]byte("Q\x00\x00\x00\x0dSELECT 1\x00X\x00\x00\x00\x04"))
	f.Add([]byte("Q\x00\x00\x00\x03"))
	f.Add([]byte("d\x00\x00\x08\x00" + strings.Repeat("z", 3000)))
	f.Fuzz(func(t *testing.T, in []byte) {
		a := NewReader(bytes.NewReader(in), 64<<10)
		a.Max = 1 << 20
		b := NewSmallReader(iotest.OneByteReader(bytes.NewReader(in)), 16)
		b.Max = 1 << 20
		fa, ea := frames(a)
		fb, eb := frames(b)
		if !slices.Equal(fa, fb) || fmt.Sprint(ea) != fmt.Sprint(eb) {
			t.Fatalf("fixed reader: %d messages, %v; small reader: %d messages, %v", len(fa), ea, len(fb), eb)
		}
	})
}

// TestReaderClearTimeout: a read interrupted by a deadline loses nothing,
// and reading goes on once the error is cleared.
func TestReaderClearTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	r := NewSmallReader(a, 64)
	go b.Write([]byte{'Q', 0, 0})
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := r.Header(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	r.ClearTimeout()
	a.SetReadDeadline(time.Time{})
	go b.Write([]byte{0, 6, 'x', 0})
	typ, body, err := r.Next()
	if err != nil || typ != 'Q' || string(body) != "x\x00" {
		t.Fatalf("after clearing: %q %q %v", typ, body, err)
	}
}
