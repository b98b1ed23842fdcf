// Package postgres is the PostgreSQL wire protocol of the data plane: what
// a POSTGRESQL proxy endpoint does with one client connection, and how it
// opens server connections. Policy shared with the other protocols
// (listeners, routing, pools and their budget, borrow timeout, health,
// metrics, client accounting) is the engine-neutral core's (package
// proxy); this package reaches it at login, borrow, return and pin, never
// per message. The wire format lives in proxy/postgres/wire.
//
// # API
//
//	p := postgres.New(postgres.Config{Logger: log})
//	proxy.NewManager(proxy.ManagerConfig{Protocols: []proxy.Protocol{p}, …})
//
// A Protocol is safe for concurrent use. It keeps what sessions share and
// is PostgreSQL's own: the cancel keys it gives clients (a CancelRequest
// finds its session by them), the SCRAM credential cache, the client
// writers of sessions in a request. Each proxy's prepared-statement
// registry lives in the core's per-proxy slot, each pool's parameter sets
// and default settings in its per-pool slot.
//
// # Files
//
//   - protocol.go: Protocol (Serve, Dial, Probe), cancel keys, SCRAM cache.
//   - handshake.go: the startup phase and client authentication.
//   - session.go: a session's state, borrowing and returning, the end,
//     cancel requests, pinning, the errors clients see.
//   - relay.go: the command-phase loop, forwarding, the response relay,
//     COPY FROM STDIN.
//   - watch.go: watching an idle pinned (or COPY) session's backend and
//     relaying what it sends on its own.
//   - stmt.go: the prepared-statement registry and the session's handling
//     of named and unnamed statements across backends.
//   - tracked.go: tracked startup settings and server parameters.
//   - pin.go: which statement classes pin, RDS's reason texts, the DDL and
//     DISCARD effects on statements.
//   - backend.go: a server connection: dial with pgconn, then the
//     taken-over stream (internal statements, reset).
//
// # Connection lifecycle
//
//  1. The core accepts a TCP connection and runs Serve on a goroutine of
//     its own; the startup phase runs there, the command phase on a fresh
//     goroutine (proxy.Client.Continue), whose stack starts small again.
//  2. Startup (deadline 10 s): SSLRequest → TLS with the endpoint's ACM-style
//     certificate; GSSENCRequest → 'N'; CancelRequest → looked up in the
//     cancel-key map and forwarded to the backend now running that client's
//     query (RDS Proxy ignores CancelRequest; the emulator goes further).
//     Protocol 3.2 is negotiated down to 3.0. Allowed startup parameters are
//     user, database, replication (false only), application_name,
//     client_encoding, DateStyle, TimeZone and extra_float_digits, the list
//     AWS documents ("Considerations for connecting to PostgreSQL" in the
//     RDS Proxy guide); the five settings are tracked (step 6). Anything
//     else fails as RDS Proxy fails it: options with "Feature not
//     supported: RDS Proxy currently doesn't support command-line
//     options.", any other name (search_path, client_min_messages,
//     statement_timeout…) with "Feature not supported: RDS Proxy currently
//     doesn't support the option <name>." (0A000); drivers' issue threads
//     show both texts (psycopg2 #1577, n8n #25705).
//  3. RequireTLS refuses plaintext ("This RDS Proxy requires TLS
//     connections.", 28000). The login user must be the username of one of
//     the proxy's secrets, read at AWSCURRENT on every login; otherwise
//     28000 "This RDS proxy has no credentials for the role …". IAMAuth
//     REQUIRED asks for a cleartext password over TLS only ("IAM
//     authentication is allowed only with SSL connections.") and validates
//     it as an RDS IAM token for the endpoint's advertised addresses, the
//     proxy region and the user; otherwise SCRAM-SHA-256 (default) or MD5
//     per ClientPasswordAuthType. Failures: FATAL 28P01 "password
//     authentication failed for user …".
//  4. The session borrows a backend once to learn the server's parameters,
//     sends AuthenticationOk, every ParameterStatus, its own BackendKeyData
//     and ReadyForQuery, and returns the backend.
//  5. Command phase: the first message of a request borrows a backend from
//     the core (proxy.Client.Borrow: the pool of the current target for the
//     endpoint's role, user and database; the core's budget, FIFO waiters
//     and borrow timeout, see package proxy), and a borrow that waited
//     ConnectionBorrowTimeout gets ERROR 53300 "Timed-out waiting to
//     acquire database connection." A READ_ONLY endpoint of a proxy whose
//     target has no reader answers 08004 at once (noReadersText; FATAL at
//     login). New connections run the InitQuery.
//  6. Settings: the client's startup settings are applied to the borrowed
//     backend with SET when they differ from what the backend carries (the
//     proxy tracks them per connection), so pools are not split by them;
//     server parameters that differ from what the client has seen are sent
//     to it as ParameterStatus before the response.
//  7. Messages are forwarded as whole frames through buffered writers,
//     flushed to the server when the proxy would wait for more from the
//     client (so the server sees the client's timing: statement_timeout
//     runs from the first message of a request, as it does directly);
//     responses are relayed inline on the same goroutine until every pending
//     request is answered (the pending queue mirrors the server's order:
//     ReadyForQuery ends Query/Sync, completions end Parse/Bind/Describe/
//     Execute/Close, an error drops everything up to the next Sync). DataRow
//     and CopyData are streamed. COPY FROM STDIN switches to reading the
//     client until CopyDone/CopyFail, while a watch on the backend (one
//     goroutine for the COPY) brings back to the relay what the server
//     says meanwhile, so that its ErrorResponse stops a client that is
//     still streaming (the server drops the COPY messages after it, and so
//     does the session).
//  8. The backend goes back to the pool at ReadyForQuery 'I' (decided by the
//     protocol, never by keywords), unless the session is pinned.
//  9. Prepared statements (PgBouncer's design): a named Parse is interned
//     per proxy as rdsproxy_<n>; each backend remembers which it holds; the
//     client's names are rewritten in Parse/Bind/Describe; a Bind or
//     Describe on a backend lacking the statement gets a Parse injected
//     first (its ParseComplete swallowed); a Parse the backend already holds
//     is answered locally; a Parse of a name the session already uses is
//     sent as a Parse of the statement's server name, so that the server
//     fails it (42P05, aborting the transaction as it would directly) and
//     the proxy puts the client's name in the message. Close of a named
//     statement is answered locally and the backend copy kept while another
//     session holds the statement; when none does, every backend closes its
//     copy before its next request, as a direct Close frees it (a session
//     that just ends leaves its statements prepared for the next). The
//     unnamed statement is re-parsed when a later Bind lands on another
//     backend. A backend keeps at most Config.PreparedPerConnection
//     statements: between transactions the least recently used are closed
//     (injected Close, CloseComplete swallowed). A pinned session's later
//     named statements are not interned: its Parse goes to its backend
//     under the client's own name, as on a direct connection. A SQL
//     DEALLOCATE naming one of the session's interned statements is sent as
//     a DEALLOCATE of its global name (prepared first by a Parse on a
//     backend lacking it, answered by the proxy for a Query), and the
//     session forgets the name (restored if the server fails the
//     DEALLOCATE). Schema changes: CREATE,
//     ALTER, DROP and DO run through the proxy (again when their transaction
//     ends), and the errors a stale copy gives ("cached plan must not change
//     result type" 0A000, "cache lookup failed for type" XX000), move the
//     registry to a new epoch: a Parse of an older statement's text makes a
//     new statement (new server name, prepared afresh), while the sessions
//     holding the old one meet the server's error as they would directly,
//     and re-prepare. After an error in the extended protocol the session
//     skips the client's messages up to Sync (Query included), as the
//     server does, and undoes the skipped Parse/Close of named statements,
//     newest first. COPY FROM STDIN run by Execute: the Sync already sent
//     behind it is ignored by the server, which answers CopyDone at the
//     client's next Sync or Flush. A batch forwarded without Sync is flushed
//     (injected Flush) and its responses relayed every 64 KiB, so clients
//     that pipeline megabytes while reading in the background (pgx batches)
//     do not stall.
//  10. Pinning: Query and Parse texts are classified (pg.Classify); SET and
//     RESET (not SET LOCAL/TRANSACTION/CONSTRAINTS), set_config(), SQL
//     PREPARE/EXECUTE/DEALLOCATE, DISCARD, LISTEN, temporary tables, views
//     and sequences, DECLARE … WITH HOLD, session-level advisory locks, LOAD
//     and any statement longer than 16384 bytes pin the session to its
//     backend for its remaining life. Each pin logs RDS's line "The client
//     session was pinned to the database connection [dbConnection=N] for
//     the remainder of the session. … Reason: …" and counts in
//     DatabaseConnectionsCurrentlySessionPinned. (RDS's 2023 list also
//     names nextval/setval; the emulator does not pin on them.) While a
//     pinned session waits for its client (from 1 ms after its last
//     response, so that clients that come straight back cost nothing), a
//     goroutine waits (reading nothing) for its backend to become readable
//     and wakes the session,
//     which relays what the server sent on its own as it arrives:
//     NotificationResponse for its LISTEN, NoticeResponse, ParameterStatus,
//     or the FATAL of a terminated backend (the session then ends). A
//     session that is not pinned holds no backend between transactions; one
//     waiting inside a transaction gets such messages with its next
//     response.
//  11. End: a pinned backend is reset (ROLLBACK if needed, DISCARD ALL, the
//     InitQuery again) or closed after LOAD; a backend left in a transaction
//     by a vanished client is rolled back and returned; a backend that was
//     mid-response is closed. A backend that dies mid-request gives its
//     client the server's FATAL (or FATAL 08006; nothing when it died inside
//     a message of more than 32 KiB being streamed) and ends that session
//     only.
//     A failover that takes the session's backend away (the core's
//     proxy.Client.Evicted: the session was pinned to it, or had a
//     transaction or statement on it) ends the session at once with FATAL
//     57P01 (failoverPinnedText / failoverTxText); the session asks
//     Evicted at every I/O error and after setting the client read
//     deadline, and sends nothing more to that backend.
//     IdleClientTimeout closes clients idle between requests (FATAL 57P05);
//     the core's Limits.ClientMaxAge ends clients between transactions
//     (FATAL 57P01).
//  12. Lifetimes of server connections are the core's (package proxy,
//     Pools).
//
// # Memory
//
// An idle session holds its goroutine (started after the handshake, so the
// stack TLS and SCRAM grew is not kept), a 1 KiB read buffer, its small
// state and the core's Client (an idle pinned session also its watching
// goroutine); the 16 KiB read buffer (wire.Reader's pool) and the 16 KiB
// client writer (Protocol.writers) are taken per request and given back
// when it ends.
//
// # Limits
//
// A client that pipelines very large batches without reading at all can
// deadlock against the server, as it would directly.
// CancelRequest cannot reach another client's statement: the session's
// lock (proxy.Client.Held) is held from the lookup of the backend until
// the server has taken the request (it closes the cancel connection after signalling), so the
// backend cannot be returned in between, and a cancel that lands after the
// statement finished is discarded by PostgreSQL when it reads the next
// command. Statement registries start afresh at
// Config.RegistryStatements distinct statements.
//
// Schema changes made beside the proxy (straight to the database) are seen
// only through the errors they cause: the first session to Parse an
// affected statement afresh may be answered from a stale server copy and
// get "cached plan must not change result type" once. A session that binds
// a statement it prepared before a schema change, on a server connection
// that never held it, gets it prepared afresh (PgBouncer does the same)
// where a direct connection would fail. SQL EXECUTE of a statement prepared
// with the protocol before the session was pinned names the client's name,
// which the server does not know (only DEALLOCATE is translated). The
// watch of an idle backend looks at its socket: with TLS to the database,
// bytes the TLS layer has already decrypted are not seen until more arrive.
package postgres
