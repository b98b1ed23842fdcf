// Package mysql is the MySQL / MariaDB wire protocol of the data plane:
// what a MYSQL proxy endpoint does with one client connection, and how it
// opens server connections. Policy shared with PostgreSQL (listeners,
// routing, pools and their budget, borrow timeout, health, metrics) is the
// core's (package proxy); this package reaches it only through
// *proxy.Client at login, borrow, return and pin — never per packet. The
// server hands mysql.New(…) to the proxy.Manager beside PostgreSQL's
// protocol (server/dataplane.go). The wire format helpers live in
// proxy/mysql/wire.
//
// # API
//
//	p := mysql.New(mysql.Config{Logger: log}) // a proxy.Protocol for the MYSQL family
//	p.Serve(client)              // one accepted *proxy.Client, until it ends
//	sc, err := p.Dial(ctx, req)  // one authenticated server connection for a pool (*Backend)
//	err = p.Probe(ctx, req)      // health check: log in, log out
//
// Backend embeds the core's *proxy.Pooled. A server's refusal at Dial or
// Probe is a *proxy.DialError wrapping its *mysql.MyError (Auth for 1045
// and 1044: target health AUTH_FAILURE; 1040, 1203 and 1226, no slot free:
// Busy, the borrow waits; others CONNECTION_FAILED); the client of a borrow that
// needed the dial gets the server's own error.
// Serve runs the connection phase, then the command loop on a fresh
// goroutine (proxy.Client.Continue) whose stack starts small.
//
// A Protocol is safe for concurrent use. It keeps what sessions share and
// is MySQL's own: the connection IDs it gives clients (KILL looks sessions
// up by them), the targets' greetings, the caching_sha2_password
// fast-auth cache, and the RSA key of caching_sha2's full authentication.
//
// # Files
//
//   - glue.go: the core's types under the protocol's names (Key,
//     DialRequest, Auth), the Settings a session reads from its proxy's
//     spec, borrow.
//   - protocol.go: Protocol; greetings; the session registry; caches.
//   - handshake.go: the connection phase and authentication, COM_CHANGE_USER.
//   - session.go: a session's state, borrowing and returning, the end.
//   - relay.go: the command loop, forwarding and the response relay, KILL.
//   - backend.go: Dial with go-mysql's client, then the taken-over
//     connection (internal statements, reset).
//   - tracked.go: the tracked session state and its synchronisation.
//   - classify.go: the SQL lexer and classifier (pins, tracked, KILL).
//
// # Connection lifecycle
//
//  1. Greeting (packet 0): the target's version string (read from its own
//     greeting, cached per target), the connection ID the proxy gives the
//     client, a fresh scramble, caching_sha2_password as the announced
//     plugin, and the capabilities both the proxy and the target support
//     (plus CLIENT_SSL when the endpoint has a certificate). Compression,
//     query attributes and optional metadata are not offered.
//  2. SSLRequest → TLS with the endpoint's certificate; then the
//     HandshakeResponse41. A client that asks for compression anyway gets
//     ERROR 1235 (42000) "RDS Proxy doesn't support the compressed
//     protocol."; RequireTLS refuses plaintext with ERROR 3159 (HY000)
//     "This RDS Proxy requires TLS connections.".
//  3. Authentication against the Auth entry whose secret's username is the
//     login user (read now): IAMAuth REQUIRED (or ENABLED over TLS) sends
//     an AuthSwitchRequest to mysql_clear_password, over TLS only, and has
//     the core check the token; MYSQL_NATIVE_PASSWORD checks the scramble;
//     MYSQL_CACHING_SHA2_PASSWORD (the default) answers fast-auth when a
//     full authentication of the same password was done before, else full
//     authentication: the password in clear over TLS, or RSA-OAEP encrypted
//     with the proxy's key (sent on request). Failures: ERROR 1045 (28000)
//     "Access denied for user 'u'@'host' (using password: YES)".
//  4. A client that names a schema borrows once, so a schema that does not
//     exist fails the login with the server's own error (1049, 1044).
//  5. Command phase, one command at a time: COM_QUIT ends; COM_PING is
//     answered by the proxy when no connection is held; KILL and
//     COM_PROCESS_KILL are mapped (below); COM_CHANGE_USER ends the session
//     state and authenticates the new user like a login (a failure ends
//     the connection); replication commands are refused; everything else
//     borrows a connection if the session holds none and is forwarded
//     unchanged.
//  6. The response is relayed packet by packet through a buffered writer,
//     looking only at each packet's first bytes (wire.Response): where it
//     ends (result after result while SERVER_MORE_RESULTS_EXISTS), the
//     status flags of OK and EOF packets, the insert ID. Rows are never
//     buffered; LOAD DATA LOCAL INFILE relays the client's file to the
//     server inside the same borrowed connection.
//  7. The connection goes back to its pool when the last status shows no
//     transaction (SERVER_STATUS_IN_TRANS clear) — by protocol, never by
//     keywords — unless the session is pinned, the last statement was a
//     one-shot SET TRANSACTION (kept until the next statement), or an ERR
//     left the state unknown with autocommit off (kept until a status
//     says).
//  8. At the end a pinned connection is reset (COM_RESET_CONNECTION, the
//     InitQuery again, the pool's schema) and reused, one left in a
//     transaction is rolled back, one that failed is closed.
//  9. A client idle longer than IdleClientTimeout, or past the maximum
//     client life (proxy.Limits.ClientMaxAge, 24 hours) at a moment
//     outside a transaction, is disconnected without a message (as a
//     MySQL server past wait_timeout closes). A borrow that waits longer
//     than ConnectionBorrowTimeout answers ERROR 9501 (HY000)
//     "Timed-out waiting to acquire database connection".
//  10. A failover that takes the session's connection away (the core's
//     proxy.Client.Evicted: the session was pinned to it, or had a
//     transaction or statement on it) ends the session with ERROR 1053
//     (08S01) (failoverPinnedText / failoverTxText), sequence number 1:
//     the answer to the statement running, or to the client's next one.
//     A session part of whose response reached the client is just
//     closed, never with a packet inside a result. The session asks
//     Evicted at every I/O error and after setting the client read
//     deadline, and sends nothing more on the connection; a connection
//     retired while acquire set its tracked values is given back and
//     another borrowed. A READ_ONLY endpoint without readers answers
//     ERROR 1105 (HY000) (noReadersText), at login when the client names
//     a schema.
//
// # Pools and tracked state
//
// A pool key is (user, schema, variant): the variant is the capability
// flags that change the wire or the semantics (CLIENT_DEPRECATE_EOF,
// MULTI_STATEMENTS, MULTI_RESULTS, PS_MULTI_RESULTS, FOUND_ROWS,
// LOCAL_FILES, SESSION_TRACK, IGNORE_SPACE) and the handshake character
// set, so a server connection serves byte for byte the clients it was
// opened like. A session that selects another schema (USE, COM_INIT_DB)
// borrows from that schema's pool afterwards; a connection whose schema a
// session changed gets its own back (COM_INIT_DB) when returned.
// The other tracked state (RDS's list: autocommit, character sets and
// collations, sql_mode, time_zone, isolation and read-only,
// wait/interactive/net_write timeouts, auto_increment_increment,
// session_track_schema, query_cache_type) is read back from the server
// after a statement that may change it, and set (one SET SESSION) on a
// borrowed connection whose values differ.
//
// # Pinning
//
// As RDS documents for MySQL: COM_STMT_PREPARE and SQL PREPARE/EXECUTE/
// DEALLOCATE, CREATE TEMPORARY TABLE, LOCK TABLES and FLUSH TABLES WITH
// READ LOCK, GET_LOCK, SQL_CALC_FOUND_ROWS, HANDLER, SET ROLE, statements
// over 16384 bytes, COM_SET_OPTION, and — unless SessionPinningFilters has
// EXCLUDE_VARIABLE_SETS — setting a user variable (SET @x, @x :=, INTO
// @x) or a system variable RDS does not track. Calls of stored programs
// are not looked into, as RDS documents. LAST_INSERT_ID() gives the
// session's own value: on a connection another session used since, the
// proxy sets it first (SELECT LAST_INSERT_ID(n)); statements that call
// ROW_COUNT() or FOUND_ROWS() ask the core for the session's previous
// connection, which answers right when it is still idle.
//
// # KILL
//
// KILL [CONNECTION | QUERY] n and COM_PROCESS_KILL take n as the
// connection ID the proxy gave a client (what the mysql client's Ctrl-C
// uses). A session of the same proxy and user is reached: the proxy sends
// KILL QUERY for the server thread running its statement, on a connection
// of the killing session, while holding the target session's lock (so the
// target cannot return that connection to another client in between);
// KILL n also closes the target's client connection. Other IDs answer
// ERROR 1094 "Unknown thread id". RDS Proxy does not document KILL through
// the proxy; the emulator goes further, as it does for CancelRequest.
//
// # go-mysql and what is written here
//
// From github.com/go-mysql-org/go-mysql: the protocol constants, error
// codes, texts and states (mysql), the password scrambles
// (CalcNativePassword, NativePasswordHash, CompareNativePassword,
// CalcCachingSha2Password), length-encoded integers, and its client
// package for the server side of every connection: the handshake, TLS,
// every auth plugin, Execute for max_connections and the InitQuery, after
// which the proxy takes over the raw connection. Written here,
// because go-mysql's server package performs the whole connection phase
// in one unexported call: the greeting (with the target's capabilities
// and version), the HandshakeResponse41 / COM_CHANGE_USER /
// AuthSwitchRequest parsers, RequireTLS and compression refusals, the
// authentication state machines (its provider has no mysql_clear_password
// and no way to check an IAM token, and its packet reader has no size
// bound before authentication), the packet reader and the response
// tracker of the relay (go-mysql's packet.Conn allocates a 64 KiB reader
// and a 16 KiB copy buffer per connection and enforces sequence numbers
// the relay must pass through), the SQL classifier, tracked state, KILL
// mapping.
//
// # Limits
//
// A pinned session holds its connection until it disconnects, as in RDS:
// database/sql pools keep idle sessions, so their pinned connections stay
// taken. State changed inside stored programs is not tracked.
// ROW_COUNT() and FOUND_ROWS() answer another session's values when the
// session's previous connection was reused in between. COM_RESET_CONNECTION
// on a pinned session resets the connection but leaves the session pinned.
package mysql
