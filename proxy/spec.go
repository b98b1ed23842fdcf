package proxy

import (
	"log/slog"
	"time"
)

// ManagerConfig is what a Manager needs from the rest of the emulator.
type ManagerConfig struct {
	// Protocols serve the engine families, one each (the server's wiring:
	// postgres.New(…), mysql.New(…)). Proxies of other families are not
	// run.
	Protocols []Protocol
	// Credentials reads each AuthSpec.SecretArn. Required.
	Credentials CredentialSource
	// Tokens validates IAM tokens; nil rejects every IAM login.
	Tokens TokenChecker
	// Certs issues endpoint certificates; nil means the listeners offer no
	// TLS (and RequireTLS/IAM logins then always fail).
	Certs CertSource
	// Logger receives the proxy's log lines (pin notices, debug SQL,
	// errors); nil discards them.
	Logger *slog.Logger
	// Limits overrides RDS Proxy's fixed limits (tests shorten them).
	Limits Limits
}

// Limits are the proxy's fixed limits; a zero field takes its default.
// (Protocol-specific ones, such as PostgreSQL's prepared-statement caps,
// are the protocol's configuration.)
type Limits struct {
	// IdleConnectionAfter is how long a server connection goes unused before
	// it counts as idle and may be closed above MaxIdleConnectionsPercent
	// (5 minutes, as RDS Proxy documents).
	IdleConnectionAfter time.Duration
	// ConnectionMaxAge closes idle server connections this old (24 hours).
	ConnectionMaxAge time.Duration
	// ClientMaxAge ends client connections this old at their next idle
	// moment (24 hours, RDS Proxy's maximum client connection life).
	ClientMaxAge time.Duration
}

func (l Limits) withDefaults() Limits {
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&l.IdleConnectionAfter, 5*time.Minute)
	defDur(&l.ConnectionMaxAge, 24*time.Hour)
	defDur(&l.ClientMaxAge, 24*time.Hour)
	return l
}

// Engine families.
const (
	EnginePostgreSQL = "POSTGRESQL"
	EngineMySQL      = "MYSQL"
)

// Target and endpoint roles.
const (
	RoleReadWrite = "READ_WRITE"
	RoleReadOnly  = "READ_ONLY"
)

// IAMAuth values of AuthSpec.
const (
	IAMDisabled = "DISABLED"
	IAMRequired = "REQUIRED"
	IAMEnabled  = "ENABLED" // token or password accepted (cleartext)
)

// ClientPasswordAuthType values of AuthSpec.
const (
	AuthSCRAM       = "POSTGRES_SCRAM_SHA_256"
	AuthMD5         = "POSTGRES_MD5"
	AuthNative      = "MYSQL_NATIVE_PASSWORD"
	AuthCachingSHA2 = "MYSQL_CACHING_SHA2_PASSWORD"
)

// ProxySpec is the desired state of one DB proxy, as the control plane
// computes it. Apply takes the full list of proxies each time.
type ProxySpec struct {
	ID           string // prx-…; the key Apply reconciles by
	Name         string // DBProxyName; the proxy label of metrics
	Account      string
	Region       string
	EngineFamily string // POSTGRESQL | MYSQL: the protocol that serves it

	RequireTLS        bool
	IdleClientTimeout time.Duration // zero: no idle timeout
	DebugLogging      bool          // log every statement's SQL

	Auth      []AuthSpec
	Pool      PoolSpec
	Targets   []TargetSpec
	Endpoints []EndpointSpec

	// HasReaders says the proxy's target has reader instances at all (an
	// Aurora cluster with at least one reader), whether or not one serves
	// now. READ_ONLY endpoints need it: without readers their requests
	// fail at once (Kind NoReaders); with readers of which none is in
	// Targets they wait up to the borrow timeout.
	HasReaders bool
}

// AuthSpec is one entry of a proxy's Auth list: a secret holding a database
// user's credentials and how clients of that user authenticate.
type AuthSpec struct {
	UserName               string // informational; the secret's username is what logins match
	SecretArn              string
	IAMAuth                string // DISABLED | REQUIRED | ENABLED
	ClientPasswordAuthType string // POSTGRES_SCRAM_SHA_256 (default) | POSTGRES_MD5 | MYSQL_NATIVE_PASSWORD | MYSQL_CACHING_SHA2_PASSWORD (default)
}

// PoolSpec is the target group's connection pool configuration.
type PoolSpec struct {
	// MaxConnectionsPercent of the target's max_connections may be open;
	// zero or less means 100.
	MaxConnectionsPercent int
	// MaxIdleConnectionsPercent of max_connections may be kept idle; taken
	// as given (zero keeps none), capped at MaxConnectionsPercent.
	MaxIdleConnectionsPercent int
	// BorrowTimeout bounds the wait for a database connection; zero means
	// 120 s (the RDS default).
	BorrowTimeout time.Duration
	// InitQuery runs on every new database connection.
	InitQuery string
	// SessionPinningFilters are the target group's filters
	// (EXCLUDE_VARIABLE_SETS: MySQL sessions that set variables do not pin).
	SessionPinningFilters []string
}

// TargetSpec is one database behind the proxy.
type TargetSpec struct {
	ID   string
	Host string
	Port int
	// Role is READ_WRITE (the current writer) or READ_ONLY. A target whose
	// role changes from READ_WRITE is replaced, as one that leaves the
	// list: its connections close and the sessions holding them end.
	Role string
}

// EndpointSpec is one listener of the proxy.
type EndpointSpec struct {
	Name string
	// Listen is the host:port to bind.
	Listen string
	// Advertised are the host:port pairs clients dial (IAM tokens must be
	// signed for one); empty means the bound address.
	Advertised []string
	// DNSNames go into the endpoint certificate.
	DNSNames []string
	// TargetRole is READ_WRITE (default) or READ_ONLY.
	TargetRole string
}
