package postgres

import (
	"crypto/tls"
	"errors"
	"maps"
	"strings"
	"time"

	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
)

// handshakeTimeout bounds the startup and authentication phase.
const handshakeTimeout = 10 * time.Second

// handshake runs the startup phase: SSL/GSS negotiation, cancel requests,
// the startup packet and its checks, authentication, and the first borrow
// (whose server parameters the client receives).
func (s *session) handshake() error {
	c := s.c
	s.raw.SetDeadline(time.Now().Add(handshakeTimeout))
	var st *wire.Startup
	for {
		var err error
		st, err = wire.ReadStartupPacket(s.conn)
		if err != nil {
			return err
		}
		switch st.Kind {
		case wire.KindSSLRequest:
			if s.tls {
				return errors.New("SSLRequest over TLS")
			}
			tlsConf := c.TLSConfig()
			if tlsConf == nil {
				if _, err := s.conn.Write([]byte{'N'}); err != nil {
					return err
				}
				continue
			}
			if _, err := s.conn.Write([]byte{'S'}); err != nil {
				return err
			}
			tc := tls.Server(s.conn, tlsConf)
			if err := tc.HandshakeContext(c.Context()); err != nil {
				return err
			}
			s.conn, s.tls = tc, true
			continue
		case wire.KindGSSENCRequest:
			if s.tls {
				return errors.New("GSSENCRequest over TLS")
			}
			if _, err := s.conn.Write([]byte{'N'}); err != nil {
				return err
			}
			continue
		case wire.KindCancelRequest:
			if t := s.p.lookupKey(st.PID, st.Secret); t != nil {
				t.cancelQuery()
			}
			return errors.New("cancel request handled")
		}
		break
	}
	s.cr = wire.NewSmallReader(s.conn, 1024)
	s.writer()
	c.Transport(s.tls)
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
		s.cw.Write(wire.AppendNegotiateProtocolVersion(nil, 0, unsupported))
	}
	s.spec = c.Spec()
	if s.spec.RequireTLS && !s.tls {
		c.SetupFailed(true)
		return s.sendFatal("28000", "This RDS Proxy requires TLS connections.")
	}
	if err := s.authenticate(); err != nil {
		return err
	}
	// Authenticated: borrow once to learn the server's parameters.
	s.raw.SetDeadline(time.Time{})
	s.p.registerKey(s)
	s.lastZ = wire.TxIdle
	if err := s.acquire(); err != nil {
		return s.sendFatal(errorCode(err), "%s", errorText(err))
	}
	out := wire.AppendAuth(s.out[:0], wire.AuthOK, nil)
	s.seen = maps.Clone(s.b.params.m)
	if s.seen == nil {
		s.seen = map[string]string{}
	}
	s.seenSet = s.b.params
	for k, v := range s.seen {
		out = wire.AppendParameterStatus(out, k, v)
	}
	out = wire.AppendBackendKeyData(out, s.pid, s.secret[:])
	out = wire.AppendReadyForQuery(out, wire.TxIdle)
	s.out = out[:0]
	s.cw.Write(out)
	if err := s.cw.Flush(); err != nil {
		return err
	}
	s.releaseBackend(true)
	c.SetupDone(s.tls)
	return nil
}

// authenticate finds the secret for the login user and runs the client's
// authentication exchange.
func (s *session) authenticate() error {
	c := s.c
	auth, password, ok := c.Credentials(s.user)
	if !ok {
		c.SetupFailed(true)
		return s.sendFatal("28000", "This RDS proxy has no credentials for the role %s. Check the credentials for this role and try again.", s.user)
	}
	failed := func(err error) error {
		c.SetupFailed(true)
		if errors.Is(err, wire.ErrAuthFailed) {
			return s.sendFatal("28P01", "password authentication failed for user %q", s.user)
		}
		return err
	}
	switch strings.ToUpper(auth.IAMAuth) {
	case proxy.IAMRequired, proxy.IAMEnabled:
		if !s.tls {
			c.SetupFailed(true)
			return s.sendFatal("28000", "IAM authentication is allowed only with SSL connections.")
		}
		tok, err := wire.AuthCleartext(s.cr, s.cw)
		if err != nil {
			return failed(err)
		}
		if strings.ToUpper(auth.IAMAuth) == proxy.IAMEnabled && tok == password {
			return nil
		}
		if err := c.CheckToken(tok, s.user); err != nil {
			c.Logger().Info("proxy: IAM authentication failed", "user", s.user, "reason", err.Error())
			return failed(wire.ErrAuthFailed)
		}
		return nil
	}
	if strings.ToUpper(auth.ClientPasswordAuthType) == proxy.AuthMD5 {
		if err := wire.AuthMD5(s.cr, s.cw, s.user, password); err != nil {
			return failed(err)
		}
		return nil
	}
	creds, err := s.p.scramCreds(password)
	if err != nil {
		return failed(err)
	}
	if err := wire.AuthSCRAM(s.cr, s.cw, creds); err != nil {
		return failed(err)
	}
	return nil
}
