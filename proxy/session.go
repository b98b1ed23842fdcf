package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rdslocal/rdslocal/iamauth"
	"github.com/rdslocal/rdslocal/proxy/pg"
	"github.com/rdslocal/rdslocal/secrets"
)

// handshakeTimeout bounds the startup and authentication phase.
const handshakeTimeout = 10 * time.Second

// defaultBorrowTimeout is RDS's ConnectionBorrowTimeout default.
const defaultBorrowTimeout = 120 * time.Second

// settingNames maps the lower-cased startup parameters a client may send
// to their canonical names.
var settingNames = map[string]string{
	"application_name":   "application_name",
	"client_encoding":    "client_encoding",
	"datestyle":          "DateStyle",
	"timezone":           "TimeZone",
	"extra_float_digits": "extra_float_digits",
}

// session is one client connection. A single goroutine runs it: the
// handshake, then the loop that reads client messages, borrows a backend at
// the first message of a transaction, forwards, relays the responses inline
// and returns the backend at ReadyForQuery 'I'.
type session struct {
	m  *Manager
	p  *proxyState
	ep *endpoint

	raw  net.Conn // the accepted TCP connection
	conn net.Conn // a rawConn on raw, or its TLS wrapper
	cr   *pg.Reader
	cw   *bufio.Writer
	tls  bool

	ctx    context.Context
	cancel context.CancelFunc
	killed atomic.Bool

	spec    *ProxySpec // as of login
	user    string
	db      string
	auth    AuthSpec
	want    settingValues // settings from the startup packet
	wantSet [len(trackedSettings)]bool
	seen    map[string]string // ParameterStatus values the client knows
	seenSet *paramSet         // a set known to equal seen, if any

	born time.Time // accepted at

	pid    uint32
	secret [4]byte

	mu   sync.Mutex // guards b against cancel/kill
	b    *backend
	pool *pool

	pinned       bool
	stmts        map[string]*stmt
	unnamed      *stmt
	pending      []pend
	lastZ        byte // last ReadyForQuery status from the held backend; 0 unknown
	sent         int  // bytes forwarded since the last flush to the backend
	skipping     bool // after an extended-protocol error, until the client's Sync
	ddl          bool // DDL ran in the current transaction
	copying      bool // in COPY FROM STDIN, until the client's CopyDone or CopyFail
	copyExtended bool // that COPY was run by Execute
	broken       bool // the held backend is mid-message or gone
	fatal        bool // a FATAL from the server was forwarded

	watch *watch // while a pinned session waits for its client

	inBatch  bool
	reqStart time.Time
	dbStart  time.Time
	out      []byte
}

func newSession(ep *endpoint, c net.Conn) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{m: ep.p.m, p: ep.p, ep: ep, raw: c, conn: newRawConn(c), ctx: ctx, cancel: cancel,
		stmts: map[string]*stmt{}, born: time.Now()}
}

// kill ends the session from another goroutine (endpoint removal, Close).
func (s *session) kill() {
	s.killed.Store(true)
	s.cancel()
	s.raw.Close()
	s.mu.Lock()
	if s.b != nil {
		s.b.conn.SetDeadline(time.Now())
	}
	s.mu.Unlock()
}

// serve runs the session: the handshake here, then the command phase on a
// fresh goroutine, because TLS and SCRAM grow this goroutine's stack and an
// idle session should keep a small one. done runs when the session has ended.
func (s *session) serve(done func()) {
	em := &s.ep.metrics
	em.ClientConnectionsReceived.Add(1)
	em.ClientConnections.Add(1)
	end := func() {
		em.ClientConnections.Add(-1)
		em.ClientConnectionsClosed.Add(1)
		if s.tls {
			em.ClientConnectionsTLS.Add(-1)
		} else if s.cr != nil {
			em.ClientConnectionsNoTLS.Add(-1)
		}
		s.finish()
		done()
	}
	if err := s.handshake(); err != nil {
		s.m.log.Debug("proxy: client setup failed", "proxy", s.p.spec().Name, "endpoint", s.ep.spec.Name,
			"remote", s.raw.RemoteAddr().String(), "err", err)
		end()
		return
	}
	s.releaseBuffers()
	go func() {
		s.loop()
		end()
	}()
}

// finish returns or closes the held backend and releases the session's
// resources.
func (s *session) finish() {
	s.cancel()
	if s.watch != nil {
		s.stopWatch()
	}
	if b := s.b; b != nil {
		reusable := false
		switch {
		case s.broken || s.fatal || len(s.pending) > 0 || b.w.Buffered() > 0:
		case s.pinned:
			reusable = b.cleanup(s.lastZ, s.p.spec().Pool.InitQuery)
		case s.lastZ != pg.TxIdle:
			b.conn.SetDeadline(time.Now().Add(5 * time.Second))
			st, err := s.lastZ, error(nil)
			if s.skipping {
				// The server ignores everything but Sync after an error.
				st, err = b.roundTrip(pg.AppendEmpty(nil, pg.MsgSync))
			}
			if err == nil && st != pg.TxIdle {
				st, err = b.exec("ROLLBACK")
			}
			b.conn.SetDeadline(time.Time{})
			reusable = err == nil && st == pg.TxIdle
		default:
			reusable = true
		}
		s.releaseBackend(reusable)
	}
	if s.pinned {
		if s.pool != nil {
			s.pool.t.metrics.DatabaseConnectionsCurrentlySessionPinned.Add(-1)
		}
		s.pinned = false
	}
	for _, st := range s.stmts {
		s.p.regs.release(st, false)
	}
	clear(s.stmts)
	if s.pid != 0 {
		s.m.unregisterKey(s)
	}
	s.conn.Close()
	s.raw.Close()
	if s.cw != nil {
		s.putWriter()
	}
	if s.cr != nil {
		s.cr.Reset(nil)
	}
}

// clientWriters holds the buffered writers sessions use toward their
// clients while a request is in progress; an idle session holds none.
var clientWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 16<<10) }}

// writer returns the session's client writer, taking one from the pool.
func (s *session) writer() *bufio.Writer {
	if s.cw == nil {
		s.cw = clientWriters.Get().(*bufio.Writer)
		s.cw.Reset(s.conn)
	}
	return s.cw
}

// putWriter returns the client writer to the pool, dropping anything in it.
func (s *session) putWriter() {
	s.cw.Reset(nil)
	clientWriters.Put(s.cw)
	s.cw = nil
}

// releaseBuffers gives the client-side buffers back while the session
// waits for its client; they are taken again at the next request.
func (s *session) releaseBuffers() {
	if s.cw != nil && s.cw.Buffered() == 0 {
		s.putWriter()
	}
	if s.cr != nil {
		s.cr.Release()
	}
}

// sendFatal writes a FATAL ErrorResponse and returns it as an error.
func (s *session) sendFatal(code, format string, args ...any) error {
	e := &pg.Error{Severity: "FATAL", Code: code, Message: fmt.Sprintf(format, args...)}
	w := s.writer()
	s.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	w.Write(pg.AppendErrorResponse(nil, e))
	w.Flush()
	return e
}

// handshake runs the startup phase: SSL/GSS negotiation, cancel requests,
// the startup packet and its checks, authentication, and the first borrow
// (whose server parameters the client receives).
func (s *session) handshake() error {
	s.raw.SetDeadline(time.Now().Add(handshakeTimeout))
	var st *pg.Startup
	for {
		var err error
		st, err = pg.ReadStartupPacket(s.conn)
		if err != nil {
			return err
		}
		switch st.Kind {
		case pg.KindSSLRequest:
			if s.tls {
				return errors.New("SSLRequest over TLS")
			}
			if s.ep.tlsConf == nil {
				if _, err := s.conn.Write([]byte{'N'}); err != nil {
					return err
				}
				continue
			}
			if _, err := s.conn.Write([]byte{'S'}); err != nil {
				return err
			}
			tc := tls.Server(s.conn, s.ep.tlsConf)
			if err := tc.HandshakeContext(s.ctx); err != nil {
				return err
			}
			s.conn, s.tls = tc, true
			continue
		case pg.KindGSSENCRequest:
			if s.tls {
				return errors.New("GSSENCRequest over TLS")
			}
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return err
			}
			continue
		case pg.KindCancelRequest:
			if t := s.m.lookupKey(st.PID, st.Secret); t != nil {
				t.cancelQuery()
			}
			return errors.New("cancel request handled")
		}
		break
	}
	s.cr = pg.NewSmallReader(s.conn, 1024)
	s.writer()
	em := &s.ep.metrics
	if s.tls {
		em.ClientConnectionsTLS.Add(1)
	} else {
		em.ClientConnectionsNoTLS.Add(1)
	}
	if st.Major != 3 {
		return s.sendFatal("0A000", "Feature not supported: RDS Proxy supports only version 3.0 of the PostgreSQL messaging protocol.")
	}
	var unsupported []string
	for _, prm := range st.Params {
		lower := strings.ToLower(prm.Name)
		switch lower {
		case "user":
			s.user = prm.Value
		case "database":
			s.db = prm.Value
		case "replication":
			switch strings.ToLower(prm.Value) {
			case "false", "off", "no", "0":
			default:
				return s.sendFatal("0A000", "Feature not supported: RDS Proxy doesn't support streaming replication mode.")
			}
		default:
			if canon, ok := settingNames[lower]; ok {
				i := settingIndex(canon)
				s.want[i], s.wantSet[i] = prm.Value, true
			} else if strings.HasPrefix(lower, "_pq_.") {
				unsupported = append(unsupported, prm.Name)
			} else if lower == "options" {
				return s.sendFatal("0A000", "Feature not supported: RDS Proxy currently doesn't support command-line options.")
			} else {
				return s.sendFatal("0A000", "Feature not supported: RDS Proxy currently doesn't support the option %s.", prm.Name)
			}
		}
	}
	if s.user == "" {
		return s.sendFatal("28000", "no PostgreSQL user name specified in startup packet")
	}
	if s.db == "" {
		s.db = s.user
	}
	if st.Minor != 0 || len(unsupported) > 0 {
		s.cw.Write(pg.AppendNegotiateProtocolVersion(nil, 0, unsupported))
	}
	s.spec = s.p.spec()
	if s.spec.RequireTLS && !s.tls {
		em.ClientConnectionsSetupFailedAuth.Add(1)
		return s.sendFatal("28000", "This RDS Proxy requires TLS connections.")
	}
	if err := s.authenticate(); err != nil {
		return err
	}
	// Authenticated: borrow once to learn the server's parameters.
	s.raw.SetDeadline(time.Time{})
	s.m.registerKey(s)
	s.lastZ = pg.TxIdle
	if err := s.acquire(); err != nil {
		return s.sendFatal(errorCode(err), "%s", errorText(err))
	}
	out := pg.AppendAuth(s.out[:0], pg.AuthOK, nil)
	s.seen = maps.Clone(s.b.params.m)
	if s.seen == nil {
		s.seen = map[string]string{}
	}
	s.seenSet = s.b.params
	for k, v := range s.seen {
		out = pg.AppendParameterStatus(out, k, v)
	}
	out = pg.AppendBackendKeyData(out, s.pid, s.secret[:])
	out = pg.AppendReadyForQuery(out, pg.TxIdle)
	s.out = out[:0]
	s.cw.Write(out)
	if err := s.cw.Flush(); err != nil {
		return err
	}
	s.releaseBackend(true)
	em.ClientConnectionsSetupSucceeded.Add(1)
	return nil
}

// authenticate finds the secret for the login user and runs the client's
// authentication exchange.
func (s *session) authenticate() error {
	em := &s.ep.metrics
	auth, password, ok := s.p.lookupUser(s.spec, s.user)
	if !ok {
		em.ClientConnectionsSetupFailedAuth.Add(1)
		return s.sendFatal("28000", "This RDS proxy has no credentials for the role %s. Check the credentials for this role and try again.", s.user)
	}
	s.auth = auth
	failed := func(err error) error {
		em.ClientConnectionsSetupFailedAuth.Add(1)
		if errors.Is(err, pg.ErrAuthFailed) {
			return s.sendFatal("28P01", "password authentication failed for user %q", s.user)
		}
		return err
	}
	switch strings.ToUpper(auth.IAMAuth) {
	case IAMRequired, IAMEnabled:
		if !s.tls {
			em.ClientConnectionsSetupFailedAuth.Add(1)
			return s.sendFatal("28000", "IAM authentication is allowed only with SSL connections.")
		}
		tok, err := pg.AuthCleartext(s.cr, s.cw)
		if err != nil {
			return failed(err)
		}
		if strings.ToUpper(auth.IAMAuth) == IAMEnabled && tok == password {
			return nil
		}
		if s.m.cfg.Tokens == nil {
			return failed(pg.ErrAuthFailed)
		}
		_, err = s.m.cfg.Tokens.Validate(tok, iamauth.TokenExpectation{Addresses: s.ep.addrs, Region: s.spec.Region, User: s.user,
			Resource: "arn:aws:rds-db:" + s.spec.Region + ":" + s.spec.Account + ":dbuser:" + s.spec.ID + "/" + s.user})
		if err != nil {
			s.m.log.Info("proxy: IAM authentication failed", "proxy", s.spec.Name, "user", s.user, "reason", err.Error())
			return failed(pg.ErrAuthFailed)
		}
		return nil
	}
	if strings.ToUpper(auth.ClientPasswordAuthType) == AuthMD5 {
		if err := pg.AuthMD5(s.cr, s.cw, s.user, password); err != nil {
			return failed(err)
		}
		return nil
	}
	creds, err := s.m.scramCreds(password)
	if err != nil {
		return failed(err)
	}
	if err := pg.AuthSCRAM(s.cr, s.cw, creds); err != nil {
		return failed(err)
	}
	return nil
}

// lookupUser finds the Auth entry whose secret's username is user, reading
// the secrets' current values (a cached index is tried first and verified).
func (p *proxyState) lookupUser(spec *ProxySpec, user string) (AuthSpec, string, bool) {
	read := func(i int) (string, bool) {
		a := spec.Auth[i]
		v, err := p.m.cfg.Secrets.CurrentValue(spec.Account, spec.Region, a.SecretArn)
		if err != nil {
			return "", false
		}
		u, pw, err := secrets.ParseCredentials(v)
		if err != nil || u != user {
			return "", false
		}
		return pw, true
	}
	p.userMu.Lock()
	i, ok := p.userIdx[user]
	p.userMu.Unlock()
	if ok && i < len(spec.Auth) {
		if pw, ok := read(i); ok {
			return spec.Auth[i], pw, true
		}
	}
	for i := range spec.Auth {
		if pw, ok := read(i); ok {
			p.userMu.Lock()
			if len(p.userIdx) > 1024 {
				clear(p.userIdx)
			}
			p.userIdx[user] = i
			p.userMu.Unlock()
			return spec.Auth[i], pw, true
		}
	}
	return AuthSpec{}, "", false
}

// errorCode and errorText turn a borrow failure into what the client sees.
func errorCode(err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, errBorrowTimeout):
		return "53300"
	case errors.As(err, &pe):
		return pe.Code
	}
	return "08006"
}

func errorText(err error) string {
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, errBorrowTimeout):
		return errBorrowTimeout.Error()
	case errors.As(err, &pe):
		return "Request returned an error: " + pe.Message
	}
	return "Request returned an error: " + err.Error()
}

// acquire borrows a backend for the session from the pool of the target
// its endpoint routes to, then makes the backend carry the client's
// settings and tells the client about server parameters that differ from
// what it has seen.
func (s *session) acquire() error {
	bt := s.spec.Pool.BorrowTimeout
	if cur := s.p.spec().Pool.BorrowTimeout; cur != 0 {
		bt = cur
	}
	if bt <= 0 {
		bt = defaultBorrowTimeout
	}
	deadline := time.Now().Add(bt)
	role := s.ep.spec.TargetRole
	if role == "" {
		role = RoleReadWrite
	}
	for {
		t := s.p.route(role)
		if t == nil {
			if time.Now().After(deadline) {
				return errBorrowTimeout
			}
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
		}
		pl := s.pool
		if pl == nil || pl.t != t {
			if s.pinned && pl != nil {
				pl.t.metrics.DatabaseConnectionsCurrentlySessionPinned.Add(-1)
				t.metrics.DatabaseConnectionsCurrentlySessionPinned.Add(1)
			}
			pl = t.getPool(s.user, s.db, s.auth.SecretArn)
			s.pool = pl
		}
		start := time.Now()
		b, err := t.borrow(s.ctx, pl, deadline)
		if errors.Is(err, errRetired) {
			continue
		}
		if err != nil {
			return err
		}
		t.metrics.DatabaseConnectionsBorrowLatency.observe(time.Since(start))
		t.metrics.DatabaseConnectionsCurrentlyBorrowed.Add(1)
		s.mu.Lock()
		s.b = b
		s.mu.Unlock()
		s.lastZ = pg.TxIdle
		if err := s.syncSettings(); err != nil {
			s.releaseBackend(false)
			return err
		}
		return nil
	}
}

// syncSettings SETs the client's startup settings on the borrowed backend
// where they differ and queues ParameterStatus messages for server
// parameters the client has not seen with their current values.
func (s *session) syncSettings() error {
	b := s.b
	want := s.want
	for i := range want {
		if !s.wantSet[i] {
			want[i] = b.pool.defaults[i]
		}
	}
	if b.settings != want {
		var q []byte
		for i, k := range trackedSettings {
			if b.settings[i] != want[i] {
				q = append(q, "SET "...)
				q = append(q, k...)
				q = append(q, " = '"...)
				q = append(q, strings.ReplaceAll(want[i], "'", "''")...)
				q = append(q, "';"...)
			}
		}
		b.conn.SetDeadline(time.Now().Add(10 * time.Second))
		st, err := b.exec(string(q))
		b.conn.SetDeadline(time.Time{})
		if err != nil {
			if pe, ok := err.(*pg.Error); ok && st == pg.TxIdle {
				return &pgconn.PgError{Severity: "FATAL", Code: pe.Code, Message: pe.Message}
			}
			s.broken = true
			return err
		}
		b.settings = want
	}
	if s.seen != nil && s.seenSet != b.params {
		for k, v := range b.params.m {
			if s.seen[k] != v {
				s.cw.Write(pg.AppendParameterStatus(nil, k, v))
				s.seen[k] = v
			}
		}
		if len(s.seen) == len(b.params.m) {
			s.seenSet = b.params
		} else {
			s.seenSet = nil
		}
	}
	return nil
}

// releaseBackend gives the held backend back to its pool (or closes it).
func (s *session) releaseBackend(reusable bool) {
	b := s.b
	if b == nil {
		return
	}
	s.mu.Lock()
	s.b = nil
	s.mu.Unlock()
	if b.inTx {
		b.inTx = false
		b.t.metrics.DatabaseConnectionsCurrentlyInTransaction.Add(-1)
	}
	b.t.metrics.DatabaseConnectionsCurrentlyBorrowed.Add(-1)
	if s.broken || s.fatal {
		reusable = false
	}
	s.broken = false
	s.skipping = false
	s.copying = false
	s.sent = 0
	s.pending = s.pending[:0]
	b.t.release(b, reusable)
}

// cancelQuery forwards a client's CancelRequest to the backend currently
// serving it, if any. RDS Proxy ignores CancelRequest; the emulator goes
// further.
func (s *session) cancelQuery() {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := pg.SendCancel(ctx, b.t.addr, b.pid, b.secret); err != nil {
		s.m.log.Debug("proxy: cancel failed", "err", err)
	}
}

// pin keeps the held backend for the rest of the session.
func (s *session) pin(reason string) {
	if s.pinned {
		return
	}
	s.pinned = true
	s.b.t.metrics.DatabaseConnectionsCurrentlySessionPinned.Add(1)
	s.m.log.Info(fmt.Sprintf("The client session was pinned to the database connection [dbConnection=%d] for the remainder of the session. The proxy can't reuse this connection until the session ends. Reason: %s", s.b.id, reason),
		"proxy", s.spec.Name, "endpoint", s.ep.spec.Name)
}
