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

// errRetired means the target left the proxy's target list (or changed
// address) while a borrow waited; Borrow re-routes and tries again.
var errRetired = errors.New("proxy: target retired")

// DialError is how a protocol's Dial or Probe says the server refused the
// connection and why (an authentication failure, a database that does not
// exist, the server starting up). The core stops retrying on it.
type DialError struct {
	// Auth marks an authentication failure (target health AUTH_FAILURE).
	Auth bool
	// Full marks a server without room for another connection (MySQL
	// 1040 Too many connections): its other clients hold what
	// max_connections leaves, or it has not yet freed the slot of a
	// connection the proxy just closed. The borrow waits and tries again,
	// as when the pool is full, instead of failing; the target stays
	// healthy.
	Full bool
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
// explained its refusal, or there is no password to try.
func finalDialError(err error) bool {
	var de *DialError
	return errors.As(err, &de) || KindOf(err) == NoCredentials
}

// serverFull reports whether err is a server's refusal for lack of room.
func serverFull(err error) bool {
	var de *DialError
	return errors.As(err, &de) && de.Full
}
