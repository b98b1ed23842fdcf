package wire

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DialConfig says how to open one server connection.
type DialConfig struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// TLS, when set, makes the connection use TLS when the server offers
	// it and plaintext otherwise (sslmode=prefer); nil means plaintext.
	TLS *tls.Config
	// Params are run-time parameters sent in the startup packet.
	Params map[string]string
	// Setup, if set, runs on the pgconn connection before it is hijacked
	// (the proxy reads max_connections and runs the init query here).
	Setup func(ctx context.Context, c *pgconn.PgConn) error
}

// ServerConn is an authenticated server connection taken over from pgconn:
// the raw (possibly TLS) stream, the backend key for cancel requests and the
// parameters the server reported during startup.
type ServerConn struct {
	Conn   net.Conn
	PID    uint32
	Secret []byte
	Params map[string]string
}

// Dial connects and authenticates to a PostgreSQL server with pgconn (which
// handles TLS negotiation and SCRAM/MD5/cleartext), runs cfg.Setup and then
// hijacks the connection so that the proxy owns the raw stream. The context
// bounds the whole exchange.
func Dial(ctx context.Context, cfg DialConfig) (*ServerConn, error) {
	pc, err := pgconn.ParseConfig("")
	if err != nil {
		return nil, err
	}
	// Nothing from the environment (PGHOST, PGAPPNAME, PGSSLMODE…) leaks in.
	pc.Host = cfg.Host
	pc.Port = uint16(cfg.Port)
	pc.User = cfg.User
	pc.Password = cfg.Password
	pc.Database = cfg.Database
	pc.TLSConfig = cfg.TLS
	pc.Fallbacks = nil
	if cfg.TLS != nil {
		// sslmode=prefer: TLS when the server offers it. The servers
		// rdslocal spawns do not yet, and they are on loopback.
		pc.Fallbacks = []*pgconn.FallbackConfig{{Host: pc.Host, Port: pc.Port}}
	}
	pc.RuntimeParams = map[string]string{}
	for k, v := range cfg.Params {
		pc.RuntimeParams[k] = v
	}
	pc.ValidateConnect = nil
	pc.AfterConnect = nil
	pc.KerberosSrvName = ""
	pc.ConnectTimeout = 0
	pc.DialFunc = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	if pc.Port == 0 {
		return nil, fmt.Errorf("pg: invalid port %s", strconv.Itoa(cfg.Port))
	}
	conn, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	if cfg.Setup != nil {
		if err := cfg.Setup(ctx, conn); err != nil {
			conn.Close(context.Background())
			return nil, err
		}
	}
	if err := conn.SyncConn(ctx); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	hc, err := conn.Hijack()
	if err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	hc.Conn.SetDeadline(time.Time{})
	return &ServerConn{Conn: hc.Conn, PID: hc.PID, Secret: hc.SecretKey, Params: hc.ParameterStatuses}, nil
}

// SendCancel opens a new connection to addr and sends a CancelRequest for
// the backend (pid, secret), as PostgreSQL's cancel protocol requires.
func SendCancel(ctx context.Context, addr string, pid uint32, secret []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(AppendCancelRequest(nil, pid, secret)); err != nil {
		return err
	}
	// The server closes the connection when it has read the request.
	var b [1]byte
	c.Read(b[:])
	return nil
}
