package mysql

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// TestBadInput: whatever a client sends in place of the protocol, the
// proxy answers as a MySQL server would (an ERR packet where one fits)
// and closes the connection, well before the handshake timeout; goleak
// (TestMain) checks that nothing is left running.
func TestBadInput(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{noTLS: true})
	header := func(n int, seq byte) []byte { return []byte{byte(n), byte(n >> 8), byte(n >> 16), seq} }
	packet := func(seq byte, body []byte) []byte { return append(header(len(body), seq), body...) }
	// answer reads what the proxy sends after the greeting until it
	// closes the connection.
	answer := func(t *testing.T, nc net.Conn) []byte {
		t.Helper()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(nc)
		// A reset (the proxy closed with the client's bytes unread) is a
		// close too; a timeout is not.
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection not closed within 5 s (read %q)", b)
		}
		return b
	}
	hello := func(t *testing.T) net.Conn {
		t.Helper()
		nc, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		var hdr [4]byte
		if _, err := io.ReadFull(nc, hdr[:]); err != nil {
			t.Fatal(err)
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		if _, err := io.CopyN(io.Discard, nc, int64(n)); err != nil {
			t.Fatal(err)
		}
		return nc
	}
	wantErr := func(t *testing.T, b []byte, code uint16) {
		t.Helper()
		if len(b) == 0 {
			return // reset before the ERR was read
		}
		if len(b) < 7 || b[4] != 0xff {
			t.Fatalf("want ERR %d, got %q", code, b)
		}
		if got := uint16(b[5]) | uint16(b[6])<<8; got != code {
			t.Fatalf("want ERR %d, got %d: %q", code, got, b)
		}
	}
	cases := []struct {
		name string
		send []byte
		err  uint16 // 0: closed without an ERR
	}{
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), gm.ER_NET_PACKETS_OUT_OF_ORDER},
		{"garbage handshake response", packet(1, bytes.Repeat([]byte{0xfe}, 40)), gm.ER_HANDSHAKE_ERROR},
		{"truncated handshake response", packet(1, []byte{0x05, 0xa6}), gm.ER_HANDSHAKE_ERROR},
		{"oversized packet before login", header(0xffffff, 1), gm.ER_NET_PACKET_TOO_LARGE},
		{"wrong sequence number", packet(7, bytes.Repeat([]byte{0}, 40)), gm.ER_NET_PACKETS_OUT_OF_ORDER},
		{"header then close", header(100, 1), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc := hello(t)
			nc.Write(tc.send)
			if tc.name == "header then close" {
				nc.(*net.TCPConn).CloseWrite()
			}
			b := answer(t, nc)
			if tc.err != 0 {
				wantErr(t, b, tc.err)
			}
		})
	}

	t.Run("oversized packet after login", func(t *testing.T) {
		c := h.raw(t, appUser, appPW, testDB)
		c.nc.SetDeadline(time.Now().Add(5 * time.Second))
		// A COM_QUERY announced larger than any packet the proxy takes
		// (continuations of 16 MB each, past the limit).
		big := bytes.Repeat([]byte{'x'}, 1<<20)
		var err error
		for i := 0; i < 80 && err == nil; i++ {
			_, err = c.nc.Write(append(header(0xffffff, byte(i)), big...))
		}
		if b, rerr := io.ReadAll(c.nc); rerr != nil {
			if ne, ok := rerr.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection not closed within 5 s (read %d bytes)", len(b))
			}
		}
		// The proxy still serves others.
		other := h.open(appUser, appPW, testDB, "")
		var one int
		if err := other.QueryRow("SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("after the oversized packet: %d %v", one, err)
		}
	})
}
