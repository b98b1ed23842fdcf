// Package proxy is the engine-neutral core of the RDS Proxy emulator's data
// plane: one listener per proxy endpoint, the routing of each endpoint to
// its targets, a connection budget and pools per target, borrowing and
// returning server connections, pinning accounting, health probes,
// metrics, and client-connection accounting. The wire protocols live
// beside it, one package each (proxy/postgres, proxy/mysql), and know the
// core only through the seam in protocol.go and client.go; the core imports
// none of them, nor any service of the emulator (secrets, IAM tokens and
// certificates come through the small interfaces in auth.go).
//
// # API
//
// The server wires the Manager with one Protocol value per engine family:
//
//	m := proxy.NewManager(proxy.ManagerConfig{
//		Protocols:   []proxy.Protocol{postgres.New(postgres.Config{})},
//		Credentials: …, Tokens: …, Certs: …,
//	})
//
// The control plane computes the desired state of every proxy (ProxySpec:
// auth entries, TLS, timeouts, pool settings, targets and endpoints) and
// hands the full list to Manager.Apply, which reconciles: new endpoints get
// listeners, removed ones are closed together with their sessions, changed
// settings apply to sessions that log in afterwards (existing sessions keep
// the settings they logged in with, except pool sizes and the borrow
// timeout, which are read at each borrow), and when the target list changes
// connections to a removed or moved target are closed as they come back.
// Proxies of a family no protocol serves are not run. Status, TargetHealth
// and WriteMetrics report; Close stops everything and waits for every
// goroutine.
//
// # Concurrency
//
// Every Manager method is safe for concurrent use. Apply and Close run one
// at a time; they hold the state mutex only while they change the running
// state (opening listeners, telling sessions to end) and wait for sessions
// to end after releasing it, so Status, TargetHealth and WriteMetrics (no
// I/O, the state mutex only) are never held up by a draining endpoint.
// The Manager never calls back into its caller.
//
// A client session runs on one goroutine (the one the core starts per
// accepted connection, then the one the protocol continues on): it calls
// its Client's methods, and holds at most one server connection at a
// time, which nobody else touches until it is released. Other goroutines
// reach a session only through its Client: the core's kill (context
// cancelled, client connection closed, a deadline on the held server
// connection), and Client.Held, which runs a function on the held
// connection while Borrow and Release wait (a cancel request or KILL
// reaches the statement running now, never the next client of a returned
// connection). Pools, targets and routes are shared: their state is under
// each target's mutex, routes and specs are replaced atomically.
//
// # The seam
//
// It is at accept, borrow and return, never per message:
//
//   - Protocol (protocol.go): Family, Serve(*Client), Dial and Probe. A
//     protocol keeps its private state in its own value (cancel keys,
//     authentication caches) and, per proxy or per pool, in the slots the
//     core keeps for it (Client.ProxyState, Pooled.PoolState).
//   - Client (client.go): the accepted connection, its context, the
//     proxy's settings, Credentials and CheckToken, Borrow (by PoolKey,
//     with a preferred connection) and Release, Pin, Held, Continue,
//     Evicted (the failover hook, below), the endpoint's Metrics and the
//     accounting hooks (Transport, SetupDone, SetupFailed, QueryDone).
//   - ServerConn and Pooled (protocol.go): a protocol's server connection
//     type embeds the *Pooled of its DialRequest (the core's bookkeeping:
//     target, pool, id, the socket it peeks at, age, transaction gauge) and
//     has Close. The protocol's hot path keeps its concrete type: it
//     asserts it once per borrow.
//   - Error and DialError (errors.go): what policy raises (Kind
//     BorrowTimeout, NoCredentials, AuthFailed, NoReaders, Failover),
//     each protocol rendering
//     it as its database's own error; and a protocol's report of a
//     refusal the server explained, which dialFailure, the one classifier,
//     turns into target health (AUTH_FAILURE, CONNECTION_FAILED,
//     UNREACHABLE).
//
// Adding a protocol is a package under proxy/ and one entry in the
// server's list (server/dataplane.go).
//
// # Failover and READ_ONLY endpoints
//
// The control plane lists as targets only the instances serving their role
// now. When Apply retires a target (it left the list, changed address, or
// stopped being the writer), its idle connections close, borrowed ones
// close as they come back, and every session holding one of its
// connections (pinned to it, or in a transaction or statement on it) is
// evicted: the core sets the held connection's deadline and the client
// connection's read deadline to now, and the protocol, at the error this
// causes wherever the session waits, finds Client.Evicted non-nil and ends
// the session with its database's error (PostgreSQL: FATAL 57P01; MySQL:
// ERROR 1053 (08S01)). Idle
// sessions hold nothing and borrow from the new writer next time; borrows
// wait up to ConnectionBorrowTimeout while no target serves the role.
// READ_ONLY endpoints route to readers only (never the writer): the
// healthy one with the fewest borrowed connections, round robin among
// equals; a reader whose dial fails is skipped for another at once; a
// proxy without readers (ProxySpec.HasReaders) fails their borrows at once
// (Kind NoReaders).
//
// # Files
//
//   - manager.go: Manager, Apply and its reconciliation, Status, Close.
//   - endpoint.go: listeners, the accept loop, ending an endpoint's sessions.
//   - route.go: the target set, routing by endpoint role (readers by
//     health and load), retiring targets and evicting their sessions.
//   - client.go: Client: the session's side of the core, borrowing and
//     returning, pinning, client-connection accounting.
//   - pool.go: targets (connection budget, FIFO waiters, dialling with
//     retries, reaping idle and old connections, retirement) and pools.
//   - health.go: probes every 15 s and target health.
//   - auth.go: the credential, token and certificate interfaces; looking
//     up a login's secret; IAM token checks.
//   - errors.go: Error, DialError, the dial-error classifier.
//   - metrics.go: CloudWatch-named counters and gauges, WriteMetrics.
//   - spec.go: ManagerConfig, Limits and the desired-state types.
//   - socket_*.go, rawio_*.go: liveness peeks and readiness waits on
//     sockets; raw system-call I/O for TCP connections (RawConn).
//
// # Pools
//
// A target's budget is MaxConnectionsPercent of the server's
// max_connections (learned with the first connection: the budget is one
// until then), shared by its pools (one per PoolKey: user, database and a
// protocol-defined variant). A borrow takes the preferred connection if it
// is idle in the pool, else the most recently returned one (each checked
// with a non-blocking peek, so connections killed or lost while idle are
// discarded), else opens one within the budget (closing an idle connection
// of another pool to make room), else waits in FIFO order up to the
// ConnectionBorrowTimeout. A dial failure is retried until the deadline
// (the database may be restarting) unless the server explained it; a
// server without a connection slot free (DialError.Busy) caps the budget
// for a second at the connections the proxy holds, so the borrow waits in
// line for one of them to come back (or, holding none, dials again).
// Returned connections go back to the idle list even above
// MaxIdleConnectionsPercent; every minute (or sooner, with short Limits)
// the reaper closes connections unused for Limits.IdleConnectionAfter
// beyond that share, and idle ones older than Limits.ConnectionMaxAge.
// Health probes take a slot of the budget, and are skipped while it is
// full (the pool's own dials report health then).
package proxy
