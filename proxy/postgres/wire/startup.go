package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Codes that the first int32 of a startup packet carries.
const (
	ProtocolVersion30 = 3 << 16
	ProtocolVersion32 = 3<<16 | 2
	SSLRequestCode    = 1234<<16 | 5679
	GSSENCRequestCode = 1234<<16 | 5680
	CancelRequestCode = 1234<<16 | 5678
	// MaxStartupPacket is the longest startup packet accepted (as
	// PostgreSQL's MAX_STARTUP_PACKET_LENGTH).
	MaxStartupPacket = 10000
)

// StartupKind says which kind of packet opened a connection.
type StartupKind int

// The packets a client may open with.
const (
	KindStartup StartupKind = iota + 1 // StartupMessage with a protocol version
	KindSSLRequest
	KindGSSENCRequest
	KindCancelRequest
)

// Param is one startup parameter.
type Param struct{ Name, Value string }

// Startup is a decoded startup-phase packet.
type Startup struct {
	Kind StartupKind
	// Major and Minor are the requested protocol version (KindStartup).
	Major, Minor uint16
	// Params are the startup parameters in packet order (KindStartup).
	Params []Param
	// PID and Secret are a CancelRequest's backend key.
	PID    uint32
	Secret []byte
}

// Get returns the value of parameter name (compared case-insensitively, as
// PostgreSQL treats run-time parameter names).
func (s *Startup) Get(name string) (string, bool) {
	for _, p := range s.Params {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

// ReadStartupPacket reads one length-prefixed startup packet from r with
// exact-length reads, so that nothing past it is consumed (an SSLRequest must
// not swallow the first bytes of the TLS handshake), and decodes it.
func ReadStartupPacket(r io.Reader) (*Startup, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(h[:])))
	if n < 8 || n > MaxStartupPacket {
		return nil, fmt.Errorf("pg: invalid length of startup packet: %d", n)
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, eof(err)
	}
	return ParseStartup(buf)
}

// ParseStartup decodes the body of a startup packet (everything after the
// length word).
func ParseStartup(b []byte) (*Startup, error) {
	if len(b) < 4 {
		return nil, errors.New("pg: startup packet too short")
	}
	code := binary.BigEndian.Uint32(b)
	b = b[4:]
	switch code {
	case SSLRequestCode, GSSENCRequestCode:
		if len(b) != 0 {
			return nil, errors.New("pg: SSLRequest/GSSENCRequest with a body")
		}
		if code == SSLRequestCode {
			return &Startup{Kind: KindSSLRequest}, nil
		}
		return &Startup{Kind: KindGSSENCRequest}, nil
	case CancelRequestCode:
		// 4 bytes in protocol 3.0; protocol 3.2 allows up to 256.
		if len(b) < 8 || len(b) > 4+256 {
			return nil, errors.New("pg: CancelRequest of invalid length")
		}
		return &Startup{Kind: KindCancelRequest, PID: binary.BigEndian.Uint32(b),
			Secret: append([]byte(nil), b[4:]...)}, nil
	}
	s := &Startup{Kind: KindStartup, Major: uint16(code >> 16), Minor: uint16(code)}
	if s.Major != 3 {
		// Let the caller answer with the right error; parameters are not
		// parsed for an unknown major version.
		return s, nil
	}
	for {
		name, rest, ok := cstring(b)
		if !ok {
			return nil, errors.New("pg: startup packet parameters not NUL-terminated")
		}
		b = rest
		if len(name) == 0 {
			if len(b) != 0 {
				return nil, errors.New("pg: data after the end of the startup parameters")
			}
			return s, nil
		}
		val, rest, ok := cstring(b)
		if !ok {
			return nil, fmt.Errorf("pg: startup parameter %q has no value", clip(string(name)))
		}
		b = rest
		s.Params = append(s.Params, Param{Name: string(name), Value: string(val)})
	}
}

// ParsePasswordMessage decodes a PasswordMessage body (cleartext password,
// MD5 response or IAM token).
func ParsePasswordMessage(body []byte) (string, error) {
	s, rest, ok := cstring(body)
	if !ok || len(rest) != 0 {
		return "", ErrMalformed
	}
	return string(s), nil
}

// ParseSASLInitialResponse decodes a SASLInitialResponse body: the chosen
// mechanism and the client's first message.
func ParseSASLInitialResponse(body []byte) (mechanism string, data []byte, err error) {
	m, rest, ok := cstring(body)
	if !ok || len(rest) < 4 {
		return "", nil, ErrMalformed
	}
	n := int32(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if n == -1 && len(rest) == 0 {
		return string(m), nil, nil
	}
	if n < 0 || int(n) != len(rest) {
		return "", nil, ErrMalformed
	}
	return string(m), rest, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
