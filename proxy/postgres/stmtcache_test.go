package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rdslocal/rdslocal/proxy"
)

// scripted is a scripted client connection for tests that interleave
// several sessions.
type scripted struct {
	t  *testing.T
	fe *pgproto3.Frontend
}

func newScripted(ctx context.Context, t *testing.T, dsn string) *scripted {
	fe, _ := scriptConn(ctx, t, dsn)
	return &scripted{t: t, fe: fe}
}

// do sends msgs and reads until ReadyForQuery, returning what came (as
// describe names them, notices and parameter changes left out).
func (s *scripted) do(msgs ...pgproto3.FrontendMessage) []string {
	s.t.Helper()
	for _, m := range msgs {
		s.fe.Send(m)
	}
	if err := s.fe.Flush(); err != nil {
		s.t.Fatal(err)
	}
	var got []string
	for {
		m, err := s.fe.Receive()
		if err != nil {
			s.t.Fatalf("after %q: %v", got, err)
		}
		switch m.(type) {
		case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
			continue
		}
		got = append(got, describe(m))
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			return got
		}
	}
}

// TestStatementCacheAfterDDL: after a schema change, a statement prepared
// before it fails the way it fails directly (once per session, as drivers
// expect: they re-prepare), and a statement prepared after it never fails,
// although the proxy shares prepared statements between sessions and
// server connections. The change runs through the proxy or beside it.
func TestStatementCacheAfterDDL(t *testing.T) {
	srv := requirePG(t)
	// One server connection: every session shares it and its statements.
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.Pool.MaxConnectionsPercent = 1 })
	ctx := ctxT(t, 60*time.Second)
	admin, err := srv.admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	direct := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", srv.port, appUser, appPW)
	parse := func(name, q string) *pgproto3.Parse { return &pgproto3.Parse{Name: name, Query: q} }
	describeS := func(name string) *pgproto3.Describe { return &pgproto3.Describe{ObjectType: 'S', Name: name} }
	bind := func(name string) *pgproto3.Bind { return &pgproto3.Bind{PreparedStatement: name} }
	exec := &pgproto3.Execute{}
	sync := &pgproto3.Sync{}
	closeS := func(name string) *pgproto3.Close { return &pgproto3.Close{ObjectType: 'S', Name: name} }
	query := func(q string) *pgproto3.Query { return &pgproto3.Query{String: q} }
	prepared := []string{"ParseComplete", "ParameterDescription", "RowDescription", "Z I"}
	fresh := []string{"ParseComplete", "ParameterDescription", "RowDescription", "BindComplete", "DataRow 1", "CommandComplete", "Z I"}
	stale := []string{"Error 0A000", "Z I"}
	check := func(t *testing.T, what string, got, want []string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}
	n := 0
	for _, ddlVia := range []string{"proxy", "beside"} {
		for _, target := range []struct{ name, dsn string }{{"direct", direct}, {"proxy", h.dsn(appUser, appPW, "")}} {
			t.Run(ddlVia+"/"+target.name, func(t *testing.T) {
				n++
				tbl := fmt.Sprintf("ddl_t%d", n)
				sel := "SELECT * FROM " + tbl
				if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (a int, b int); INSERT INTO %[1]s VALUES (1, 2); ALTER TABLE %[1]s OWNER TO "+appUser, tbl)); err != nil {
					t.Fatal(err)
				}
				alter := fmt.Sprintf("ALTER TABLE %s DROP COLUMN b", tbl)
				s1 := newScripted(ctx, t, target.dsn)
				check(t, "first prepare", s1.do(parse("q", sel), describeS("q"), sync), prepared)
				if ddlVia == "proxy" {
					s2 := newScripted(ctx, t, target.dsn)
					check(t, "DDL", s2.do(query(alter)), []string{"CommandComplete", "Z I"})
				} else if _, err := admin.Exec(ctx, alter); err != nil {
					t.Fatal(err)
				}
				if ddlVia == "proxy" {
					// Prepared after the change by another session: fine.
					s3 := newScripted(ctx, t, target.dsn)
					check(t, "prepared after the change", s3.do(parse("q", sel), describeS("q"), bind("q"), exec, sync), fresh)
				}
				// Prepared before it: fails, as directly.
				check(t, "bound after the change", s1.do(bind("q"), exec, sync), stale)
				// The driver re-prepares: fine now.
				check(t, "re-prepared", s1.do(closeS("q"), parse("q", sel), describeS("q"), bind("q"), exec, sync),
					append([]string{"CloseComplete"}, fresh...))
				// And for a new session.
				s4 := newScripted(ctx, t, target.dsn)
				check(t, "new session", s4.do(parse("q", sel), describeS("q"), bind("q"), exec, sync), fresh)
			})
		}
	}
}

// TestTypeRecreatedThroughProxy: a statement using a type that was dropped
// and created again (through the proxy) is prepared afresh, not answered
// from a server connection's copy that refers to the dropped type (pgx's
// TestEnumCodecValues after TestEnumCodec).
func TestTypeRecreatedThroughProxy(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.Pool.MaxConnectionsPercent = 1 })
	ctx := ctxT(t, 30*time.Second)
	for i := range 2 {
		c := h.mustConnect(ctx, "")
		if _, err := c.Exec(ctx, "DROP TYPE IF EXISTS ddl_enum; CREATE TYPE ddl_enum AS ENUM ('foo', 'bar')"); err != nil {
			t.Fatal(err)
		}
		var s string
		if err := c.QueryRow(ctx, "SELECT 'foo'::ddl_enum::text").Scan(&s); err != nil || s != "foo" {
			t.Fatalf("round %d: %q, %v", i, s, err)
		}
		if err := c.QueryRow(ctx, "SELECT $1::ddl_enum::text", "bar").Scan(&s); err != nil || s != "bar" {
			t.Fatalf("round %d: %q, %v", i, s, err)
		}
		c.Close(ctx)
	}
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	c.Exec(ctx, "DROP TYPE ddl_enum")
}

// TestClosedStatementsLeaveTheServer: a statement its sessions have all
// closed is closed on the server connections that held it (as a direct
// connection's Close does), while one a session still holds stays; a
// session that merely ends leaves its statements for the next ones.
func TestClosedStatementsLeaveTheServer(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.Pool.MaxConnectionsPercent = 1 })
	ctx := ctxT(t, 30*time.Second)
	const text = "SELECT 4242"
	onServer := func(c *pgx.Conn) int {
		t.Helper()
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", text).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	a := h.mustConnect(ctx, "")
	defer a.Close(ctx)
	b := h.mustConnect(ctx, "")
	defer b.Close(ctx)
	if _, err := a.Prepare(ctx, "a1", text); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Prepare(ctx, "b1", text); err != nil {
		t.Fatal(err)
	}
	if n := onServer(a); n != 1 {
		t.Fatalf("prepared by two sessions: %d on the server, want 1 (shared)", n)
	}
	if err := a.Deallocate(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if n := onServer(a); n != 1 {
		t.Fatalf("closed by one of two sessions: %d on the server, want 1", n)
	}
	if err := b.Deallocate(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	if n := onServer(a); n != 0 {
		t.Fatalf("closed by both sessions: %d on the server, want 0", n)
	}
	// A session that ends without closing leaves it for the next.
	c := h.mustConnect(ctx, "")
	if _, err := c.Prepare(ctx, "c1", text); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	if n := onServer(a); n != 1 {
		t.Fatalf("after a session ended: %d on the server, want 1 (kept for reuse)", n)
	}
}

// TestDeallocateOnAnotherBackend: a SQL DEALLOCATE of a protocol-level
// statement works when the server connection serving it is not the one
// that prepared the statement (simple Query and extended protocol).
func TestDeallocateOnAnotherBackend(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 30*time.Second)
	direct := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", srv.port, appUser, appPW)
	parse := func(name, q string) *pgproto3.Parse { return &pgproto3.Parse{Name: name, Query: q} }
	bind := func(name string) *pgproto3.Bind { return &pgproto3.Bind{PreparedStatement: name} }
	exec := &pgproto3.Execute{}
	sync := &pgproto3.Sync{}
	query := func(q string) *pgproto3.Query { return &pgproto3.Query{String: q} }
	for _, target := range []struct{ name, dsn string }{{"direct", direct}, {"proxy", h.dsn(appUser, appPW, "")}} {
		t.Run(target.name, func(t *testing.T) {
			a := newScripted(ctx, t, target.dsn)
			a.do(parse("pa", "SELECT 'on another backend 1'"), parse("pb", "SELECT 'on another backend 2'"), sync)
			// Another session holds the server connection that prepared
			// them, so a's next requests get another one.
			b := newScripted(ctx, t, target.dsn)
			b.do(query("BEGIN"))
			if got, want := a.do(query("DEALLOCATE pa")), []string{"CommandComplete", "Z I"}; !slices.Equal(got, want) {
				t.Errorf("simple DEALLOCATE: got %q, want %q", got, want)
			}
			if got, want := a.do(parse("", "DEALLOCATE pb"), bind(""), exec, sync),
				[]string{"ParseComplete", "BindComplete", "CommandComplete", "Z I"}; !slices.Equal(got, want) {
				t.Errorf("extended DEALLOCATE: got %q, want %q", got, want)
			}
			if got, want := a.do(parse("pa", "SELECT 3"), bind("pa"), exec, sync),
				[]string{"ParseComplete", "BindComplete", "DataRow 3", "CommandComplete", "Z I"}; !slices.Equal(got, want) {
				t.Errorf("prepared again: got %q, want %q", got, want)
			}
			b.do(query("ROLLBACK"))
		})
	}
}
