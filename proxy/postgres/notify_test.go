package postgres

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rdslocal/rdslocal/proxy"
)

// readUntilZ reads messages until ReadyForQuery and returns the first
// column of the last DataRow.
func readUntilZ(t *testing.T, fe *pgproto3.Frontend) string {
	t.Helper()
	var v string
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			v = string(m.Values[0])
		case *pgproto3.ErrorResponse:
			t.Fatalf("error %s: %s", m.Code, m.Message)
		case *pgproto3.ReadyForQuery:
			return v
		}
	}
}

// TestAsyncToIdlePinnedClient: what the server sends on its own while a
// pinned client waits (a notification for its LISTEN, the FATAL of a
// terminated backend) reaches the client as it arrives, directly and
// through the proxy alike, and the session goes on (or ends) as it would.
func TestAsyncToIdlePinnedClient(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	// TLS on both legs: the watch looks at the socket under TLS.
	htls := newHarness(t, srv, func(s *proxy.ProxySpec) { s.RequireTLS = true })
	ctx := ctxT(t, 60*time.Second)
	admin, err := srv.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	direct := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", srv.port, appUser, appPW)
	tlsDSN := strings.Replace(htls.dsn(appUser, appPW, ""), "sslmode=disable", "sslmode=require", 1)
	for _, target := range []struct{ name, dsn string }{{"direct", direct}, {"proxy", h.dsn(appUser, appPW, "")}, {"proxy over TLS", tlsDSN}} {
		t.Run(target.name, func(t *testing.T) {
			fe, conn := scriptConn(ctx, t, target.dsn)
			fe.Send(&pgproto3.Query{String: "LISTEN async_chan; SELECT pg_backend_pid()"})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			pid := readUntilZ(t, fe)

			// A notification while the client waits.
			if _, err := admin.Exec(ctx, "SELECT pg_notify('async_chan', 'hello')"); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("waiting for the notification: %v", err)
			}
			if n, ok := m.(*pgproto3.NotificationResponse); !ok || n.Channel != "async_chan" || n.Payload != "hello" {
				t.Fatalf("got %#v, want the notification", m)
			}

			// The session goes on.
			fe.Send(&pgproto3.Query{String: "SELECT 7"})
			fe.Flush()
			if v := readUntilZ(t, fe); v != "7" {
				t.Fatalf("after the notification: %q", v)
			}

			// The backend is terminated while the client waits: the
			// server's FATAL reaches it, then the connection closes.
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend("+pid+")"); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, err = fe.Receive()
			if err != nil {
				t.Fatalf("waiting for the FATAL: %v", err)
			}
			if e, ok := m.(*pgproto3.ErrorResponse); !ok || e.Severity != "FATAL" || e.Code != "57P01" {
				t.Fatalf("got %#v, want FATAL 57P01", m)
			}
			if m, err := fe.Receive(); err == nil {
				t.Fatalf("after the FATAL: %#v, want the connection closed", m)
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("connection left open after the FATAL")
			}
		})
	}
}

// TestPinnedIdleSessionEnds: a pinned session waiting for its client (the
// proxy watching its backend meanwhile) still ends by idle timeout, and by
// the proxy's Close, without leaving a goroutine behind (TestMain's goleak).
func TestPinnedIdleSessionEnds(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.IdleClientTimeout = 300 * time.Millisecond })
	ctx := ctxT(t, 30*time.Second)
	listen := func() (*pgproto3.Frontend, net.Conn) {
		fe, conn := scriptConn(ctx, t, h.dsn(appUser, appPW, ""))
		fe.Send(&pgproto3.Query{String: "LISTEN idle_chan"})
		fe.Flush()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		readUntilZ(t, fe)
		return fe, conn
	}
	fe, conn := listen()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := fe.Receive()
	if e, ok := m.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "57P05" {
		t.Fatalf("idle pinned client: got %#v, %v; want FATAL 57P05", m, err)
	}
	_, conn = listen()
	h.m.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			if strings.Contains(err.Error(), "timeout") {
				t.Fatal("session left open by Close")
			}
			break
		}
	}
}
