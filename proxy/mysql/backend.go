package mysql

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/pingcap/tidb/pkg/parser/charset"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/mysql/wire"
)

// Backend is one server connection. go-mysql's client opens and
// authenticates it; the proxy then takes over the raw connection (its own
// buffered reader and writer) for relaying. It embeds the core's record
// of the connection (nil for a health probe's).
type Backend struct {
	*proxy.Pooled

	nc   net.Conn
	r    *wire.Reader
	w    *bufio.Writer
	caps uint32 // the capabilities negotiated with the server
	tls  bool

	threadID uint32 // the server's connection ID, for KILL QUERY
	version  string
	flavor   *flavor
	key      Key
	charset  string // SET NAMES … COLLATE … when the handshake could not carry the collation
	init     []string

	base state // tracked values right after Dial (and after a reset)
	cur  state // tracked values now

	lastInsertID uint64
	status       uint16 // of the last OK or EOF
	owner        uint64 // serial of the session that used it last
	inTx         bool
	broken       bool
}

// Close says goodbye (COM_QUIT) and closes the connection.
func (b *Backend) Close() {
	if !b.broken {
		b.nc.SetWriteDeadline(time.Now().Add(time.Second))
		b.w.Reset(b.nc)
		b.w.Write(wire.AppendCommand(nil, gm.COM_QUIT, nil))
		b.w.Flush()
	}
	b.nc.Close()
}

// NetConn is the underlying connection (for liveness checks and deadlines).
func (b *Backend) NetConn() net.Conn { return b.nc }

// ThreadID is the server's connection ID.
func (b *Backend) ThreadID() uint32 { return b.threadID }

// Version is the server's version string.
func (b *Backend) Version() string { return b.version }

// variant encodes what a server connection must share with its client.
type variant struct {
	caps    uint32
	charset byte
}

// variantCaps are the capability flags that change what goes over the
// wire or how statements behave, so a server connection serves only
// clients that negotiated the same ones.
const variantCaps = gm.CLIENT_FOUND_ROWS | gm.CLIENT_IGNORE_SPACE | gm.CLIENT_LOCAL_FILES |
	gm.CLIENT_MULTI_STATEMENTS | gm.CLIENT_MULTI_RESULTS | gm.CLIENT_PS_MULTI_RESULTS |
	gm.CLIENT_SESSION_TRACK | gm.CLIENT_DEPRECATE_EOF

func (v variant) String() string { return fmt.Sprintf("%08x.%d", v.caps&variantCaps, v.charset) }

func parseVariant(s string) (variant, error) {
	c, cs, ok := strings.Cut(s, ".")
	caps, err1 := strconv.ParseUint(c, 16, 32)
	chs, err2 := strconv.ParseUint(cs, 10, 8)
	if !ok || err1 != nil || err2 != nil {
		return variant{}, fmt.Errorf("mysql: bad pool variant %q", s)
	}
	return variant{caps: uint32(caps), charset: byte(chs)}, nil
}

// optionalCaps are the flags go-mysql's client sets on request; every
// variant flag is one of them but CLIENT_DEPRECATE_EOF, which it sets by
// default.
var optionalCaps = []uint32{gm.CLIENT_FOUND_ROWS, gm.CLIENT_IGNORE_SPACE, gm.CLIENT_LOCAL_FILES,
	gm.CLIENT_MULTI_STATEMENTS, gm.CLIENT_MULTI_RESULTS, gm.CLIENT_PS_MULTI_RESULTS, gm.CLIENT_SESSION_TRACK}

// dial opens and authenticates one server connection with go-mysql's
// client, then takes it over.
func (p *Protocol) dial(ctx context.Context, req DialRequest) (*Backend, error) {
	v, err := parseVariant(req.Key.Variant)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(req.Host, strconv.Itoa(req.Port))
	collation, unknownCollation := "", false
	if c, err := charset.GetCollationByID(int(v.charset)); err == nil && c.ID < 256 {
		collation = c.Name
	} else {
		unknownCollation = true
	}
	useTLS := req.TLS
	if g, ok := p.greeting(addr); ok && g.Caps&gm.CLIENT_SSL == 0 {
		useTLS = false // TLS when asked and offered
	}
	connect := func(useTLS bool) (*client.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		return client.ConnectWithDialer(ctx, "tcp", addr, req.Key.User, req.Password, req.Key.Database, d.DialContext,
			func(c *client.Conn) error {
				for _, f := range optionalCaps {
					if v.caps&f != 0 {
						if err := c.SetCapability(f); err != nil {
							return err
						}
					} else {
						c.UnsetCapability(f)
					}
				}
				if v.caps&gm.CLIENT_DEPRECATE_EOF == 0 {
					c.UnsetCapability(gm.CLIENT_DEPRECATE_EOF)
				}
				// Queries carry no attributes: clients cannot have
				// negotiated them with the proxy (issue #1041).
				c.UnsetCapability(gm.CLIENT_QUERY_ATTRIBUTES)
				c.UnsetCapability(gm.CLIENT_COMPRESS)
				if collation != "" {
					if err := c.SetCollation(collation); err != nil {
						return err
					}
				}
				if useTLS {
					c.SetTLSConfig(&tls.Config{InsecureSkipVerify: true}) // the proxy does not verify the database's certificate
				}
				return nil
			})
	}
	cc, err := connect(useTLS)
	if err != nil && useTLS && strings.Contains(err.Error(), "does not support TLS") {
		cc, err = connect(false)
		useTLS = false
	}
	if err != nil {
		var me *gm.MyError
		if errors.As(err, &me) {
			return nil, &proxy.DialError{Auth: me.Code == gm.ER_ACCESS_DENIED_ERROR || me.Code == gm.ER_DBACCESS_DENIED_ERROR,
				// No slot for us: max_connections, the max_user_connections
				// variable, the user's MAX_USER_CONNECTIONS.
				Busy: me.Code == gm.ER_CON_COUNT_ERROR || me.Code == gm.ER_TOO_MANY_USER_CONNECTIONS || me.Code == gm.ER_USER_LIMIT_REACHED,
				Code: strconv.Itoa(int(me.Code)), Msg: me.Message, Err: me}
		}
		return nil, err
	}
	b := &Backend{Pooled: req.Pooled, nc: cc.Conn.Conn, tls: useTLS, threadID: cc.GetConnectionID(), version: cc.GetServerVersion(), key: req.Key,
		caps: v.caps | gm.CLIENT_PROTOCOL_41 | gm.CLIENT_TRANSACTIONS}
	b.flavor = flavorOf(b.version)
	fail := func(err error) (*Backend, error) {
		cc.Close()
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		b.nc.SetDeadline(d)
	}
	maxConns := 0
	if req.NeedMaxConnections {
		r, err := cc.Execute("SELECT @@max_connections")
		if err != nil {
			return fail(fmt.Errorf("read max_connections: %w", err))
		}
		n, err := r.GetInt(0, 0)
		if err != nil {
			return fail(fmt.Errorf("read max_connections: %w", err))
		}
		maxConns = int(n)
	}
	// go-mysql is done with the connection (nothing stays buffered after
	// a complete response): from here on the proxy reads and writes it
	// with raw system calls, like the core's client side (proxy.RawConn;
	// a TLS connection stays as it is).
	b.nc = proxy.RawConn(b.nc)
	b.r = wire.NewSmallReader(b.nc, 512)
	b.w = bufio.NewWriterSize(b.nc, 16<<10)
	if unknownCollation {
		row, err := b.queryRow(fmt.Sprintf("SELECT CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS WHERE ID = %d", v.charset))
		if err != nil || len(row) != 2 {
			return fail(fmt.Errorf("mysql: the server has no collation %d", v.charset))
		}
		b.charset = "SET NAMES " + row[0] + " COLLATE " + row[1]
	}
	b.init = splitStatements(req.InitQuery)
	if err := b.initSession(); err != nil {
		return fail(err)
	}
	b.nc.SetDeadline(time.Time{})
	b.r.Release()
	if b.Pooled != nil {
		b.Init(b.nc, maxConns)
	}
	return b, nil
}

// initSession runs what makes a fresh (or reset) connection the pool's:
// the character set, the InitQuery, then reads the tracked values.
func (b *Backend) initSession() error {
	if b.charset != "" {
		if err := b.exec(b.charset); err != nil {
			return err
		}
	}
	for _, q := range b.init {
		if err := b.exec(q); err != nil {
			return fmt.Errorf("InitQuery: %w", err)
		}
	}
	if err := b.readBack(); err != nil {
		return err
	}
	b.base = b.cur
	return nil
}

// reset makes a pinned session's connection clean for other clients:
// COM_RESET_CONNECTION (rolls back, drops temporary tables and prepared
// statements, releases locks, clears user variables, restores the
// handshake's session variables), then the pool's initialisation again
// and its default schema. It reports whether the connection is reusable.
func (b *Backend) reset() bool {
	b.nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer b.nc.SetDeadline(time.Time{})
	if err := b.roundTrip(wire.AppendCommand(nil, gm.COM_RESET_CONNECTION, nil), gm.COM_RESET_CONNECTION, nil); err != nil {
		return false
	}
	b.lastInsertID = 0
	if b.initSession() != nil {
		return false
	}
	return b.restoreSchema()
}

// restoreSchema selects the pool's schema again if a session changed it;
// a connection that cannot go back (no schema, or the schema dropped) is
// not reusable.
func (b *Backend) restoreSchema() bool {
	if b.cur.schema == b.key.Database {
		return true
	}
	if b.key.Database == "" {
		return false
	}
	b.nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer b.nc.SetDeadline(time.Time{})
	if b.roundTrip(wire.AppendCommand(nil, gm.COM_INIT_DB, []byte(b.key.Database)), gm.COM_INIT_DB, nil) != nil {
		return false
	}
	b.cur.schema = b.key.Database
	return true
}

// exec runs one statement and discards its results.
func (b *Backend) exec(q string) error {
	return b.roundTrip(wire.AppendCommand(nil, gm.COM_QUERY, []byte(q)), gm.COM_QUERY, nil)
}

// queryRow runs a query and returns its first row as text (NULL as
// nullValue).
func (b *Backend) queryRow(q string) ([]string, error) {
	var row []string
	err := b.roundTrip(wire.AppendCommand(nil, gm.COM_QUERY, []byte(q)), gm.COM_QUERY, func(p []byte) error {
		if row != nil {
			return nil
		}
		row = []string{}
		for len(p) > 0 {
			s, null, n := wire.LenEncString(p)
			if n == 0 {
				return wire.ErrMalformed
			}
			if null {
				row = append(row, nullValue)
			} else {
				row = append(row, string(s))
			}
			p = p[n:]
		}
		return nil
	})
	return row, err
}

// roundTrip sends one command built by the proxy and reads its whole
// response; onRow, if set, sees every row packet of a text result set.
// The server's ERR comes back as a *gm.MyError; the connection stays
// usable after one.
func (b *Backend) roundTrip(pkt []byte, cmd byte, onRow func([]byte) error) error {
	if _, err := b.w.Write(pkt); err != nil {
		b.broken = true
		return err
	}
	if err := b.w.Flush(); err != nil {
		b.broken = true
		return err
	}
	var resp wire.Response
	resp.Start(wire.KindOf(cmd), b.caps&gm.CLIENT_DEPRECATE_EOF != 0)
	var srvErr error
	for !resp.Ended() {
		n, _, err := b.r.Header()
		if err != nil {
			b.broken = true
			return err
		}
		body, err := b.r.Body(n)
		if err != nil {
			b.broken = true
			return err
		}
		wasRows := resp.InRows()
		ev, err := resp.Next(n, body[:min(n, wire.HeadSize)])
		if err != nil {
			b.broken = true
			return err
		}
		switch {
		case ev == wire.LocalInfile:
			// Never asked for by the proxy's own statements; refuse with
			// the empty packet that ends the file.
			b.w.Write(wire.AppendHeader(nil, 0, 0))
			if err := b.w.Flush(); err != nil {
				b.broken = true
				return err
			}
		case ev == wire.Done && resp.Err:
			srvErr = wire.ParseErr(body)
		case wasRows && ev == wire.More && onRow != nil && srvErr == nil:
			if err := onRow(body); err != nil {
				srvErr = err
			}
		}
	}
	if resp.HasStatus {
		b.noteStatus(resp.Status)
	}
	if resp.InsertID != 0 {
		b.lastInsertID = resp.InsertID
	}
	return srvErr
}

// noteStatus records the status flags of an OK or EOF packet.
func (b *Backend) noteStatus(st uint16) {
	b.status = st
	if st&gm.SERVER_STATUS_AUTOCOMMIT != 0 {
		b.cur.v[varAutocommit] = "1"
	} else {
		b.cur.v[varAutocommit] = "0"
	}
}

// splitStatements splits an InitQuery into statements, so that it runs on
// connections without CLIENT_MULTI_STATEMENTS.
func splitStatements(q string) []string {
	var out []string
	lx := lexer{s: []byte(q)}
	start := 0
	for {
		t := lx.next()
		if t.kind == tEOF || t.kind == tSemi {
			if s := strings.TrimSpace(q[start:t.start]); s != "" {
				out = append(out, s)
			}
			start = t.end
		}
		if t.kind == tEOF {
			return out
		}
	}
}
