package wire

import (
	"encoding/binary"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// AppendHeader appends a packet header for a payload of n bytes.
func AppendHeader(dst []byte, n int, seq byte) []byte {
	return append(dst, byte(n), byte(n>>8), byte(n>>16), seq)
}

// AppendPacket appends payload as one or more packets (splitting at
// MaxPayload) starting at sequence number seq, and returns the next
// sequence number.
func AppendPacket(dst []byte, seq byte, payload []byte) ([]byte, byte) {
	for {
		n := min(len(payload), MaxPayload)
		dst = AppendHeader(dst, n, seq)
		dst = append(dst, payload[:n]...)
		seq++
		payload = payload[n:]
		if n < MaxPayload {
			return dst, seq
		}
	}
}

// begin reserves a header; end fills in the payload length.
func begin(dst []byte, seq byte) ([]byte, int) {
	return append(dst, 0, 0, 0, seq), len(dst)
}

func end(dst []byte, at int) []byte {
	n := len(dst) - at - 4
	dst[at], dst[at+1], dst[at+2] = byte(n), byte(n>>8), byte(n>>16)
	return dst
}

// AppendLenEnc appends a length-encoded integer.
func AppendLenEnc(dst []byte, n uint64) []byte { return mysql.AppendLengthEncodedInteger(dst, n) }

// AppendLenEncString appends a length-encoded string.
func AppendLenEncString(dst []byte, s string) []byte {
	return append(AppendLenEnc(dst, uint64(len(s))), s...)
}

// OK is what an OK packet (or a CLIENT_DEPRECATE_EOF terminator) says.
type OK struct {
	AffectedRows uint64
	InsertID     uint64
	Status       uint16
	Warnings     uint16
}

// AppendOK appends an OK packet (header 0x00).
func AppendOK(dst []byte, seq byte, ok OK) []byte {
	dst, at := begin(dst, seq)
	dst = append(dst, mysql.OK_HEADER)
	dst = AppendLenEnc(dst, ok.AffectedRows)
	dst = AppendLenEnc(dst, ok.InsertID)
	dst = binary.LittleEndian.AppendUint16(dst, ok.Status)
	dst = binary.LittleEndian.AppendUint16(dst, ok.Warnings)
	return end(dst, at)
}

// AppendEOF appends a classic EOF packet.
func AppendEOF(dst []byte, seq byte, warnings, status uint16) []byte {
	dst, at := begin(dst, seq)
	dst = append(dst, mysql.EOF_HEADER)
	dst = binary.LittleEndian.AppendUint16(dst, warnings)
	dst = binary.LittleEndian.AppendUint16(dst, status)
	return end(dst, at)
}

// AppendErr appends an ERR packet (protocol 4.1: with the SQL state).
func AppendErr(dst []byte, seq byte, code uint16, state, msg string) []byte {
	if len(state) != 5 {
		state = mysql.DEFAULT_MYSQL_STATE
	}
	dst, at := begin(dst, seq)
	dst = append(dst, mysql.ERR_HEADER)
	dst = binary.LittleEndian.AppendUint16(dst, code)
	dst = append(dst, '#')
	dst = append(dst, state...)
	dst = append(dst, msg...)
	return end(dst, at)
}

// AppendError appends e as an ERR packet.
func AppendError(dst []byte, seq byte, e *mysql.MyError) []byte {
	return AppendErr(dst, seq, e.Code, e.State, e.Message)
}

// AppendAuthSwitch appends an AuthSwitchRequest: switch to plugin, with
// its challenge data (a NUL is appended after it, as servers do).
func AppendAuthSwitch(dst []byte, seq byte, plugin string, data []byte) []byte {
	dst, at := begin(dst, seq)
	dst = append(dst, mysql.EOF_HEADER)
	dst = append(dst, plugin...)
	dst = append(dst, 0)
	dst = append(dst, data...)
	dst = append(dst, 0)
	return end(dst, at)
}

// AppendAuthMoreData appends an AuthMoreData packet (0x01, data).
func AppendAuthMoreData(dst []byte, seq byte, data []byte) []byte {
	dst, at := begin(dst, seq)
	dst = append(dst, mysql.MORE_DATE_HEADER)
	dst = append(dst, data...)
	return end(dst, at)
}

// AppendCommand appends a command packet (sequence 0): cmd, then arg.
func AppendCommand(dst []byte, cmd byte, arg []byte) []byte {
	dst, at := begin(dst, 0)
	dst = append(dst, cmd)
	dst = append(dst, arg...)
	return end(dst, at)
}

// ParseOK parses an OK packet (0x00) or a CLIENT_DEPRECATE_EOF terminator
// (0xFE with an OK body).
func ParseOK(b []byte) (OK, error) {
	var ok OK
	if len(b) < 1 {
		return ok, ErrMalformed
	}
	p := 1
	var n int
	ok.AffectedRows, n = LenEnc(b[p:])
	if n == 0 {
		return ok, ErrMalformed
	}
	p += n
	ok.InsertID, n = LenEnc(b[p:])
	if n == 0 {
		return ok, ErrMalformed
	}
	p += n
	if p+4 > len(b) {
		// Pre-4.1 servers may omit status and warnings.
		if p+2 <= len(b) {
			ok.Status = binary.LittleEndian.Uint16(b[p:])
		}
		return ok, nil
	}
	ok.Status = binary.LittleEndian.Uint16(b[p:])
	ok.Warnings = binary.LittleEndian.Uint16(b[p+2:])
	return ok, nil
}

// ParseEOF parses a classic EOF packet's warnings and status flags.
func ParseEOF(b []byte) (warnings, status uint16, err error) {
	if len(b) < 5 || b[0] != mysql.EOF_HEADER {
		return 0, 0, ErrMalformed
	}
	return binary.LittleEndian.Uint16(b[1:]), binary.LittleEndian.Uint16(b[3:]), nil
}

// ParseErr parses an ERR packet.
func ParseErr(b []byte) *mysql.MyError {
	e := &mysql.MyError{State: mysql.DEFAULT_MYSQL_STATE}
	if len(b) < 3 || b[0] != mysql.ERR_HEADER {
		e.Code, e.Message = mysql.ER_UNKNOWN_ERROR, "malformed error packet"
		return e
	}
	e.Code = binary.LittleEndian.Uint16(b[1:])
	rest := b[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e
}

// IsTerminator reports whether a packet of n payload bytes starting with
// first ends a row or column list: an EOF packet, or with
// CLIENT_DEPRECATE_EOF the OK packet that replaces it. A row whose first
// value is a string of 16 MiB or more also starts with 0xFE, but then the
// packet is at least that long.
func IsTerminator(first byte, n int, deprecateEOF bool) bool {
	if first != mysql.EOF_HEADER {
		return false
	}
	if deprecateEOF {
		return n < MaxPayload
	}
	return n < 9
}

// TerminatorStatus returns the status flags of a terminator packet.
func TerminatorStatus(b []byte, deprecateEOF bool) (uint16, error) {
	if deprecateEOF {
		ok, err := ParseOK(b)
		return ok.Status, err
	}
	_, st, err := ParseEOF(b)
	return st, err
}

// LenEnc decodes a length-encoded integer at the start of b and returns it
// and its size; size 0 means b is too short (or starts with 0xFB, NULL, or
// 0xFF, which are not integers).
func LenEnc(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	switch c := b[0]; {
	case c < 0xfb:
		return uint64(c), 1
	case c == 0xfc:
		if len(b) < 3 {
			return 0, 0
		}
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3
	case c == 0xfd:
		if len(b) < 4 {
			return 0, 0
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4
	case c == 0xfe:
		if len(b) < 9 {
			return 0, 0
		}
		return binary.LittleEndian.Uint64(b[1:]), 9
	}
	return 0, 0
}

// LenEncString decodes a length-encoded string; null reports 0xFB (NULL).
// n is 0 when b is too short.
func LenEncString(b []byte) (s []byte, null bool, n int) {
	if len(b) > 0 && b[0] == 0xfb {
		return nil, true, 1
	}
	l, k := LenEnc(b)
	if k == 0 || uint64(len(b)-k) < l {
		return nil, false, 0
	}
	return b[k : k+int(l)], false, k + int(l)
}
