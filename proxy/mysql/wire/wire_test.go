package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// frames reads every packet with Header and Body.
func frames(r *Reader) ([]string, error) {
	var out []string
	for {
		n, seq, err := r.Header()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		if n > 1<<20 {
			if err := r.Skip(n); err != nil {
				return out, err
			}
			out = append(out, fmt.Sprintf("%d:%d bytes", seq, n))
			continue
		}
		b, err := r.Body(n)
		if err != nil {
			return out, err
		}
		out = append(out, fmt.Sprintf("%d:%x", seq, b))
		r.Release()
	}
}

func TestReader(t *testing.T) {
	var in []byte
	in, _ = AppendPacket(in, 0, []byte("\x03SELECT 1"))
	in, _ = AppendPacket(in, 1, bytes.Repeat([]byte("z"), 40000))
	in, _ = AppendPacket(in, 0, nil)
	a := NewReader(bytes.NewReader(in), 64<<10)
	b := NewSmallReader(iotest.OneByteReader(bytes.NewReader(in)), 16)
	fa, ea := frames(a)
	fb, eb := frames(b)
	if ea != nil || eb != nil || !slices.Equal(fa, fb) || len(fa) != 3 {
		t.Fatalf("fixed: %d %v; small: %d %v", len(fa), ea, len(fb), eb)
	}
	// A truncated packet is an unexpected EOF, not a clean one.
	if _, err := frames(NewReader(bytes.NewReader(in[:len(in)-5]), 1024)); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
}

func TestReadPacketContinuation(t *testing.T) {
	payload := bytes.Repeat([]byte{7}, MaxPayload+10)
	in, next := AppendPacket(nil, 3, payload)
	if next != 5 {
		t.Fatalf("next sequence %d", next)
	}
	r := NewReader(bytes.NewReader(in), 16<<10)
	got, seq, err := r.ReadPacket()
	if err != nil || seq != 4 || !bytes.Equal(got, payload) {
		t.Fatalf("%d bytes, seq %d, %v", len(got), seq, err)
	}
	r = NewReader(bytes.NewReader(in), 16<<10)
	r.Max = 1 << 20
	if _, _, err := r.ReadPacket(); err != ErrPacketTooLarge {
		t.Fatalf("limit: %v", err)
	}
}

// pkt builds a response packet description for Response tests.
type pkt struct {
	payload []byte
	n       int // declared length when payload is only the head
}

func ok(status uint16) pkt {
	return pkt{payload: AppendOK(nil, 0, OK{AffectedRows: 1, InsertID: 9, Status: status})[4:]}
}
func eof(status uint16) pkt { return pkt{payload: AppendEOF(nil, 0, 0, status)[4:]} }
func term(status uint16) pkt {
	b := AppendOK(nil, 0, OK{Status: status})[4:]
	b[0] = 0xfe
	return pkt{payload: b}
}
func errp() pkt        { return pkt{payload: AppendErr(nil, 0, 1146, "42S02", "no table")[4:]} }
func raw(s string) pkt { return pkt{payload: []byte(s)} }

func TestResponse(t *testing.T) {
	const more = mysql.SERVER_MORE_RESULTS_EXISTS
	const tx = mysql.SERVER_STATUS_IN_TRANS
	bigRow := pkt{payload: []byte{0xfe, 1, 2}, n: MaxPayload} // a row continued in the next packet
	cases := []struct {
		name      string
		kind      Kind
		deprecate bool
		pkts      []pkt
		status    uint16
		err       bool
		infile    int // index of the LOCAL INFILE request
	}{
		{name: "ok", kind: KindResult, pkts: []pkt{ok(tx)}, status: tx},
		{name: "err", kind: KindResult, pkts: []pkt{errp()}, err: true},
		{name: "result set", kind: KindResult, pkts: []pkt{raw("\x02"), raw("\x03def"), raw("\x03def"), eof(0), raw("\x011\x012"), eof(tx)}, status: tx},
		{name: "result set, deprecate EOF", kind: KindResult, deprecate: true, pkts: []pkt{raw("\x01"), raw("\x03def"), raw("\x011"), raw("\x012"), term(2)}, status: 2},
		{name: "multi results", kind: KindResult, pkts: []pkt{ok(more), raw("\x01"), raw("\x03def"), eof(0), raw("\x011"), eof(more | tx), errp()}, status: more | tx, err: true},
		{name: "error in rows", kind: KindResult, pkts: []pkt{raw("\x01"), raw("\x03def"), eof(0), raw("\x011"), errp()}, err: true},
		{name: "local infile", kind: KindResult, pkts: []pkt{raw("\xfbfile.csv"), ok(0)}, infile: 1},
		{name: "continued row", kind: KindResult, pkts: []pkt{raw("\x01"), raw("\x03def"), eof(0), bigRow, raw("\xfe\x00\x00\x00\x00"), eof(0)}},
		{name: "cursor", kind: KindResult, pkts: []pkt{raw("\x01"), raw("\x03def"), eof(mysql.SERVER_STATUS_CURSOR_EXISTS)}, status: mysql.SERVER_STATUS_CURSOR_EXISTS},
		{name: "prepare", kind: KindPrepare, pkts: []pkt{raw("\x00\x01\x00\x00\x00\x02\x00\x01\x00\x00\x00\x00"), raw("\x03def"), eof(0), raw("\x03def"), raw("\x03def"), eof(0)}},
		{name: "prepare, deprecate EOF", kind: KindPrepare, deprecate: true, pkts: []pkt{raw("\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00"), raw("\x03def"), raw("\x03def")}},
		{name: "prepare, no columns", kind: KindPrepare, pkts: []pkt{raw("\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")}},
		{name: "fetch", kind: KindRows, pkts: []pkt{raw("\x00\x00\x01"), eof(mysql.SERVER_STATUS_LAST_ROW_SEND)}, status: mysql.SERVER_STATUS_LAST_ROW_SEND},
		{name: "field list", kind: KindFields, pkts: []pkt{raw("\x03def"), raw("\x03def"), eof(2)}, status: 2},
		{name: "ping", kind: KindSimple, pkts: []pkt{ok(2)}, status: 2},
		{name: "set option (EOF)", kind: KindSimple, pkts: []pkt{eof(2)}, status: 2},
		{name: "statistics", kind: KindRaw, pkts: []pkt{raw("Uptime: 5")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r Response
			r.Start(tc.kind, tc.deprecate)
			for i, p := range tc.pkts {
				if r.Ended() {
					t.Fatalf("ended before packet %d", i)
				}
				n := p.n
				if n == 0 {
					n = len(p.payload)
				}
				ev, err := r.Next(n, p.payload[:min(len(p.payload), HeadSize)])
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if (ev == LocalInfile) != (tc.infile == i+1) {
					t.Fatalf("packet %d: event %d", i, ev)
				}
				if (ev == Done) != (i == len(tc.pkts)-1) {
					t.Fatalf("packet %d: event %d", i, ev)
				}
			}
			if !r.Ended() || r.Err != tc.err || r.Status != tc.status {
				t.Fatalf("ended %v err %v status %x", r.Ended(), r.Err, r.Status)
			}
		})
	}
}

func TestGreetingRoundTrip(t *testing.T) {
	g := Greeting{Version: "5.5.5-10.11.19-MariaDB", ConnectionID: 77, Salt: []byte("abcdefghijklmnopqrst"),
		Caps:    mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_PLUGIN_AUTH | mysql.CLIENT_SSL,
		Charset: 45, Status: 2, AuthPlugin: "caching_sha2_password"}
	b := AppendGreeting(nil, g)
	got, err := ParseGreeting(b[4:])
	if err != nil || fmt.Sprint(got) != fmt.Sprint(g) {
		t.Fatalf("%+v %v", got, err)
	}
}

// handshakeResponse builds a HandshakeResponse41.
func handshakeResponse(caps uint32, user string, auth []byte, db, plugin string, attrs map[string]string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, caps)
	b = binary.LittleEndian.AppendUint32(b, 1<<24)
	b = append(b, 45)
	b = append(b, make([]byte, 23)...)
	b = append(b, user...)
	b = append(b, 0)
	b = AppendLenEncString(b, string(auth))
	b = append(b, db...)
	b = append(b, 0)
	b = append(b, plugin...)
	b = append(b, 0)
	var a []byte
	for k, v := range attrs {
		a = AppendLenEncString(a, k)
		a = AppendLenEncString(a, v)
	}
	b = AppendLenEncString(b, string(a))
	return b
}

func TestParseHandshakeResponse(t *testing.T) {
	caps := mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_PLUGIN_AUTH |
		mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | mysql.CLIENT_CONNECT_WITH_DB | mysql.CLIENT_CONNECT_ATTRS
	b := handshakeResponse(caps, "app", []byte("scramble"), "appdb", "mysql_native_password", map[string]string{"_os": "linux"})
	h, err := ParseHandshakeResponse(b)
	if err != nil || h.User != "app" || string(h.AuthData) != "scramble" || h.Database != "appdb" ||
		h.AuthPlugin != "mysql_native_password" || h.Attrs["_os"] != "linux" || h.SSLRequest || h.Charset != 45 {
		t.Fatalf("%+v %v", h, err)
	}
	ssl, err := ParseHandshakeResponse(b[:32])
	if err != nil || !ssl.SSLRequest {
		t.Fatalf("SSLRequest: %+v %v", ssl, err)
	}
	for i := 33; i < len(b)-1; i++ {
		ParseHandshakeResponse(b[:i]) // no panic on truncation
	}
	if _, err := ParseHandshakeResponse(handshakeResponse(mysql.CLIENT_SECURE_CONNECTION, "x", nil, "", "", nil)); err == nil {
		t.Fatal("pre-4.1 client accepted")
	}
}

func TestParseChangeUser(t *testing.T) {
	b := []byte("app\x00\x03abc" + "db\x00" + "\x2d\x00" + "caching_sha2_password\x00")
	c, err := ParseChangeUser(b, mysql.CLIENT_SECURE_CONNECTION|mysql.CLIENT_PLUGIN_AUTH)
	if err != nil || c.User != "app" || string(c.AuthData) != "abc" || c.Database != "db" || c.Charset != 45 || c.AuthPlugin != "caching_sha2_password" {
		t.Fatalf("%+v %v", c, err)
	}
	plugin, data, err := ParseAuthSwitchRequest(AppendAuthSwitch(nil, 2, "mysql_native_password", []byte("saltsaltsaltsaltsalt"))[4:])
	if err != nil || plugin != "mysql_native_password" || string(data) != "saltsaltsaltsaltsalt" {
		t.Fatalf("%q %q %v", plugin, data, err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("\x09\x00\x00\x00\x03SELECT 1\x01\x00\x00\x00\x01"))
	f.Add([]byte("\xff\xff\xff\x00" + strings.Repeat("z", 100)))
	f.Add([]byte("\x00\x00\x00\x05"))
	f.Fuzz(func(t *testing.T, in []byte) {
		a := NewReader(bytes.NewReader(in), 64<<10)
		b := NewSmallReader(iotest.OneByteReader(bytes.NewReader(in)), 16)
		fa, ea := frames(a)
		fb, eb := frames(b)
		if !slices.Equal(fa, fb) || fmt.Sprint(ea) != fmt.Sprint(eb) {
			t.Fatalf("fixed reader: %d packets, %v; small reader: %d packets, %v", len(fa), ea, len(fb), eb)
		}
		r := NewReader(bytes.NewReader(in), 1024)
		r.Max = 1 << 20
		for {
			if _, _, err := r.ReadPacket(); err != nil {
				break
			}
		}
	})
}

func FuzzHandshake(f *testing.F) {
	caps := mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_PLUGIN_AUTH |
		mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | mysql.CLIENT_CONNECT_WITH_DB | mysql.CLIENT_CONNECT_ATTRS
	f.Add(handshakeResponse(caps, "app", []byte("scramble"), "appdb", "mysql_native_password", map[string]string{"a": "b"}))
	f.Add(handshakeResponse(caps&^mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", []byte{1, 2}, "", "", nil))
	f.Add(AppendGreeting(nil, Greeting{Version: "8.0", Salt: make([]byte, 20), Caps: caps})[4:])
	f.Add(AppendAuthSwitch(nil, 0, "mysql_clear_password", nil)[4:])
	f.Add([]byte("app\x00\x03abcdb\x00\x2d\x00plugin\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := ParseHandshakeResponse(b); err == nil && (len(h.User) > len(b) || len(h.AuthData) > len(b)) {
			t.Fatal("out of range")
		}
		ParseGreeting(b)
		ParseAuthSwitchRequest(b)
		ClearPassword(b)
		ParseChangeUser(b, caps)
		ParseChangeUser(b, 0)
		ParseOK(b)
		ParseEOF(b)
		ParseErr(b)
		LenEncString(b)
	})
}

// FuzzResponse feeds arbitrary packets to Response: it must end or fail,
// never panic or loop.
func FuzzResponse(f *testing.F) {
	f.Add(byte(KindResult), false, []byte("\x01\x00\x00\x01\x01\x04\x00\x00\x02\x03def\x05\x00\x00\x03\xfe\x00\x00\x02\x00"))
	f.Add(byte(KindPrepare), true, []byte("\x0c\x00\x00\x01\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, kind byte, deprecate bool, in []byte) {
		var r Response
		r.Start(Kind(kind%7), deprecate)
		rd := NewReader(bytes.NewReader(in), 4096)
		for !r.Ended() {
			n, _, err := rd.Header()
			if err != nil {
				return
			}
			head, _ := rd.Peek(min(n, HeadSize))
			if _, err := r.Next(n, head); err != nil {
				return
			}
			if rd.Skip(n) != nil {
				return
			}
		}
	})
}
