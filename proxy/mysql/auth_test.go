package mysql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
	"github.com/rdslocal/rdslocal/proxy"
)

var registerTLS sync.Once

// tlsParam registers the test CA with go-sql-driver and returns the DSN
// parameter that verifies the proxy's certificate with it.
func tlsParam() string {
	registerTLS.Do(func() {
		pool := x509.NewCertPool()
		pool.AddCert(testCA.Certificate())
		mysql.RegisterTLSConfig("rdslocal-test", &tls.Config{RootCAs: pool})
	})
	return "tls=rdslocal-test"
}

func myErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	var ge *gm.MyError
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

func TestAuthentication(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	valid := iamToken(t, h.addr, iamUser)
	iam := tlsParam() + "&allowCleartextPasswords=true"
	cases := []struct {
		name, user, pw, params string
		skew                   time.Duration
		code                   uint16
	}{
		{name: "native", user: appUser, pw: appPW},
		{name: "native over verified TLS", user: appUser, pw: appPW, params: tlsParam()},
		{name: "caching_sha2 over verified TLS", user: sha2User, pw: sha2PW, params: tlsParam()},
		{name: "caching_sha2 with the RSA key", user: sha2User, pw: sha2PW},
		{name: "iam token over TLS", user: iamUser, pw: valid, params: iam},
		{name: "wrong password", user: appUser, pw: "nope", code: 1045},
		{name: "wrong caching_sha2 password over TLS", user: sha2User, pw: "nope", params: tlsParam(), code: 1045},
		{name: "wrong caching_sha2 password with the RSA key", user: sha2User, pw: "nope", code: 1045},
		{name: "unknown user", user: "ghost", pw: "x", code: 1045},
		{name: "forged token", user: iamUser, pw: valid[:len(valid)-4] + "0000", params: iam, code: 1045},
		{name: "token for another user", user: iamUser, pw: iamToken(t, h.addr, appUser), params: iam, code: 1045},
		{name: "expired token", user: iamUser, pw: valid, params: iam, skew: 20 * time.Minute, code: 1045},
		{name: "iam without TLS", user: iamUser, pw: valid, params: "allowCleartextPasswords=true", code: 1045},
		{name: "iam password instead of token", user: iamUser, pw: iamPW, params: iam, code: 1045},
		{name: "unknown database", user: appUser, pw: appPW, params: "", code: 1049},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.skew.Store(int64(tc.skew))
			defer h.skew.Store(0)
			ctx := ctxT(t, 20*time.Second)
			db := testDB
			if tc.code == 1049 {
				db = "nosuchdb"
			}
			c := h.open(tc.user, tc.pw, db, tc.params)
			var who string
			err := c.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&who)
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(who, tc.user+"@") {
					t.Fatalf("CURRENT_USER() = %q", who)
				}
				return
			}
			if got := myErrNo(err); got != tc.code {
				t.Fatalf("error %v (%d), want %d", err, got, tc.code)
			}
			if tc.code == 1045 && !strings.Contains(err.Error(), "Access denied for user '"+tc.user+"'@'127.0.0.1'") {
				t.Fatalf("error text %q", err)
			}
		})
	}
	// The count moves after the client has its error.
	eventually(t, 5*time.Second, func() error {
		if n := h.metric("ClientConnectionsSetupFailedAuth"); n != 9 {
			return fmt.Errorf("ClientConnectionsSetupFailedAuth = %d, want 9", n)
		}
		return nil
	})
}

// TestCachingSHA2Paths checks caching_sha2_password's two paths: a full
// authentication (password over TLS or RSA-encrypted) the first time, the
// fast scramble after, and full again once the secret changes.
func TestCachingSHA2Paths(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	ctx := ctxT(t, 30*time.Second)
	login := func(params string) error {
		c := h.open(sha2User, sha2PW, "", params)
		defer c.Close()
		return c.PingContext(ctx)
	}
	if h.p.sha2Cached(h.spec.ID, sha2User, sha2PW) {
		t.Fatal("cached before any login")
	}
	if err := login(""); err != nil { // full, RSA
		t.Fatal(err)
	}
	if !h.p.sha2Cached(h.spec.ID, sha2User, sha2PW) {
		t.Fatal("not cached after a full authentication")
	}
	if err := login(""); err != nil { // fast
		t.Fatal(err)
	}
	// The secret rotates: the cache no longer matches; full again, over TLS.
	h.secrets.put("arn:sha2", sha2User, "rotated-pw")
	if h.p.sha2Cached(h.spec.ID, sha2User, "rotated-pw") {
		t.Fatal("cache matches a new password")
	}
	c := h.open(sha2User, "rotated-pw", "", tlsParam())
	if err := c.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	if !h.p.sha2Cached(h.spec.ID, sha2User, "rotated-pw") {
		t.Fatal("not cached after the full authentication over TLS")
	}
	if err := login(""); myErrNo(err) != 1045 {
		t.Fatalf("old password: %v", err)
	}
}

func TestRequireTLS(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{mod: func(s *proxy.ProxySpec) { s.RequireTLS = true }})
	ctx := ctxT(t, 20*time.Second)
	err := h.open(appUser, appPW, "", "").PingContext(ctx)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 3159 || me.SQLState != [5]byte{'H', 'Y', '0', '0', '0'} ||
		me.Message != "This RDS Proxy requires TLS connections." {
		t.Fatalf("plaintext login: %#v", err)
	}
	if err := h.open(appUser, appPW, "", tlsParam()).PingContext(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGoMySQLClient logs in with go-mysql's own client (native and
// caching_sha2, with and without TLS) and checks the greeting carries the
// target's version.
func TestGoMySQLClient(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	direct, err := client.Connect(srv.Addr(), appUser, appPW, "")
	if err != nil {
		t.Fatal(err)
	}
	want := direct.GetServerVersion()
	direct.Close()
	for _, tc := range []struct {
		user, pw string
		tls      bool
	}{{appUser, appPW, false}, {appUser, appPW, true}, {sha2User, sha2PW, true}, {sha2User, sha2PW, false}} {
		t.Run(tc.user+"/tls="+strconv.FormatBool(tc.tls), func(t *testing.T) {
			c, err := client.Connect(h.addr, tc.user, tc.pw, testDB, func(c *client.Conn) error {
				if tc.tls {
					c.SetTLSConfig(&tls.Config{RootCAs: testCA.CertPool(), ServerName: "localhost"})
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.GetServerVersion(); got != want {
				t.Errorf("version %q, want %q", got, want)
			}
			r, err := c.Execute("SELECT DATABASE(), 40 + 2")
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := r.GetString(0, 0); s != testDB {
				t.Errorf("DATABASE() %q", s)
			}
			if n, _ := r.GetInt(0, 1); n != 42 {
				t.Errorf("42: %d", n)
			}
		})
	}
}

// mariadbCLI runs the mariadb client against the harness.
func (h *harness) mariadbCLI(t *testing.T, user, pw string, extra []string, sql string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("mariadb")
	if err != nil {
		t.Skip("no mariadb client")
	}
	host, port, _ := strings.Cut(h.addr, ":")
	args := append([]string{"--no-defaults", "-h", host, "-P", port, "-u", user, "-p" + pw, "--batch", "--skip-column-names"}, extra...)
	args = append(args, "-e", sql)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestMariaDBCLI(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	verify := []string{"--ssl-verify-server-cert", "--ssl-ca=" + caFile}
	cases := []struct {
		name, user, pw string
		extra          []string
		want           string // output, or an error text
		fail           bool
	}{
		{name: "native, plaintext", user: appUser, pw: appPW, extra: []string{"--skip-ssl"}, want: "app@%"},
		{name: "native, verified TLS", user: appUser, pw: appPW, extra: verify, want: "app@%"},
		{name: "caching_sha2, verified TLS", user: sha2User, pw: sha2PW, extra: verify, want: "app_sha2@%"},
		{name: "iam, verified TLS", user: iamUser, pw: iamToken(t, h.addr, iamUser), extra: append([]string{"--enable-cleartext-plugin"}, verify...), want: "app_iam@%"},
		{name: "wrong password", user: appUser, pw: "nope", extra: verify, fail: true,
			want: "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)"},
		{name: "compression", user: appUser, pw: appPW, extra: []string{"--compress", "--skip-ssl"}, want: "app@%"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := h.mariadbCLI(t, tc.user, tc.pw, tc.extra, "SELECT CURRENT_USER()")
			if tc.fail != (err != nil) || !strings.Contains(out, tc.want) {
				t.Fatalf("output %q, err %v; want %q", out, err, tc.want)
			}
		})
	}
}
