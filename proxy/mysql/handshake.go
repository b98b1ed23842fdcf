package mysql

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/rdslocal/rdslocal/proxy/mysql/wire"
)

// handshakeTimeout bounds the connection phase.
const handshakeTimeout = 10 * time.Second

// maxHandshakePacket bounds the packets of the connection phase (an IAM
// token is about 1 KB; attributes a few hundred bytes).
const maxHandshakePacket = 64 << 10

// proxyCaps are the capabilities the proxy offers clients where the
// target offers them too. Not offered: compression (RDS Proxy does not
// support it), query attributes, optional metadata, ODBC/NO_SCHEMA.
const proxyCaps = gm.CLIENT_LONG_PASSWORD | gm.CLIENT_FOUND_ROWS | gm.CLIENT_LONG_FLAG | gm.CLIENT_CONNECT_WITH_DB |
	gm.CLIENT_LOCAL_FILES | gm.CLIENT_IGNORE_SPACE | gm.CLIENT_PROTOCOL_41 | gm.CLIENT_INTERACTIVE |
	gm.CLIENT_TRANSACTIONS | gm.CLIENT_SECURE_CONNECTION | gm.CLIENT_MULTI_STATEMENTS | gm.CLIENT_MULTI_RESULTS |
	gm.CLIENT_PS_MULTI_RESULTS | gm.CLIENT_PLUGIN_AUTH | gm.CLIENT_CONNECT_ATTRS |
	gm.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | gm.CLIENT_SESSION_TRACK | gm.CLIENT_DEPRECATE_EOF

// ownCaps are what the proxy itself implements, whatever the target.
const ownCaps = gm.CLIENT_LONG_PASSWORD | gm.CLIENT_PROTOCOL_41 | gm.CLIENT_SECURE_CONNECTION | gm.CLIENT_PLUGIN_AUTH |
	gm.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | gm.CLIENT_CONNECT_ATTRS | gm.CLIENT_CONNECT_WITH_DB | gm.CLIENT_TRANSACTIONS

// fallbackVersion is announced when the target's greeting cannot be read
// (the first command then waits for the target).
const fallbackVersion = "8.0.32"

// errAuth marks a rejected login (already answered).
var errAuth = errors.New("mysql: authentication failed")

// handshake runs the connection phase: greeting, TLS, the handshake
// response, authentication, and (when the client names a schema) a first
// borrow that checks the schema on the server, as a direct login would.
func (s *session) handshake() error {
	s.raw.SetDeadline(time.Now().Add(handshakeTimeout))
	s.set = settingsOf(s.c)
	g, ok := s.p.greeting(s.set.Target)
	if !ok && s.set.Target != "" {
		ctx, cancel := context.WithTimeout(s.c.Context(), 3*time.Second)
		g, _ = s.p.fetchGreeting(ctx, s.set.Target)
		cancel()
	}
	caps := proxyCaps & g.Caps
	if g.Version == "" {
		g.Version, caps, g.Charset = fallbackVersion, proxyCaps, 45
	}
	caps |= ownCaps
	tlsConf := s.c.TLSConfig()
	if tlsConf != nil {
		caps |= gm.CLIENT_SSL
	}
	s.salt = newSalt()
	// The greeting announces caching_sha2_password, AWS's default for the
	// family; a user of another kind gets an AuthSwitchRequest.
	plugin := gm.AUTH_CACHING_SHA2_PASSWORD
	greet := wire.AppendGreeting(nil, wire.Greeting{Version: g.Version, ConnectionID: s.id, Salt: s.salt, Caps: caps,
		Charset: g.Charset, Status: gm.SERVER_STATUS_AUTOCOMMIT, AuthPlugin: plugin})
	if _, err := s.conn.Write(greet); err != nil {
		return err
	}
	pkt, seq, err := s.readAuthPacket(1)
	if err != nil {
		return err
	}
	h, err := wire.ParseHandshakeResponse(pkt)
	if err != nil {
		s.sendError(seq+1, gm.NewDefaultError(gm.ER_HANDSHAKE_ERROR))
		return err
	}
	if h.SSLRequest {
		if tlsConf == nil {
			return errors.New("SSLRequest without TLS offered")
		}
		tc := tls.Server(s.conn, tlsConf)
		if err := tc.HandshakeContext(s.c.Context()); err != nil {
			return err
		}
		s.conn, s.tls = tc, true
		pkt, seq, err = s.readAuthPacket(seq + 1)
		if err != nil {
			return err
		}
		if h, err = wire.ParseHandshakeResponse(pkt); err != nil || h.SSLRequest {
			s.sendError(seq+1, gm.NewDefaultError(gm.ER_HANDSHAKE_ERROR))
			return wire.ErrMalformed
		}
	}
	s.caps = h.Caps & caps
	s.charset = h.Charset
	switch {
	case h.Caps&(gm.CLIENT_COMPRESS|gm.CLIENT_ZSTD_COMPRESSION_ALGORITHM) != 0:
		s.c.SetupFailed(false)
		s.sendError(seq+1, &gm.MyError{Code: gm.ER_NOT_SUPPORTED_YET, State: "42000",
			Message: "RDS Proxy doesn't support the compressed protocol."})
		return errors.New("compression requested")
	case s.set.RequireTLS && !s.tls:
		s.c.SetupFailed(true)
		s.sendError(seq+1, &gm.MyError{Code: 3159, State: "HY000", Message: "This RDS Proxy requires TLS connections."})
		return errors.New("plaintext under RequireTLS")
	}
	seq, err = s.authenticate(h.User, h.AuthPlugin, h.AuthData, seq+1)
	if err != nil {
		if errors.Is(err, errAuth) {
			s.c.SetupFailed(true)
		}
		return err
	}
	s.user = h.User
	s.key = Key{User: h.User, Database: h.Database, Variant: variant{caps: s.caps, charset: s.charset}.String()}
	s.raw.SetDeadline(time.Time{})
	if err := s.checkSchema(seq); err != nil {
		s.c.SetupFailed(false)
		return err
	}
	out := wire.AppendOK(nil, seq, wire.OK{Status: gm.SERVER_STATUS_AUTOCOMMIT})
	if _, err := s.conn.Write(out); err != nil {
		return err
	}
	s.c.SetupDone(s.tls)
	return nil
}

// checkSchema borrows once when the session has a default schema: the
// pool's connections select it, so a schema that does not exist (or the
// user may not use) fails the login with the server's own error.
func (s *session) checkSchema(seq byte) error {
	if s.key.Database == "" {
		return nil
	}
	if err := s.acquire(false); err != nil {
		s.sendError(seq, borrowError(err))
		return err
	}
	s.release(true)
	return nil
}

// newSalt returns a 20-byte scramble of printable bytes (no NUL, which
// would end it in the greeting).
func newSalt() []byte {
	b := make([]byte, 20)
	rand.Read(b)
	for i := range b {
		b[i] = 0x21 + b[i]%0x5e
	}
	return b
}

// readAuthPacket reads one packet of the connection phase, directly from
// the connection (no read-ahead: TLS may start right after), checking its
// sequence number.
func (s *session) readAuthPacket(want byte) ([]byte, byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(s.conn, h[:]); err != nil {
		return nil, 0, err
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	// A MySQL server answers these with its own errors before closing.
	if h[3] != want {
		s.sendError(h[3]+1, gm.NewDefaultError(gm.ER_NET_PACKETS_OUT_OF_ORDER))
		return nil, 0, fmt.Errorf("mysql: packet %d out of order (want %d)", h[3], want)
	}
	if n > maxHandshakePacket {
		s.sendError(h[3]+1, gm.NewDefaultError(gm.ER_NET_PACKET_TOO_LARGE))
		return nil, 0, wire.ErrPacketTooLarge
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.conn, b); err != nil {
		return nil, 0, err
	}
	return b, h[3], nil
}

// writeAuth writes one connection-phase packet.
func (s *session) writeAuth(pkt []byte) error {
	_, err := s.conn.Write(pkt)
	return err
}

// authenticate runs the authentication exchange for user, whose client
// answered with plugin and data (computed with s.salt); seq is the
// sequence number of the proxy's next packet. It returns the sequence
// number for the final OK. A rejection has been answered (ERROR 1045)
// when the error Is errAuth.
func (s *session) authenticate(user, plugin string, data []byte, seq byte) (byte, error) {
	auth, password, ok := s.c.Credentials(user)
	denied := func(seq byte, usingPassword bool) (byte, error) {
		yes := "YES"
		if !usingPassword {
			yes = "NO"
		}
		s.sendError(seq, gm.NewDefaultError(gm.ER_ACCESS_DENIED_ERROR, user, s.remoteHost(), yes))
		return 0, errAuth
	}
	if !ok {
		return denied(seq, len(data) > 0)
	}
	iam := strings.ToUpper(auth.IAMAuth)
	if iam == IAMRequired || iam == IAMEnabled && s.tls {
		if !s.tls {
			s.sendError(seq, &gm.MyError{Code: gm.ER_ACCESS_DENIED_ERROR, State: "28000",
				Message: fmt.Sprintf("Access denied for user '%s'@'%s' (IAM authentication is allowed only with TLS connections)", user, s.remoteHost())})
			return 0, errAuth
		}
		// The token is sent as a cleartext password: ask for
		// mysql_clear_password, as RDS Proxy does.
		if plugin != gm.AUTH_CLEAR_PASSWORD {
			if err := s.writeAuth(wire.AppendAuthSwitch(nil, seq, gm.AUTH_CLEAR_PASSWORD, nil)); err != nil {
				return 0, err
			}
			pkt, got, err := s.readAuthPacket(seq + 1)
			if err != nil {
				return 0, err
			}
			data, seq = pkt, got+1
		}
		tok := string(wire.ClearPassword(data))
		if iam == IAMEnabled && subtle.ConstantTimeCompare([]byte(tok), []byte(password)) == 1 {
			s.auth = auth
			return seq, nil
		}
		if err := s.c.CheckToken(tok, user); err != nil {
			s.c.Logger().Info("proxy: IAM authentication failed", "user", user, "reason", err.Error())
			return denied(seq, true)
		}
		s.auth = auth
		return seq, nil
	}
	want := gm.AUTH_CACHING_SHA2_PASSWORD
	if strings.ToUpper(auth.ClientPasswordAuthType) == AuthNative {
		want = gm.AUTH_NATIVE_PASSWORD
	}
	if plugin != want {
		if err := s.writeAuth(wire.AppendAuthSwitch(nil, seq, want, s.salt)); err != nil {
			return 0, err
		}
		pkt, got, err := s.readAuthPacket(seq + 1)
		if err != nil {
			return 0, err
		}
		data, seq = pkt, got+1
	}
	if len(data) == 0 || len(data) == 1 && data[0] == 0 {
		if password == "" {
			s.auth = auth
			return seq, nil
		}
		return denied(seq, false)
	}
	if want == gm.AUTH_NATIVE_PASSWORD {
		if !gm.CompareNativePassword(data, gm.NativePasswordHash([]byte(password)), s.salt) {
			return denied(seq, true)
		}
		s.auth = auth
		return seq, nil
	}
	// caching_sha2_password: the fast path when a full authentication of
	// this password was done before, else the full one (the password in
	// clear over TLS, or RSA-encrypted).
	if s.p.sha2Cached(s.set.ProxyID, user, password) &&
		subtle.ConstantTimeCompare(data, gm.CalcCachingSha2Password(s.salt, []byte(password))) == 1 {
		if err := s.writeAuth(wire.AppendAuthMoreData(nil, seq, []byte{gm.CACHE_SHA2_FAST_AUTH})); err != nil {
			return 0, err
		}
		s.auth = auth
		return seq + 1, nil
	}
	if err := s.writeAuth(wire.AppendAuthMoreData(nil, seq, []byte{gm.CACHE_SHA2_FULL_AUTH})); err != nil {
		return 0, err
	}
	pkt, got, err := s.readAuthPacket(seq + 1)
	if err != nil {
		return 0, err
	}
	seq = got + 1
	var clear []byte
	if s.tls {
		clear = wire.ClearPassword(pkt)
	} else {
		key, pubPEM, err := s.p.rsa()
		if err != nil {
			return 0, err
		}
		if len(pkt) == 1 && pkt[0] == 2 { // request for the public key
			if err := s.writeAuth(wire.AppendAuthMoreData(nil, seq, pubPEM)); err != nil {
				return 0, err
			}
			if pkt, got, err = s.readAuthPacket(seq + 1); err != nil {
				return 0, err
			}
			seq = got + 1
		}
		dec, err := rsa.DecryptOAEP(sha1.New(), rand.Reader, key, pkt, nil)
		if err != nil {
			return denied(seq, true)
		}
		for i := range dec {
			dec[i] ^= s.salt[i%len(s.salt)]
		}
		clear = wire.ClearPassword(dec)
	}
	if subtle.ConstantTimeCompare(clear, []byte(password)) != 1 {
		return denied(seq, true)
	}
	s.p.sha2Store(s.set.ProxyID, user, password)
	s.auth = auth
	return seq, nil
}

// remoteHost is the client's address as MySQL names it in errors.
func (s *session) remoteHost() string {
	host, _, err := net.SplitHostPort(s.raw.RemoteAddr().String())
	if err != nil {
		return s.raw.RemoteAddr().String()
	}
	return host
}

// changeUser handles COM_CHANGE_USER: the session ends as if the client
// had disconnected (its connection reset or returned), then the new user
// authenticates against the proxy's secrets like a new login. A failure
// ends the connection, as MySQL does.
func (s *session) changeUser(body []byte) error {
	cu, err := wire.ParseChangeUser(body, s.caps)
	if err != nil {
		s.sendError(1, gm.NewDefaultError(gm.ER_HANDSHAKE_ERROR))
		return err
	}
	s.endState()
	s.known = false
	s.lastInsertID = 0
	s.prev = nil
	s.raw.SetDeadline(time.Now().Add(handshakeTimeout))
	plugin := cu.AuthPlugin
	if plugin == "" {
		plugin = gm.AUTH_NATIVE_PASSWORD
	}
	seq, err := s.authenticate(cu.User, plugin, cu.AuthData, 1)
	if err != nil {
		return err
	}
	s.raw.SetDeadline(time.Time{})
	if cu.Charset != 0 {
		s.charset = byte(cu.Charset)
	}
	s.mu.Lock()
	s.user = cu.User
	s.mu.Unlock()
	s.key = Key{User: cu.User, Database: cu.Database, Variant: variant{caps: s.caps, charset: s.charset}.String()}
	if err := s.checkSchema(seq); err != nil {
		return err
	}
	w := s.writer()
	w.Write(wire.AppendOK(nil, seq, wire.OK{Status: gm.SERVER_STATUS_AUTOCOMMIT}))
	return w.Flush()
}
