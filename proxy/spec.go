package proxy

import (
	"log/slog"
	"time"

	"github.com/rdslocal/rdslocal/acmcert"
	"github.com/rdslocal/rdslocal/iamauth"
)

// SecretReader reads the AWSCURRENT SecretString of a Secrets Manager
// secret; *secrets.Store implements it. It is called at every login (so a
// PutSecretValue takes effect on the next one) and whenever the proxy opens a
// database connection. It must be safe for concurrent use.
type SecretReader interface {
	CurrentValue(account, region, secretID string) (string, error)
}

// TokenValidator validates RDS IAM auth tokens; *iamauth.TokenValidator
// implements it. It must be safe for concurrent use.
type TokenValidator interface {
	Validate(token string, want iamauth.TokenExpectation) (iamauth.Identity, error)
}

// ManagerConfig is what a Manager needs from the rest of the emulator.
type ManagerConfig struct {
	// Secrets resolves each AuthSpec.SecretArn. Required.
	Secrets SecretReader
	// Tokens validates IAM tokens; nil rejects every IAM login.
	Tokens TokenValidator
	// Certs issues endpoint certificates; nil means the listeners answer
	// SSLRequest with 'N' (and RequireTLS/IAM logins then always fail).
	Certs *acmcert.EndpointCerts
	// Logger receives the proxy's log lines (pin notices, debug SQL, errors);
	// nil discards them.
	Logger *slog.Logger
	// Limits overrides RDS Proxy's fixed limits (tests shorten them).
	Limits Limits
}

// Limits are the proxy's fixed limits; a zero field takes its default.
type Limits struct {
	// PreparedPerConnection caps the statements kept prepared on one server
	// connection; the least recently used are closed (200, PgBouncer's
	// max_prepared_statements).
	PreparedPerConnection int
	// RegistryStatements is how many distinct statements a proxy interns
	// before it starts afresh (10,000).
	RegistryStatements int
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
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.PreparedPerConnection, 200)
	def(&l.RegistryStatements, 10000)
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

// ClientPasswordAuthType values of AuthSpec for PostgreSQL.
const (
	AuthSCRAM = "POSTGRES_SCRAM_SHA_256"
	AuthMD5   = "POSTGRES_MD5"
)

// ProxySpec is the desired state of one DB proxy, as the control plane
// computes it. Apply takes the full list of proxies each time.
type ProxySpec struct {
	ID           string // prx-…; the key Apply reconciles by
	Name         string // DBProxyName; the proxy label of metrics
	Account      string
	Region       string
	EngineFamily string // POSTGRESQL (other families are ignored for now)

	RequireTLS        bool
	IdleClientTimeout time.Duration // zero: no idle timeout
	DebugLogging      bool          // log every statement's SQL

	Auth      []AuthSpec
	Pool      PoolSpec
	Targets   []TargetSpec
	Endpoints []EndpointSpec
}

// AuthSpec is one entry of a proxy's Auth list: a secret holding a database
// user's credentials and how clients of that user authenticate.
type AuthSpec struct {
	UserName               string // informational; the secret's username is what logins match
	SecretArn              string
	IAMAuth                string // DISABLED | REQUIRED | ENABLED
	ClientPasswordAuthType string // POSTGRES_SCRAM_SHA_256 (default) | POSTGRES_MD5
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
}

// TargetSpec is one database behind the proxy.
type TargetSpec struct {
	ID   string
	Host string
	Port int
	Role string // READ_WRITE (the current writer) | READ_ONLY
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
