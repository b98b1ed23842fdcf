package postgres

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
)

// held is a statement a server connection has prepared.
type held struct {
	st  *stmt
	use uint64 // when last used (backend.useSeq)
}

// backend is one server connection, owned by at most one session at a
// time. pgconn opens and authenticates it; the proxy then takes over the
// raw stream (its own reader and buffered writer) for relaying.
type backend struct {
	*proxy.Pooled
	tm     *proxy.TargetMetrics
	pp     *poolState
	conn   net.Conn // a proxy.RawConn, or the TLS connection
	r      *wire.Reader
	w      *bufio.Writer
	pid    uint32
	secret []byte

	params   *paramSet       // as the server last reported them
	settings settingValues   // trackedSettings as last set or reported
	defaults settingValues   // the pool's (as its first connection reported them)
	prepared map[uint32]held // by statement id
	useSeq   uint64
	swept    uint64 // the registry's dead generation when unneeded statements were last closed
	unnamed  *stmt  // the client statement now in the unnamed slot
	loaded   bool   // LOAD ran: never reuse
}

// dialError turns a refusal the server explained (a PgError anywhere in
// err's chain: authentication, a missing database, a failed init query)
// into the core's DialError.
func dialError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return &proxy.DialError{Auth: pe.Code == "28P01" || pe.Code == "28000", Busy: pe.Code == "53300", // too_many_connections
			Code: pe.Code, Msg: pe.Message, Err: err}
	}
	return err
}

// dial opens and authenticates one server connection with pgconn, runs
// the init query, reads what the proxy tracks (extra_float_digits, and
// max_connections when the core asks), and takes the stream over.
func (p *Protocol) dial(ctx context.Context, req proxy.DialRequest) (*backend, error) {
	var serverMax int
	extraFloat := "1"
	cfg := wire.DialConfig{Host: req.Host, Port: req.Port, User: req.Key.User, Password: req.Password, Database: req.Key.Database,
		Setup: func(ctx context.Context, c *pgconn.PgConn) error {
			if req.InitQuery != "" {
				if _, err := c.Exec(ctx, req.InitQuery).ReadAll(); err != nil {
					return fmt.Errorf("init query: %w", err)
				}
			}
			q := "SELECT current_setting('extra_float_digits')"
			if req.NeedMaxConnections {
				q += ", current_setting('max_connections')"
			}
			res, err := c.Exec(ctx, q).ReadAll()
			if err != nil {
				return err
			}
			if len(res) == 1 && len(res[0].Rows) == 1 {
				row := res[0].Rows[0]
				extraFloat = string(row[0])
				if req.NeedMaxConnections && len(row) > 1 {
					serverMax, _ = strconv.Atoi(string(row[1]))
				}
			}
			return nil
		}}
	if req.TLS {
		cfg.TLS = &tls.Config{InsecureSkipVerify: true} // sslmode=require
	}
	sc, err := wire.Dial(ctx, cfg)
	if err != nil {
		return nil, dialError(err)
	}
	conn := proxy.RawConn(sc.Conn)
	pd := req.Pooled
	pd.Init(conn, serverMax)
	pp := pd.PoolState(newPoolState).(*poolState)
	b := &backend{Pooled: pd, tm: pd.Metrics(), pp: pp, conn: conn, pid: sc.PID, secret: sc.Secret,
		r: wire.NewReader(conn, 32<<10), w: bufio.NewWriterSize(conn, 32<<10),
		params: pp.internParams(sc.Params), prepared: map[uint32]held{}}
	for i, k := range trackedSettings {
		b.settings[i] = sc.Params[k]
	}
	b.settings[settingIndex("extra_float_digits")] = extraFloat
	b.defaults = pp.setDefaults(b.settings)
	return b, nil
}

// Close says goodbye (Terminate) and closes the connection.
func (b *backend) Close() {
	b.conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
	b.conn.Write(wire.AppendEmpty(nil, wire.MsgTerminate))
	b.conn.Close()
}

// exec runs sql on the connection with the simple protocol, reading until
// ReadyForQuery; it records ParameterStatus changes and returns the first
// error the server reported.
func (b *backend) exec(sql string) (status byte, err error) {
	return b.roundTrip(wire.AppendQuery(nil, sql))
}

// roundTrip sends msgs (ending in a Query or Sync) and reads until
// ReadyForQuery, like exec.
func (b *backend) roundTrip(msgs []byte) (status byte, err error) {
	b.w.Write(msgs)
	if err := b.w.Flush(); err != nil {
		return 0, err
	}
	var first error
	for {
		typ, body, err := b.r.Next()
		if err != nil {
			return 0, err
		}
		switch typ {
		case wire.MsgReadyForQuery:
			if len(body) != 1 {
				return 0, wire.ErrMalformed
			}
			return body[0], first
		case wire.MsgErrorResponse:
			if first == nil {
				first = wire.ParseErrorResponse(body)
			}
		case wire.MsgParameterStatus:
			b.noteParam(body)
		case wire.MsgCopyInResponse, wire.MsgCopyOutResponse, wire.MsgCopyBothResponse:
			return 0, errors.New("proxy: unexpected COPY in an internal query")
		}
	}
}

// touch records that the backend holds st and uses it now.
func (b *backend) touch(st *stmt) {
	b.useSeq++
	b.prepared[st.id] = held{st: st, use: b.useSeq}
}

// alive reports whether an idle backend has nothing unread, buffered or on
// its socket.
func (b *backend) alive() bool { return b.r.Buffered() == 0 && proxy.SocketIdle(b.conn) }

// cleanup returns the connection to its pristine state after a pinned
// session: ROLLBACK if needed, DISCARD ALL, the init query again. It reports
// whether the connection is reusable.
func (b *backend) cleanup(txStatus byte, initQuery string) bool {
	b.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer b.conn.SetDeadline(time.Time{})
	if txStatus != wire.TxIdle {
		if st, err := b.exec("ROLLBACK"); err != nil || st != wire.TxIdle {
			return false
		}
	}
	if st, err := b.exec("DISCARD ALL"); err != nil || st != wire.TxIdle {
		return false
	}
	clear(b.prepared)
	b.unnamed = nil
	if initQuery != "" {
		if st, err := b.exec(initQuery); err != nil || st != wire.TxIdle {
			return false
		}
	}
	b.settings = b.defaults
	return true
}
