package postgres

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/rds/auth"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rdslocal/rdslocal/proxy"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func token(t *testing.T, addr, user string) string {
	tok, err := auth.BuildAuthToken(context.Background(), addr, "us-east-1", user,
		credentials.NewStaticCredentialsProvider("test", "test", ""))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestAuthentication(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	verify := "sslmode=verify-full sslrootcert=" + h.caFile
	valid := token(t, h.addr, iamUser)
	cases := []struct {
		name, user, pw, extra, code string
		skew                        time.Duration
	}{
		{name: "scram", user: appUser, pw: appPW},
		{name: "scram over verify-full TLS", user: appUser, pw: appPW, extra: verify},
		{name: "md5", user: md5User, pw: md5PW},
		{name: "iam token", user: iamUser, pw: valid, extra: verify},
		{name: "wrong password", user: appUser, pw: "nope", code: "28P01"},
		{name: "wrong md5 password", user: md5User, pw: "nope", code: "28P01"},
		{name: "unknown user", user: "ghost", pw: "x", code: "28000"},
		{name: "forged token", user: iamUser, pw: valid[:len(valid)-4] + "0000", extra: verify, code: "28P01"},
		{name: "token for another user", user: iamUser, pw: token(t, h.addr, appUser), extra: verify, code: "28P01"},
		{name: "expired token", user: iamUser, pw: valid, extra: verify, skew: 20 * time.Minute, code: "28P01"},
		{name: "iam without TLS", user: iamUser, pw: valid, code: "28000"},
		{name: "unsupported option", user: appUser, pw: appPW, extra: "options='-c work_mem=1MB'", code: "0A000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.skew.Store(int64(tc.skew))
			defer h.skew.Store(0)
			ctx := ctxT(t, 10*time.Second)
			dsn := h.dsn(tc.user, tc.pw, tc.extra)
			c, err := pgx.Connect(ctx, dsn)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close(ctx)
				var who string
				if err := c.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != tc.user {
					t.Fatalf("current_user %q, %v", who, err)
				}
				return
			}
			if err == nil {
				c.Close(ctx)
				t.Fatalf("connected; want %s", tc.code)
			}
			if got := pgCode(err); got != tc.code {
				t.Fatalf("error %v (code %q), want %s", err, got, tc.code)
			}
		})
	}
	t.Run("rotated secret takes effect at next login", func(t *testing.T) {
		ctx := ctxT(t, 10*time.Second)
		h.secrets.put("arn:app", appUser, "rotated-but-db-unchanged")
		defer h.secrets.put("arn:app", appUser, appPW)
		if _, err := pgx.Connect(ctx, h.dsn(appUser, appPW, "")); pgCode(err) != "28P01" {
			t.Fatalf("old password after rotation: %v", err)
		}
	})
}

func TestRequireTLS(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.RequireTLS = true })
	ctx := ctxT(t, 10*time.Second)
	_, err := pgx.Connect(ctx, h.dsn(appUser, appPW, ""))
	if pgCode(err) != "28000" {
		t.Fatalf("plaintext with RequireTLS: %v", err)
	}
	c, err := pgx.Connect(ctx, h.dsn(appUser, appPW, "sslmode=verify-full sslrootcert="+h.caFile))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ssl bool
	// The proxy's own leg to the database is TLS too (sslmode=require).
	if err := c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("backend leg ssl=%v, %v", ssl, err)
	}
}

// TestStartupProtocol drives the startup packet by hand: protocol 3.2 is
// negotiated down, GSSENCRequest is refused, a bad major version fails.
func TestStartupProtocol(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		return c
	}
	startup := func(version uint32, params ...string) []byte {
		b := []byte{0, 0, 0, 0, byte(version >> 24), byte(version >> 16), byte(version >> 8), byte(version)}
		for _, p := range params {
			b = append(append(b, p...), 0)
		}
		b = append(b, 0)
		n := len(b)
		b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return b
	}
	t.Run("3.2 negotiated down", func(t *testing.T) {
		c := dial()
		defer c.Close()
		c.Write(startup(3<<16|2, "user", appUser, "_pq_.foo", "bar"))
		var hdr [5]byte
		if _, err := readFull(c, hdr[:]); err != nil || hdr[0] != 'v' {
			t.Fatalf("want NegotiateProtocolVersion, got %q %v", hdr[0], err)
		}
	})
	// RDS Proxy takes only the parameters AWS lists (see doc.go).
	for _, c := range []struct{ param, value, msg string }{
		{"search_path", "myschema", "Feature not supported: RDS Proxy currently doesn't support the option search_path."},
		{"client_min_messages", "notice", "Feature not supported: RDS Proxy currently doesn't support the option client_min_messages."},
		{"statement_timeout", "1000", "Feature not supported: RDS Proxy currently doesn't support the option statement_timeout."},
		{"options", "-c search_path=x", "Feature not supported: RDS Proxy currently doesn't support command-line options."},
	} {
		t.Run("refused "+c.param, func(t *testing.T) {
			_, err := pgconn.Connect(ctxT(t, 5*time.Second), h.dsn(appUser, appPW, c.param+"='"+c.value+"'"))
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "0A000" || pe.Message != c.msg {
				t.Fatalf("got %v, want FATAL 0A000 %q", err, c.msg)
			}
		})
	}
	t.Run("accepted settings", func(t *testing.T) {
		c, err := pgconn.Connect(ctxT(t, 5*time.Second), h.dsn(appUser, appPW,
			"application_name=a1 client_encoding=UTF8 datestyle='ISO, DMY' timezone=UTC extra_float_digits=2"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		res := c.ExecParams(context.Background(), "SELECT current_setting('DateStyle')", nil, nil, nil, nil).Read()
		if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != "ISO, DMY" {
			t.Fatalf("DateStyle %q %v", res.Rows, res.Err)
		}
	})
	t.Run("GSSENC refused", func(t *testing.T) {
		c := dial()
		defer c.Close()
		c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30})
		var b [1]byte
		if _, err := readFull(c, b[:]); err != nil || b[0] != 'N' {
			t.Fatalf("got %q %v", b[0], err)
		}
	})
	t.Run("protocol 2 refused", func(t *testing.T) {
		c := dial()
		defer c.Close()
		c.Write(startup(2 << 16))
		var hdr [5]byte
		if _, err := readFull(c, hdr[:]); err != nil || hdr[0] != 'E' {
			t.Fatalf("want ErrorResponse, got %q %v", hdr[0], err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		c := dial()
		defer c.Close()
		c.Write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
		var b [1]byte
		if _, err := c.Read(b[:]); err == nil {
			t.Fatal("connection not closed")
		}
	})
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
