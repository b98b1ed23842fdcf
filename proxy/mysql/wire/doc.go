// Package wire is the MySQL client/server protocol as the proxy needs it:
// a buffered packet reader for the relay's hot path (payloads returned as
// slices into its buffer, or streamed; a small buffer per idle session,
// a pooled one while a burst lasts), builders for the packets the proxy
// writes itself (greeting, OK, ERR, EOF, AuthSwitchRequest,
// AuthMoreData, commands), parsers for what it must read (greeting,
// HandshakeResponse41 and SSLRequest, COM_CHANGE_USER, AuthSwitchRequest,
// OK, EOF, ERR, length-encoded values), and Response, which follows a
// command's response from the first bytes of each packet to tell where it
// ends and what status it leaves. Constants and password scrambles come
// from go-mysql's mysql package. Every parser takes untrusted bytes and
// is fuzzed; none panics.
package wire
