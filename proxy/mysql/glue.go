package mysql

import (
	"slices"
	"time"

	"github.com/rdslocal/rdslocal/proxy"
)

// This file is the seam as the MySQL protocol sees it: the core's types
// under the names the protocol uses, and the settings a session reads
// from its proxy's spec.

// Key identifies a pool of interchangeable server connections. For MySQL,
// Database is the default schema the connections have selected ("" for
// none) and Variant encodes the capability flags and character set a
// connection was opened with, so a connection is only reused by clients it
// can serve byte for byte.
type Key = proxy.PoolKey

// DialRequest says what server connection to open.
type DialRequest = proxy.DialRequest

// Auth is the proxy's Auth entry for a login user.
type Auth = proxy.AuthSpec

// IAMAuth and ClientPasswordAuthType values.
const (
	IAMDisabled     = proxy.IAMDisabled
	IAMRequired     = proxy.IAMRequired
	IAMEnabled      = proxy.IAMEnabled
	AuthNative      = proxy.AuthNative
	AuthCachingSHA2 = proxy.AuthCachingSHA2
)

// Settings are the proxy settings a session logs in with.
type Settings struct {
	ProxyID             string // keys the caching_sha2 fast-auth cache
	RequireTLS          bool
	IdleClientTimeout   time.Duration // zero: none
	DebugLogging        bool          // log every statement's SQL
	ExcludeVariableSets bool          // SessionPinningFilters has EXCLUDE_VARIABLE_SETS
	// Target is host:port of the database the endpoint routes to now; its
	// greeting (version string, capabilities) is what clients see.
	Target string
}

// settingsOf reads a session's settings from its proxy's spec.
func settingsOf(c *proxy.Client) Settings {
	sp := c.Spec()
	return Settings{ProxyID: sp.ID, RequireTLS: sp.RequireTLS, IdleClientTimeout: sp.IdleClientTimeout,
		DebugLogging: sp.DebugLogging, ExcludeVariableSets: slices.Contains(sp.Pool.SessionPinningFilters, "EXCLUDE_VARIABLE_SETS"),
		Target: c.TargetAddr()}
}

// borrow borrows a server connection of key, preferring prefer (nil: none).
func borrow(c *proxy.Client, key Key, prefer *Backend) (*Backend, error) {
	var pref proxy.ServerConn
	if prefer != nil {
		pref = prefer
	}
	sc, err := c.Borrow(key, pref)
	if err != nil {
		return nil, err
	}
	return sc.(*Backend), nil
}
