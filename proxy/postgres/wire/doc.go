// Package wire is the PostgreSQL wire layer of the RDS Proxy emulator: how
// bytes look, never what to do with them. What to do with them is the
// protocol's (proxy/postgres: sessions, relay, pinning) and the core's
// (proxy: routing, pooling, metrics).
//
// # Files
//
//   - frame.go: Reader, the hot-path frame reader (5-byte header, then the
//     body as a slice into the read buffer, or streamed when large), and
//     WriteMessage/WriteHeader for buffered writers.
//   - startup.go: startup-phase packets (StartupMessage 3.x, SSLRequest,
//     GSSENCRequest, CancelRequest) read with exact-length reads so that no
//     TLS handshake byte is swallowed, and the password-message parsers.
//   - auth.go: the server side of client authentication: SCRAM-SHA-256
//     (github.com/xdg-go/scram), MD5, and cleartext (IAM tokens).
//   - messages.go: builders for the messages the proxy writes itself
//     (ErrorResponse, ParameterStatus, ReadyForQuery, BackendKeyData,
//     Authentication*, NegotiateProtocolVersion, Parse/Bind/Describe/Close
//     rewrites) and zero-copy parsers for the ones it reads.
//   - classify.go: Classify, a small allocation-free SQL lexer that reports
//     the session-state effects of statements (SET, PREPARE, LISTEN,
//     temporary objects, WITH HOLD cursors, advisory locks, LOAD…) while
//     skipping comments, literals and quoted identifiers.
//   - dial.go: Dial opens a server connection with pgconn (TLS, SCRAM/MD5),
//     runs a setup callback, and hijacks the raw stream; SendCancel.
//
// # Connection lifecycle (as proxy/postgres drives it)
//
//  1. ReadStartupPacket reads the first packet; SSLRequest is answered 'S'
//     and the stream upgraded to TLS, GSSENCRequest 'N', and the next packet
//     read again; CancelRequest ends the connection after forwarding.
//  2. The StartupMessage's version and parameters are checked by the caller;
//     AppendNegotiateProtocolVersion answers a 3.2 request with 3.0.
//  3. AuthSCRAM, AuthMD5 or AuthCleartext runs the exchange on a Reader and
//     a bufio.Writer over the (TLS) connection.
//  4. The caller sends AuthenticationOk, ParameterStatus, BackendKeyData and
//     ReadyForQuery, then relays messages with Reader.Header/Body/CopyBody
//     and WriteMessage, decoding only Query/Parse/Bind/Describe/Close from
//     the client and ReadyForQuery/ErrorResponse/ParameterStatus and the
//     completion messages from the server.
//
// Every parser of untrusted bytes has a fuzz target (FuzzStartup,
// FuzzPasswordMessages, FuzzFrontendMessages) whose seeds run under go test.
package wire
