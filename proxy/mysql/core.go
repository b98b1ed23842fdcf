package mysql

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// This file is the seam as the MySQL protocol sees it: what a session
// needs from the engine-neutral core (connection routing, pools with their
// budget and borrow timeout, credentials, IAM tokens, pin accounting,
// metrics). Round 2 replaces these types with the core's (proxy.Client,
// proxy.PoolKey, proxy.DialRequest, proxy.Pooled) in one glue file.

// Key identifies a pool of interchangeable server connections
// (seam: proxy.PoolKey). For MySQL, Database is the default schema the
// connections have selected ("" for none) and Variant encodes the
// capability flags and character set a connection was opened with, so a
// connection is only reused by clients it can serve byte for byte.
type Key struct {
	User, Database, Variant string
}

// DialRequest says what server connection to open (seam: proxy.DialRequest).
type DialRequest struct {
	Host     string
	Port     int
	Key      Key
	Password string // the secret's, read now
	// TLS asks for TLS when the server offers it (RequireTLS).
	TLS bool
	// InitQuery runs on every new connection (and again after a reset).
	InitQuery string
	// NeedMaxConnections asks Dial to read the server's max_connections.
	NeedMaxConnections bool
}

// Auth is the proxy's Auth entry for a login user (seam: proxy.AuthSpec).
type Auth struct {
	IAMAuth                string // DISABLED | REQUIRED | ENABLED
	ClientPasswordAuthType string // MYSQL_NATIVE_PASSWORD | MYSQL_CACHING_SHA2_PASSWORD ("": caching_sha2)
}

// IAMAuth and ClientPasswordAuthType values.
const (
	IAMDisabled     = "DISABLED"
	IAMRequired     = "REQUIRED"
	IAMEnabled      = "ENABLED"
	AuthNative      = "MYSQL_NATIVE_PASSWORD"
	AuthCachingSHA2 = "MYSQL_CACHING_SHA2_PASSWORD"
)

// Settings are the proxy settings a session logs in with (seam: read from
// the proxy.ProxySpec the core hands over).
type Settings struct {
	ProxyID             string // keys the caching_sha2 fast-auth cache
	RequireTLS          bool
	IdleClientTimeout   time.Duration // zero: none
	DebugLogging        bool          // log every statement's SQL
	ExcludeVariableSets bool          // SessionPinningFilters has EXCLUDE_VARIABLE_SETS
	InitQuery           string
	// Target is host:port of the database the endpoint routes to now; its
	// greeting (version string, capabilities) is what clients see.
	Target string
}

// Client is one accepted client connection as the core hands it to
// Protocol.Serve (seam: *proxy.Client). Its methods are safe to call from
// the session's goroutine; Context may be read from any goroutine.
type Client interface {
	// Conn is the accepted connection.
	Conn() net.Conn
	// Context is cancelled when the session must end (endpoint removed,
	// proxy deleted, shutdown).
	Context() context.Context
	Settings() Settings
	// TLSConfig is the endpoint's server TLS configuration; nil: no TLS.
	TLSConfig() *tls.Config
	// Credentials finds the Auth entry whose secret's username is user and
	// returns it with the password, read now.
	Credentials(user string) (auth Auth, password string, ok bool)
	// CheckToken validates an IAM auth token for the endpoint's addresses,
	// the proxy's region and user (and rds-db:connect when enforced).
	CheckToken(token, user string) error
	// Borrow returns a server connection of the pool key names on the
	// target the endpoint routes to, waiting up to
	// ConnectionBorrowTimeout (then an error that Is ErrBorrowTimeout).
	// prefer, if not nil, is the connection the session used last: the
	// core returns it if it is idle in that pool (so statements that read
	// the session's previous results find them).
	Borrow(key Key, prefer *Backend) (*Backend, error)
	// Release returns b to its pool, or closes it if not reusable.
	Release(b *Backend, reusable bool)
	// Pin records that the session keeps b for the rest of its life:
	// RDS's log line and DatabaseConnectionsCurrentlySessionPinned (until
	// the session releases b).
	Pin(b *Backend, reason string)
	// SetupDone and SetupFailed count the client connection's setup.
	SetupDone(tls bool)
	SetupFailed(auth bool)
	// QueryDone counts one client request and its latencies: total as the
	// client saw it, db the part spent waiting for the database.
	QueryDone(tls bool, total, db time.Duration)
	// InTransaction moves b in or out of
	// DatabaseConnectionsCurrentlyInTransaction.
	InTransaction(b *Backend, in bool)
	// Logger receives the session's log lines.
	Logger() *slog.Logger
}

// ErrBorrowTimeout is what Borrow's error Is when no connection came
// within ConnectionBorrowTimeout; the client gets RDS's ERROR 9501.
//
//lint:ignore ST1005 RDS Proxy's exact text reaches the client.
var ErrBorrowTimeout = errors.New("Timed-out waiting to acquire database connection")

// DialError is returned by Dial and Probe when the server refused the
// login and said why (seam: proxy.DialError); Auth marks an
// authentication failure (target health AUTH_FAILURE).
type DialError struct {
	Auth  bool
	Code  uint16
	State string
	Msg   string
}

func (e *DialError) Error() string { return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.State, e.Msg) }
