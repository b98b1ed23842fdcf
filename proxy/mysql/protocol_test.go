package mysql

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"
	"github.com/rdslocal/rdslocal/proxy"
	"github.com/rdslocal/rdslocal/proxy/mysql/wire"
)

// TestMultiStatementsAndProcedures: multi-statement texts, several result
// sets and stored procedure results relay whole; the connection is
// returned only after the last result.
func TestMultiStatementsAndProcedures(t *testing.T) {
	srv := requireMariaDB(t)
	ctx := ctxT(t, time.Minute)
	if err := srv.Exec(ctx, "CREATE OR REPLACE PROCEDURE "+testDB+".two_results(IN k INT) BEGIN SELECT k AS a; SELECT k + 1 AS b, 'x' AS c; END"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, srv, harnessOpts{maxConns: 1})
	for _, params := range []string{"multiStatements=true", "multiStatements=true&interpolateParams=true"} {
		db := h.open(appUser, appPW, testDB, params)
		db.SetMaxIdleConns(0) // the binary protocol pins: the session must end to free the connection
		c := conn(t, ctx, db)
		rows, err := c.QueryContext(ctx, "SELECT 1; SELECT 2, 3; DO 0; SELECT 'four'")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			for rows.Next() {
				cols, _ := rows.Columns()
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				rows.Scan(ptrs...)
				got = append(got, fmt.Sprintf("%v", textVals(vals)))
			}
			if !rows.NextResultSet() {
				break
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if want := "[[1] [2 3] [four]]"; fmt.Sprint(got) != want {
			t.Fatalf("results %v, want %s", got, want)
		}
		// An error in the middle ends the text.
		if _, err := c.ExecContext(ctx, "INSERT INTO items (client) VALUES (-30); INSERT INTO nosuch VALUES (1); INSERT INTO items (client) VALUES (-31)"); myErrNo(err) != 1146 {
			t.Fatalf("error %v", err)
		}
		rows, err = c.QueryContext(ctx, "CALL two_results(?)", 41)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for {
			for rows.Next() {
				cols, _ := rows.Columns()
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				rows.Scan(ptrs...)
				got = append(got, fmt.Sprintf("%v", textVals(vals)))
			}
			if !rows.NextResultSet() {
				break
			}
		}
		rows.Close()
		if want := "[[41] [42 x]]"; fmt.Sprint(got) != want {
			t.Fatalf("procedure results %v, want %s", got, want)
		}
		if scan1[int](t, ctx, c, "SELECT 5") != 5 {
			t.Fatal("session broken after the procedure")
		}
		c.Close()
	}
}

// rawClient is a go-mysql client logged in through the proxy whose
// connection the test then drives packet by packet.
type rawClient struct {
	cc   *client.Conn
	nc   net.Conn
	r    *wire.Reader
	caps uint32
}

func (h *harness) raw(t *testing.T, user, pw, db string, opts ...client.Option) *rawClient {
	t.Helper()
	cc, err := client.Connect(h.addr, user, pw, db, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return &rawClient{cc: cc, nc: cc.Conn.Conn, r: wire.NewReader(cc.Conn.Conn, 64<<10),
		caps: gm.CLIENT_PROTOCOL_41 | gm.CLIENT_DEPRECATE_EOF}
}

// query sends a COM_QUERY and reads its response, streaming rows to
// io.Discard; it returns the number of rows and the ERR, if any.
func (c *rawClient) query(q string) (rows int, bytes int64, myErr *gm.MyError, err error) {
	if _, err := c.nc.Write(wire.AppendCommand(nil, gm.COM_QUERY, []byte(q))); err != nil {
		return 0, 0, nil, err
	}
	var resp wire.Response
	resp.Start(wire.KindResult, c.caps&gm.CLIENT_DEPRECATE_EOF != 0)
	for !resp.Ended() {
		n, _, err := c.r.Header()
		if err != nil {
			return rows, bytes, nil, err
		}
		head, err := c.r.Peek(min(n, wire.HeadSize))
		if err != nil {
			return rows, bytes, nil, err
		}
		inRows := resp.InRows()
		ev, err := resp.Next(n, head)
		if err != nil {
			return rows, bytes, nil, err
		}
		if ev == wire.Done && resp.Err {
			body, _ := c.r.Body(n)
			myErr = wire.ParseErr(body)
			continue
		}
		if inRows && ev == wire.More {
			rows++
		}
		bytes += int64(n)
		if err := c.r.CopyN(io.Discard, n); err != nil {
			return rows, bytes, nil, err
		}
	}
	return rows, bytes, myErr, nil
}

// TestLargeResult streams a 50 MB result set (and one value larger than a
// packet) through the proxy: the proxy's allocations stay far below the
// data's size.
func TestLargeResult(t *testing.T) {
	srv := requireMariaDB(t)
	ctx := ctxT(t, 2*time.Minute)
	if err := srv.Exec(ctx, "SET GLOBAL max_allowed_packet = 67108864"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, srv, harnessOpts{})
	c := h.raw(t, appUser, appPW, testDB)
	if _, _, me, err := c.query("SELECT 1"); err != nil || me != nil {
		t.Fatal(err, me)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rows, n, me, err := c.query("SELECT seq, REPEAT('x', 1048576) FROM seq_1_to_50")
	runtime.ReadMemStats(&after)
	if err != nil || me != nil {
		t.Fatal(err, me)
	}
	if rows != 50 || n < 50<<20 {
		t.Fatalf("%d rows, %d bytes", rows, n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("relaying %d MB allocated %d MB", n>>20, alloc>>20)
	}
	t.Logf("relayed %d MB with %d KB allocated", n>>20, (after.TotalAlloc-before.TotalAlloc)>>10)
	// A value over 16 MB spans several packets.
	rows, n, me, err = c.query("SELECT REPEAT('y', 20000000), 'tail'")
	if err != nil || me != nil || rows != 1 || n < 20000000 {
		t.Fatalf("big value: %d rows, %d bytes, %v %v", rows, n, me, err)
	}
	if _, _, me, err := c.query("SELECT 1"); err != nil || me != nil {
		t.Fatal("session broken:", err, me)
	}
}

// TestLocalInfile: LOAD DATA LOCAL INFILE works inside a borrowed
// connection.
func TestLocalInfile(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	ctx := ctxT(t, time.Minute)
	var data strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&data, "-40\t%d\trow %d\n", i, i)
	}
	mysql.RegisterReaderHandler("rows", func() io.Reader { return strings.NewReader(data.String()) })
	defer mysql.DeregisterReaderHandler("rows")
	db := h.open(appUser, appPW, testDB, "interpolateParams=true")
	c := conn(t, ctx, db)
	r := mustExec(t, ctx, c, "LOAD DATA LOCAL INFILE 'Reader::rows' INTO TABLE items (client, n, note)")
	if n, _ := r.RowsAffected(); n != 1000 {
		t.Fatalf("%d rows loaded", n)
	}
	if got := scan1[int](t, ctx, c, "SELECT COUNT(*) FROM items WHERE client = -40"); got != 1000 {
		t.Fatalf("%d rows", got)
	}
}

// TestCommands covers the other commands: COM_INIT_DB, COM_FIELD_LIST,
// COM_STATISTICS, COM_PING, COM_RESET_CONNECTION, and the compressed
// protocol refused.
func TestCommands(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	c, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := c.UseDB("otherdb"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Execute("SELECT DATABASE()")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := r.GetString(0, 0); s != "otherdb" {
		t.Fatalf("DATABASE() = %q", s)
	}
	if err := c.UseDB("nosuchdb"); myErrNo(err) != 1049 {
		t.Fatalf("USE nosuchdb: %v", err)
	}
	fields, err := c.FieldList("t", "")
	if err != nil || len(fields) != 1 || string(fields[0].Name) != "a" {
		t.Fatalf("field list %v %v", fields, err)
	}
	// COM_STATISTICS answers one string.
	c.ResetSequence()
	if err := c.WritePacket(append(make([]byte, 4), gm.COM_STATISTICS)); err != nil {
		t.Fatal(err)
	}
	stats, err := c.ReadPacket()
	if err != nil || !bytes.Contains(stats, []byte("Uptime")) {
		t.Fatalf("statistics %q %v", stats, err)
	}
	// COM_RESET_CONNECTION: the session starts afresh.
	if _, err := c.Execute("SET SESSION sql_mode = 'ANSI'"); err != nil {
		t.Fatal(err)
	}
	c.ResetSequence()
	if err := c.WritePacket(append(make([]byte, 4), gm.COM_RESET_CONNECTION)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadOKPacket(); err != nil {
		t.Fatal(err)
	}
	if r, err = c.Execute("SELECT @@sql_mode"); err != nil {
		t.Fatal(err)
	}
	if s, _ := r.GetString(0, 0); s == "ANSI" {
		t.Fatal("sql_mode survived COM_RESET_CONNECTION")
	}
	// A client that insists on compression is refused clearly.
	_, err = client.Connect(h.addr, appUser, appPW, "", func(c *client.Conn) error { return c.SetCapability(gm.CLIENT_COMPRESS) })
	if myErrNo(err) != gm.ER_NOT_SUPPORTED_YET || !strings.Contains(err.Error(), "compressed protocol") {
		t.Fatalf("compression: %v", err)
	}
}

// TestChangeUser: COM_CHANGE_USER re-authenticates against the proxy's
// secrets; the session starts afresh as the new user; a wrong password
// ends the connection with ERROR 1045.
func TestChangeUser(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{})
	change := func(c *client.Conn, user, pw, db string) error {
		// COM_CHANGE_USER naming a plugin the user does not use, so the
		// proxy switches to the user's with a fresh scramble.
		var p []byte
		p = append(p, gm.COM_CHANGE_USER)
		p = append(p, user...)
		p = append(p, 0, 0) // user, empty auth data
		p = append(p, db...)
		p = append(p, 0, 45, 0) // db, charset utf8mb4_general_ci
		p = append(p, "client_ed25519"...)
		p = append(p, 0)
		c.ResetSequence()
		if err := c.WritePacket(append(make([]byte, 4), p...)); err != nil {
			return err
		}
		pkt, err := c.ReadPacket()
		if err != nil {
			return err
		}
		if pkt[0] == gm.ERR_HEADER {
			return wire.ParseErr(pkt)
		}
		plugin, salt, err := wire.ParseAuthSwitchRequest(pkt)
		if err != nil {
			return err
		}
		var auth []byte
		switch plugin {
		case gm.AUTH_NATIVE_PASSWORD:
			auth = gm.CalcNativePassword(salt, []byte(pw))
		case gm.AUTH_CACHING_SHA2_PASSWORD:
			auth = gm.CalcCachingSha2Password(salt, []byte(pw))
		default:
			return fmt.Errorf("switch to %q", plugin)
		}
		if err := c.WritePacket(append(make([]byte, 4), auth...)); err != nil {
			return err
		}
		for {
			pkt, err = c.ReadPacket()
			if err != nil {
				return err
			}
			switch pkt[0] {
			case gm.OK_HEADER:
				return nil
			case gm.ERR_HEADER:
				return wire.ParseErr(pkt)
			case gm.MORE_DATE_HEADER:
				if pkt[1] == gm.CACHE_SHA2_FULL_AUTH {
					// Full authentication: no TLS here, so take the
					// public key.
					if err := c.WritePacket([]byte{0, 0, 0, 0, 2}); err != nil {
						return err
					}
					key, err := c.ReadPacket()
					if err != nil {
						return err
					}
					pub, err := parsePub(key[1:])
					if err != nil {
						return err
					}
					enc, err := gm.EncryptPassword(pw, salt, pub)
					if err != nil {
						return err
					}
					if err := c.WritePacket(append(make([]byte, 4), enc...)); err != nil {
						return err
					}
				}
			}
		}
	}
	c, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute("SET @v = 1"); err != nil { // pins
		t.Fatal(err)
	}
	if err := change(c, sha2User, sha2PW, "otherdb"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Execute("SELECT CURRENT_USER(), DATABASE(), @v")
	if err != nil {
		t.Fatal(err)
	}
	who, _ := r.GetString(0, 0)
	db, _ := r.GetString(0, 1)
	v, _ := r.GetString(0, 2)
	if who != sha2User+"@%" || db != "otherdb" || v != "" {
		t.Fatalf("after COM_CHANGE_USER: %q %q @v=%q", who, db, v)
	}
	if err := change(c, appUser, "wrong", ""); myErrNo(err) != 1045 {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := c.Execute("SELECT 1"); err == nil {
		t.Fatal("connection still open after a failed COM_CHANGE_USER")
	}
}

// TestTLSToServer: with RequireTLS the proxy dials the server with TLS.
func TestTLSToServer(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{mod: func(s *proxy.ProxySpec) { s.RequireTLS = true }})
	ctx := ctxT(t, 20*time.Second)
	c := conn(t, ctx, h.open(appUser, appPW, testDB, tlsParam()))
	var name, cipher string
	if err := c.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil {
		t.Fatal(err)
	}
	if cipher == "" {
		t.Fatal("the server connection is not TLS")
	}
	_ = tls.VersionTLS12
}

func parsePub(b []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return pub, nil
}

// textVals renders scanned values ([]byte as text).
func textVals(vals []any) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		if b, ok := v.([]byte); ok {
			out[i] = string(b)
		} else {
			out[i] = fmt.Sprint(v)
		}
	}
	return out
}

// TestCapabilityVariants: clients that negotiated different capabilities
// get server connections opened like them (CLIENT_FOUND_ROWS changes
// what an UPDATE reports), even through one connection at a time.
func TestCapabilityVariants(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{maxConns: 1})
	ctx := ctxT(t, time.Minute)
	plain := conn(t, ctx, h.open(appUser, appPW, testDB, "interpolateParams=true"))
	found := conn(t, ctx, h.open(appUser, appPW, testDB, "interpolateParams=true&clientFoundRows=true"))
	mustExec(t, ctx, plain, "INSERT INTO items (client, n) VALUES (-60, 1)")
	for range 2 {
		if n, _ := mustExec(t, ctx, plain, "UPDATE items SET n = 1 WHERE client = -60").RowsAffected(); n != 0 {
			t.Fatalf("without CLIENT_FOUND_ROWS: %d rows affected", n)
		}
		if n, _ := mustExec(t, ctx, found, "UPDATE items SET n = 1 WHERE client = -60").RowsAffected(); n != 1 {
			t.Fatalf("with CLIENT_FOUND_ROWS: %d rows matched", n)
		}
	}
}

// TestIdleClientTimeout: a client idle longer than IdleClientTimeout is
// disconnected; its open transaction is rolled back and the connection
// returned.
func TestIdleClientTimeout(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{mod: func(s *proxy.ProxySpec) { s.IdleClientTimeout = 300 * time.Millisecond }})
	c, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{"BEGIN", "INSERT INTO items (client, n) VALUES (-70, 1)"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		if h.idleCount() != 1 {
			return fmt.Errorf("connection not returned")
		}
		return nil
	})
	if _, err := c.Execute("COMMIT"); err == nil {
		t.Fatal("idle client still connected")
	}
	ctx := ctxT(t, 10*time.Second)
	d := conn(t, ctx, h.open(appUser, appPW, testDB, "interpolateParams=true"))
	if n := scan1[int](t, ctx, d, "SELECT COUNT(*) FROM items WHERE client = -70"); n != 0 {
		t.Fatalf("%d rows of the abandoned transaction", n)
	}
}

// TestClientMaxAge: a client connection past RDS Proxy's maximum client
// life is closed at its first moment outside a transaction, never inside
// one.
func TestClientMaxAge(t *testing.T) {
	srv := requireMariaDB(t)
	h := newHarness(t, srv, harnessOpts{clientMaxAge: 200 * time.Millisecond})
	c, err := client.Connect(h.addr, appUser, appPW, testDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Execute("BEGIN"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the life ends while the transaction is open
	if _, err := c.Execute("INSERT INTO items (client, n) VALUES (-71, 1)"); err != nil {
		t.Fatalf("a session past its life was ended inside a transaction: %v", err)
	}
	if _, err := c.Execute("COMMIT"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if _, err := c.Execute("SELECT 1"); err == nil {
			return errors.New("a session past its life is still connected outside a transaction")
		}
		return nil
	})
}
