package wire

import (
	"bytes"
	"encoding/binary"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Greeting is the server's initial handshake packet (protocol version 10).
type Greeting struct {
	Version      string
	ConnectionID uint32
	Salt         []byte // 20 bytes of scramble
	Caps         uint32
	Charset      byte
	Status       uint16
	AuthPlugin   string
}

// AppendGreeting appends g as packet 0.
func AppendGreeting(dst []byte, g Greeting) []byte {
	dst, at := begin(dst, 0)
	dst = append(dst, 10)
	dst = append(dst, g.Version...)
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, g.ConnectionID)
	dst = append(dst, g.Salt[:8]...)
	dst = append(dst, 0)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(g.Caps))
	dst = append(dst, g.Charset)
	dst = binary.LittleEndian.AppendUint16(dst, g.Status)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(g.Caps>>16))
	dst = append(dst, byte(len(g.Salt)+1))
	dst = append(dst, make([]byte, 10)...)
	dst = append(dst, g.Salt[8:]...)
	dst = append(dst, 0)
	dst = append(dst, g.AuthPlugin...)
	dst = append(dst, 0)
	return end(dst, at)
}

// ParseGreeting parses a server's initial handshake packet. An ERR packet
// (the server refusing, e.g. too many connections) is returned as its
// *mysql.MyError.
func ParseGreeting(b []byte) (Greeting, error) {
	var g Greeting
	if len(b) > 0 && b[0] == mysql.ERR_HEADER {
		return g, ParseErr(b)
	}
	if len(b) < 1 || b[0] != 10 {
		return g, ErrMalformed
	}
	p := 1
	i := bytes.IndexByte(b[p:], 0)
	if i < 0 {
		return g, ErrMalformed
	}
	g.Version = string(b[p : p+i])
	p += i + 1
	if p+4+8+1+2 > len(b) {
		return g, ErrMalformed
	}
	g.ConnectionID = binary.LittleEndian.Uint32(b[p:])
	p += 4
	g.Salt = append(g.Salt, b[p:p+8]...)
	p += 9
	g.Caps = uint32(binary.LittleEndian.Uint16(b[p:]))
	p += 2
	if p+1+2+2+1+10 > len(b) {
		return g, nil
	}
	g.Charset = b[p]
	g.Status = binary.LittleEndian.Uint16(b[p+1:])
	g.Caps |= uint32(binary.LittleEndian.Uint16(b[p+3:])) << 16
	saltLen := int(b[p+5])
	p += 16
	if g.Caps&mysql.CLIENT_SECURE_CONNECTION != 0 {
		n := max(13, saltLen-8)
		if p+n > len(b) {
			return g, ErrMalformed
		}
		part := b[p : p+n]
		if k := bytes.IndexByte(part, 0); k >= 0 {
			part = part[:k]
		}
		g.Salt = append(g.Salt, part...)
		p += n
	}
	if g.Caps&mysql.CLIENT_PLUGIN_AUTH != 0 && p < len(b) {
		rest := b[p:]
		if k := bytes.IndexByte(rest, 0); k >= 0 {
			rest = rest[:k]
		}
		g.AuthPlugin = string(rest)
	}
	return g, nil
}

// HandshakeResponse is a client's HandshakeResponse41 (or SSLRequest).
type HandshakeResponse struct {
	Caps       uint32
	MaxPacket  uint32
	Charset    byte
	SSLRequest bool // the 32-byte SSLRequest: TLS follows, then the full response
	User       string
	AuthData   []byte
	Database   string
	AuthPlugin string // "" when the client did not name one
	Attrs      map[string]string
}

// sslRequestLen is the payload length of an SSLRequest packet.
const sslRequestLen = 4 + 4 + 1 + 23

// ParseHandshakeResponse parses a client's HandshakeResponse41 packet or
// SSLRequest. Clients without CLIENT_PROTOCOL_41 are refused
// (ErrMalformed): every client of the last fifteen years speaks it.
func ParseHandshakeResponse(b []byte) (HandshakeResponse, error) {
	var h HandshakeResponse
	if len(b) < sslRequestLen {
		return h, ErrMalformed
	}
	h.Caps = binary.LittleEndian.Uint32(b)
	if h.Caps&mysql.CLIENT_PROTOCOL_41 == 0 {
		return h, ErrMalformed
	}
	h.MaxPacket = binary.LittleEndian.Uint32(b[4:])
	h.Charset = b[8]
	if len(b) == sslRequestLen {
		h.SSLRequest = true
		return h, nil
	}
	p := sslRequestLen
	user, n, ok := cstring(b[p:])
	if !ok {
		return h, ErrMalformed
	}
	h.User = user
	p += n
	switch {
	case h.Caps&mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		s, null, n := LenEncString(b[p:])
		if n == 0 || null {
			return h, ErrMalformed
		}
		h.AuthData = s
		p += n
	case h.Caps&mysql.CLIENT_SECURE_CONNECTION != 0:
		if p >= len(b) || p+1+int(b[p]) > len(b) {
			return h, ErrMalformed
		}
		h.AuthData = b[p+1 : p+1+int(b[p])]
		p += 1 + int(b[p])
	default:
		s, n, ok := cstring(b[p:])
		if !ok {
			return h, ErrMalformed
		}
		h.AuthData = []byte(s)
		p += n
	}
	if h.Caps&mysql.CLIENT_CONNECT_WITH_DB != 0 && p < len(b) {
		db, n, ok := cstring(b[p:])
		if !ok {
			return h, ErrMalformed
		}
		h.Database = db
		p += n
	}
	if h.Caps&mysql.CLIENT_PLUGIN_AUTH != 0 && p < len(b) {
		plugin, n, ok := cstring(b[p:])
		if !ok {
			// Some clients end the packet without the NUL.
			plugin, n = string(b[p:]), len(b)-p
		}
		h.AuthPlugin = plugin
		p += n
	}
	if h.Caps&mysql.CLIENT_CONNECT_ATTRS != 0 && p < len(b) {
		attrs, n, err := parseAttrs(b[p:])
		if err != nil {
			return h, err
		}
		h.Attrs = attrs
		p += n
	}
	return h, nil
}

// parseAttrs parses length-encoded connection attributes.
func parseAttrs(b []byte) (map[string]string, int, error) {
	total, n := LenEnc(b)
	if n == 0 || uint64(len(b)-n) < total {
		return nil, 0, ErrMalformed
	}
	body := b[n : n+int(total)]
	attrs := map[string]string{}
	for len(body) > 0 {
		k, _, kn := LenEncString(body)
		if kn == 0 {
			return nil, 0, ErrMalformed
		}
		v, _, vn := LenEncString(body[kn:])
		if vn == 0 {
			return nil, 0, ErrMalformed
		}
		if len(attrs) < 64 {
			attrs[string(k)] = string(v)
		}
		body = body[kn+vn:]
	}
	return attrs, n + int(total), nil
}

// ChangeUser is a COM_CHANGE_USER request (the payload after the command
// byte).
type ChangeUser struct {
	User       string
	AuthData   []byte
	Database   string
	Charset    uint16 // 0 when absent
	AuthPlugin string
}

// ParseChangeUser parses COM_CHANGE_USER's arguments; caps are the
// capabilities the session negotiated.
func ParseChangeUser(b []byte, caps uint32) (ChangeUser, error) {
	var c ChangeUser
	user, n, ok := cstring(b)
	if !ok {
		return c, ErrMalformed
	}
	c.User = user
	p := n
	if caps&mysql.CLIENT_SECURE_CONNECTION != 0 {
		if p >= len(b) || p+1+int(b[p]) > len(b) {
			return c, ErrMalformed
		}
		c.AuthData = b[p+1 : p+1+int(b[p])]
		p += 1 + int(b[p])
	} else {
		s, n, ok := cstring(b[p:])
		if !ok {
			return c, ErrMalformed
		}
		c.AuthData = []byte(s)
		p += n
	}
	db, n, ok := cstring(b[p:])
	if !ok {
		return c, ErrMalformed
	}
	c.Database = db
	p += n
	if p+2 <= len(b) {
		c.Charset = binary.LittleEndian.Uint16(b[p:])
		p += 2
	}
	if caps&mysql.CLIENT_PLUGIN_AUTH != 0 && p < len(b) {
		plugin, n, ok := cstring(b[p:])
		if !ok {
			plugin, n = string(b[p:]), len(b)-p
		}
		c.AuthPlugin = plugin
		p += n
	}
	return c, nil
}

// ParseAuthSwitchRequest parses a server's AuthSwitchRequest (0xFE,
// plugin name, challenge).
func ParseAuthSwitchRequest(b []byte) (plugin string, data []byte, err error) {
	if len(b) < 2 || b[0] != mysql.EOF_HEADER {
		return "", nil, ErrMalformed
	}
	name, n, ok := cstring(b[1:])
	if !ok {
		return "", nil, ErrMalformed
	}
	data = b[1+n:]
	if l := len(data); l > 0 && data[l-1] == 0 {
		data = data[:l-1]
	}
	return name, data, nil
}

// ClearPassword returns the password a client sent for
// mysql_clear_password: the packet up to its terminating NUL.
func ClearPassword(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return b[:i]
	}
	return b
}

// cstring reads a NUL-terminated string and returns it and the bytes used
// (NUL included).
func cstring(b []byte) (string, int, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", 0, false
	}
	return string(b[:i]), i + 1, true
}
