package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// Message type bytes used by the proxy (PostgreSQL protocol 3.0).
const (
	// Frontend.
	MsgBind          = 'B'
	MsgClose         = 'C' // also backend CommandComplete
	MsgCopyData      = 'd'
	MsgCopyDone      = 'c'
	MsgCopyFail      = 'f'
	MsgDescribe      = 'D' // also backend DataRow
	MsgExecute       = 'E' // also backend ErrorResponse
	MsgFlush         = 'H' // also backend CopyOutResponse
	MsgFunctionCall  = 'F'
	MsgParse         = 'P'
	MsgPassword      = 'p'
	MsgQuery         = 'Q'
	MsgSync          = 'S' // also backend ParameterStatus
	MsgTerminate     = 'X'
	MsgAuth          = 'R'
	MsgBackendKey    = 'K'
	MsgReadyForQuery = 'Z'
	// Backend.
	MsgParseComplete       = '1'
	MsgBindComplete        = '2'
	MsgCloseComplete       = '3'
	MsgNotification        = 'A'
	MsgCommandComplete     = 'C'
	MsgCopyInResponse      = 'G'
	MsgCopyOutResponse     = 'H'
	MsgCopyBothResponse    = 'W'
	MsgDataRow             = 'D'
	MsgEmptyQuery          = 'I'
	MsgErrorResponse       = 'E'
	MsgFunctionCallResp    = 'V'
	MsgNoData              = 'n'
	MsgNotice              = 'N'
	MsgParameterDesc       = 't'
	MsgParameterStatus     = 'S'
	MsgPortalSuspended     = 's'
	MsgRowDescription      = 'T'
	MsgNegotiateProtoVersn = 'v'
)

// Authentication request codes (AuthenticationXXX message payloads).
const (
	AuthOK                = 0
	AuthCleartextPassword = 3
	AuthMD5Password       = 5
	AuthSASL              = 10
	AuthSASLContinue      = 11
	AuthSASLFinal         = 12
)

// Transaction status bytes of ReadyForQuery.
const (
	TxIdle   = 'I'
	TxInTx   = 'T'
	TxFailed = 'E'
)

// ErrMalformed is returned by the parsers for a message that does not have
// the shape its type requires.
var ErrMalformed = errors.New("pg: malformed message")

// Error is a PostgreSQL ErrorResponse (or NoticeResponse) with the fields the
// proxy reads or writes. It implements error.
type Error struct {
	Severity string // ERROR, FATAL, PANIC (or WARNING, NOTICE… for notices)
	Code     string // SQLSTATE
	Message  string
	Detail   string
	Hint     string
}

func (e *Error) Error() string { return e.Severity + ": " + e.Message + " (SQLSTATE " + e.Code + ")" }

// AppendErrorResponse appends e as an ErrorResponse message.
func AppendErrorResponse(dst []byte, e *Error) []byte {
	dst, s := Message(dst, MsgErrorResponse)
	dst = append(dst, 'S')
	dst = AppendString(dst, e.Severity)
	dst = append(dst, 'V')
	dst = AppendString(dst, e.Severity)
	dst = append(dst, 'C')
	dst = AppendString(dst, e.Code)
	dst = append(dst, 'M')
	dst = AppendString(dst, e.Message)
	if e.Detail != "" {
		dst = append(dst, 'D')
		dst = AppendString(dst, e.Detail)
	}
	if e.Hint != "" {
		dst = append(dst, 'H')
		dst = AppendString(dst, e.Hint)
	}
	dst = append(dst, 0)
	return EndMessage(dst, s)
}

// ParseErrorResponse decodes an ErrorResponse or NoticeResponse body.
func ParseErrorResponse(body []byte) *Error {
	e := &Error{}
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		i := bytes.IndexByte(body[1:], 0)
		if i < 0 {
			break
		}
		v := string(body[1 : 1+i])
		body = body[2+i:]
		switch f {
		case 'S':
			if e.Severity == "" {
				e.Severity = v
			}
		case 'V':
			e.Severity = v
		case 'C':
			e.Code = v
		case 'M':
			e.Message = v
		case 'D':
			e.Detail = v
		case 'H':
			e.Hint = v
		}
	}
	return e
}

// AppendParameterStatus appends a ParameterStatus message.
func AppendParameterStatus(dst []byte, name, value string) []byte {
	dst, s := Message(dst, MsgParameterStatus)
	dst = AppendString(dst, name)
	dst = AppendString(dst, value)
	return EndMessage(dst, s)
}

// ParseParameterStatus decodes a ParameterStatus body.
func ParseParameterStatus(body []byte) (name, value string, err error) {
	n, rest, ok := cstring(body)
	if !ok {
		return "", "", ErrMalformed
	}
	v, _, ok := cstring(rest)
	if !ok {
		return "", "", ErrMalformed
	}
	return string(n), string(v), nil
}

// AppendReadyForQuery appends a ReadyForQuery message.
func AppendReadyForQuery(dst []byte, status byte) []byte {
	return append(dst, MsgReadyForQuery, 0, 0, 0, 5, status)
}

// AppendBackendKeyData appends a BackendKeyData message.
func AppendBackendKeyData(dst []byte, pid uint32, secret []byte) []byte {
	dst, s := Message(dst, MsgBackendKey)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	dst = append(dst, secret...)
	return EndMessage(dst, s)
}

// AppendAuth appends an Authentication message with the given code and
// payload.
func AppendAuth(dst []byte, code int32, payload []byte) []byte {
	dst, s := Message(dst, MsgAuth)
	dst = AppendInt32(dst, code)
	dst = append(dst, payload...)
	return EndMessage(dst, s)
}

// AppendNegotiateProtocolVersion appends NegotiateProtocolVersion: the newest
// minor version supported for the requested major, and the protocol options
// (_pq_.*) not recognised.
func AppendNegotiateProtocolVersion(dst []byte, minor int32, unsupported []string) []byte {
	dst, s := Message(dst, MsgNegotiateProtoVersn)
	dst = AppendInt32(dst, minor)
	dst = AppendInt32(dst, int32(len(unsupported)))
	for _, o := range unsupported {
		dst = AppendString(dst, o)
	}
	return EndMessage(dst, s)
}

// AppendQuery appends a simple-protocol Query message.
func AppendQuery(dst []byte, sql string) []byte {
	dst, s := Message(dst, MsgQuery)
	dst = AppendString(dst, sql)
	return EndMessage(dst, s)
}

// AppendParse appends a Parse message; params is the raw parameter section
// (int16 count followed by the OIDs) as ParseParse returned it.
func AppendParse(dst []byte, name string, query, params []byte) []byte {
	dst, s := Message(dst, MsgParse)
	dst = AppendString(dst, name)
	dst = append(append(dst, query...), 0)
	if len(params) == 0 {
		dst = append(dst, 0, 0)
	} else {
		dst = append(dst, params...)
	}
	return EndMessage(dst, s)
}

// AppendBind appends a Bind message for portal and statement stmt, with rest
// the remainder of the original Bind after the statement name.
func AppendBind(dst []byte, portal, stmt string, rest []byte) []byte {
	dst, s := Message(dst, MsgBind)
	dst = AppendString(dst, portal)
	dst = AppendString(dst, stmt)
	dst = append(dst, rest...)
	return EndMessage(dst, s)
}

// AppendDescribeClose appends a Describe or Close (typ) of kind 'S' or 'P'.
func AppendDescribeClose(dst []byte, typ, kind byte, name string) []byte {
	dst, s := Message(dst, typ)
	dst = append(dst, kind)
	dst = AppendString(dst, name)
	return EndMessage(dst, s)
}

// AppendEmpty appends a message with no body (Sync, Flush, ParseComplete,
// CloseComplete, …).
func AppendEmpty(dst []byte, typ byte) []byte { return append(dst, typ, 0, 0, 0, 4) }

// AppendCommandComplete appends a CommandComplete message with the given
// command tag.
func AppendCommandComplete(dst []byte, tag string) []byte {
	dst, s := Message(dst, MsgCommandComplete)
	dst = AppendString(dst, tag)
	return EndMessage(dst, s)
}

// AppendCancelRequest appends a CancelRequest packet (no type byte).
func AppendCancelRequest(dst []byte, pid uint32, secret []byte) []byte {
	dst = AppendInt32(dst, int32(16+len(secret)-4))
	dst = AppendInt32(dst, CancelRequestCode)
	dst = binary.BigEndian.AppendUint32(dst, pid)
	return append(dst, secret...)
}

// ParseParse decodes a Parse body: statement name, query text and the raw
// parameter-type section. The slices alias body.
func ParseParse(body []byte) (name, query, params []byte, err error) {
	name, rest, ok := cstring(body)
	if !ok {
		return nil, nil, nil, ErrMalformed
	}
	query, rest, ok = cstring(rest)
	if !ok || len(rest) < 2 {
		return nil, nil, nil, ErrMalformed
	}
	n := int(int16(binary.BigEndian.Uint16(rest)))
	if n < 0 || len(rest) != 2+4*n {
		return nil, nil, nil, ErrMalformed
	}
	return name, query, rest, nil
}

// ParseBind decodes the head of a Bind body: the portal and statement
// names, and the rest of the message after them. The slices alias body.
func ParseBind(body []byte) (portal, stmt, rest []byte, err error) {
	portal, r, ok := cstring(body)
	if !ok {
		return nil, nil, nil, ErrMalformed
	}
	stmt, r, ok = cstring(r)
	if !ok {
		return nil, nil, nil, ErrMalformed
	}
	return portal, stmt, r, nil
}

// ParseDescribeClose decodes a Describe or Close body: kind 'S' (statement)
// or 'P' (portal) and the name.
func ParseDescribeClose(body []byte) (kind byte, name []byte, err error) {
	if len(body) < 2 || (body[0] != 'S' && body[0] != 'P') {
		return 0, nil, ErrMalformed
	}
	name, rest, ok := cstring(body[1:])
	if !ok || len(rest) != 0 {
		return 0, nil, ErrMalformed
	}
	return body[0], name, nil
}

// ParseQuery returns the SQL text of a Query body.
func ParseQuery(body []byte) ([]byte, error) {
	q, rest, ok := cstring(body)
	if !ok || len(rest) != 0 {
		return nil, ErrMalformed
	}
	return q, nil
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}
