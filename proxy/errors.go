package proxy

import (
	"errors"
	"net"
)

// Kind says what policy refused; each protocol renders it as its
// database's own error (PostgreSQL: 53300 "Timed-out waiting to acquire
// database connection."; MySQL: ERROR 9501).
type Kind uint8

// Kinds of Error.
const (
	// BorrowTimeout: no server connection within ConnectionBorrowTimeout
	// (the pool was full, no target served the endpoint's role, or the
	// database did not answer).
	BorrowTimeout Kind = iota + 1
	// NoCredentials: the pool's secret cannot be read and no password
	// worked before.
	NoCredentials
	// AuthFailed: an IAM auth token is not valid for this endpoint, region
	// and user (CheckToken).
	AuthFailed
	// NoReaders: a READ_ONLY endpoint's proxy has no reader to route to at
	// all (its target is an RDS instance, or an Aurora cluster with a
	// writer only): the request fails at once, as RDS documents, instead
	// of waiting for a reader (ProxySpec.HasReaders).
	NoReaders
	// Failover: the session's server connection was taken away because its
	// target stopped serving the endpoint's role (a failover, or the
	// target left the proxy) while the session was pinned to it or had a
	// transaction or statement in progress on it. The session's state
	// cannot move to another server: the protocol ends the session with
	// its error (Client.Evicted).
	Failover
)

// Error is what the core's policy raises to a protocol.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil && e.Msg == "" {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf is the Kind of the *Error in err's chain, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// errBorrowTimeout is returned by Borrow when the deadline passed.
var errBorrowTimeout = &Error{Kind: BorrowTimeout, Msg: "timed out waiting to acquire a database connection"}

// errNoReaders is returned by Borrow on a READ_ONLY endpoint whose proxy
// has no reader at all.
var errNoReaders = &Error{Kind: NoReaders, Msg: "the proxy's target has no reader DB instances"}

// errFailover is Client.Evicted's error.
var errFailover = &Error{Kind: Failover, Msg: "the session's database connection was to a target that no longer serves the endpoint (failover)"}

// errDialOnce is returned by a borrow that dials only once (a reader, when
// others may serve) and failed with an error that retrying could cure.
var errDialOnce = errors.New("proxy: dial failed")

// errRetired means the target left the proxy's target list (or changed
// address) while a borrow waited; Borrow re-routes and tries again.
var errRetired = errors.New("proxy: target retired")

// DialError is how a protocol's Dial or Probe says the server refused the
// connection and why (an authentication failure, a database that does not
// exist, the server starting up). The core stops retrying on it.
type DialError struct {
	// Auth marks an authentication failure (target health AUTH_FAILURE).
	Auth bool
	// Busy marks a server with no connection slot free for the proxy
	// (PostgreSQL 53300, MySQL 1040): other clients hold the rest of
	// max_connections, or its reserved slots. The core then treats the
	// target's budget as full for a moment, so the request waits for a
	// connection to come back instead of failing, and health is unchanged.
	Busy bool
	// Code is the server's error code (PostgreSQL SQLSTATE, MySQL error
	// number) and Msg its message, as the protocol renders them to clients.
	Code, Msg string
	Err       error
}

func (e *DialError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Code + ": " + e.Msg
}

func (e *DialError) Unwrap() error { return e.Err }

// Health states and reasons, as DescribeDBProxyTargets reports them.
const (
	healthAvailable   = "AVAILABLE"
	healthUnavailable = "UNAVAILABLE"
	healthRegistering = "REGISTERING"

	reasonAuthFailure      = "AUTH_FAILURE"
	reasonConnectionFailed = "CONNECTION_FAILED"
	reasonUnreachable      = "UNREACHABLE"
)

// dialFailure classifies a failed Dial or Probe for target health: the
// server's refusal (AUTH_FAILURE for authentication, else
// CONNECTION_FAILED), a secret that cannot be read (AUTH_FAILURE), a
// timeout (UNREACHABLE), anything else CONNECTION_FAILED. It is the one
// place dial errors are classified.
func dialFailure(err error) (reason, description string) {
	var de *DialError
	if errors.As(err, &de) {
		if de.Auth {
			return reasonAuthFailure, de.Msg
		}
		return reasonConnectionFailed, de.Msg
	}
	if KindOf(err) == NoCredentials {
		return reasonAuthFailure, err.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return reasonUnreachable, err.Error()
	}
	return reasonConnectionFailed, err.Error()
}

// finalDialError reports whether retrying a dial cannot help: the server
// explained its refusal (other than having no slot free), or there is no
// password to try.
func finalDialError(err error) bool {
	var de *DialError
	if errors.As(err, &de) {
		return !de.Busy
	}
	return KindOf(err) == NoCredentials
}

// busyDialError reports whether the server refused a connection for lack
// of a free slot.
func busyDialError(err error) bool {
	var de *DialError
	return errors.As(err, &de) && de.Busy
}

// errBusy: the server had no slot for a new connection while the proxy
// holds others; the borrower waits for one of those to come back.
var errBusy = errors.New("proxy: database has no connection slot free")
