package postgres

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rdslocal/rdslocal/proxy"
)

// scriptConn logs in with pgconn and hands back the wire, for scripted
// protocol exchanges.
func scriptConn(ctx context.Context, t *testing.T, dsn string) (*pgproto3.Frontend, net.Conn) {
	t.Helper()
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	return hc.Frontend, hc.Conn
}

// describe names a backend message the way the scripts below expect it.
func describe(m pgproto3.BackendMessage) string {
	switch m := m.(type) {
	case *pgproto3.ErrorResponse:
		if m.Code == "42P05" { // the proxy renames it: check the text too
			return "Error 42P05 " + m.Message
		}
		return "Error " + m.Code
	case *pgproto3.ReadyForQuery:
		return "Z " + string(m.TxStatus)
	case *pgproto3.DataRow:
		var vals []string
		for _, v := range m.Values {
			vals = append(vals, string(v))
		}
		return "DataRow " + strings.Join(vals, ",")
	default:
		return strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.")
	}
}

type step struct {
	send []pgproto3.FrontendMessage
	want []string // the next messages, in order; none: read nothing
}

// pause is a pseudo-message for scripts: what was sent before it is
// flushed, then the script waits.
type pause time.Duration

func (pause) Frontend()                       {}
func (pause) Decode([]byte) error             { return nil }
func (pause) Encode(b []byte) ([]byte, error) { return b, nil }

// runScript plays steps on a connection and returns what it received.
func runScript(ctx context.Context, t *testing.T, name, dsn string, steps []step) [][]string {
	fe, conn := scriptConn(ctx, t, dsn)
	var got [][]string
	for i, st := range steps {
		for _, m := range st.send {
			if p, ok := m.(pause); ok {
				if err := fe.Flush(); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				time.Sleep(time.Duration(p))
				continue
			}
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var msgs []string
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(msgs) < len(st.want) {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("%s, step %d: after %q: %v", name, i, msgs, err)
			}
			switch m.(type) {
			case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse:
				continue
			}
			msgs = append(msgs, describe(m))
		}
		got = append(got, msgs)
	}
	return got
}

// TestExtendedProtocolEdges plays extended-protocol scripts against the
// server directly and through the proxy: both must answer exactly as
// scripted (the proxy rewrites statement names and answers some messages
// itself, so these are the places it could diverge).
func TestExtendedProtocolEdges(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 60*time.Second)
	parse := func(name, q string) *pgproto3.Parse { return &pgproto3.Parse{Name: name, Query: q} }
	bind := func(stmt string) *pgproto3.Bind { return &pgproto3.Bind{PreparedStatement: stmt} }
	exec := &pgproto3.Execute{}
	sync := &pgproto3.Sync{}
	flush := &pgproto3.Flush{}
	closeS := func(name string) *pgproto3.Close { return &pgproto3.Close{ObjectType: 'S', Name: name} }
	query := func(q string) *pgproto3.Query { return &pgproto3.Query{String: q} }
	describeS := func(name string) *pgproto3.Describe { return &pgproto3.Describe{ObjectType: 'S', Name: name} }
	after := step{[]pgproto3.FrontendMessage{query("SELECT 42")}, []string{"RowDescription", "DataRow 42", "CommandComplete", "Z I"}}
	cases := []struct {
		name  string
		steps []step
	}{
		{"flush after an error, more messages, then sync", []step{
			{[]pgproto3.FrontendMessage{parse("", "SELECT 1/(random()*0)::int"), bind(""), exec, flush}, []string{"ParseComplete", "BindComplete", "Error 22012"}},
			{[]pgproto3.FrontendMessage{parse("", "SELECT 2"), bind(""), exec, flush}, nil},
			{[]pgproto3.FrontendMessage{sync}, []string{"Z I"}},
			after,
		}},
		{"duplicate statement name", []step{
			{[]pgproto3.FrontendMessage{parse("s1", "SELECT 1"), sync}, []string{"ParseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("s1", "SELECT 2"), bind("s1"), exec, sync}, []string{`Error 42P05 prepared statement "s1" already exists`, "Z I"}},
			{[]pgproto3.FrontendMessage{bind("s1"), exec, sync}, []string{"BindComplete", "DataRow 1", "CommandComplete", "Z I"}},
			after,
		}},
		{"duplicate name behind earlier work, flushed", []step{
			{[]pgproto3.FrontendMessage{parse("d1", "SELECT 1"), sync}, []string{"ParseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("", "SELECT 7"), bind(""), exec, parse("d1", "SELECT 3"), bind("d1"), exec, flush},
				[]string{"ParseComplete", "BindComplete", "DataRow 7", "CommandComplete", `Error 42P05 prepared statement "d1" already exists`}},
			{[]pgproto3.FrontendMessage{sync}, []string{"Z I"}},
			after,
		}},
		{"duplicate name rolls back the implicit transaction", []step{
			{[]pgproto3.FrontendMessage{query("CREATE TEMP TABLE dup_t (x int)")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("d2", "SELECT 1"), sync}, []string{"ParseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("", "INSERT INTO dup_t VALUES (1)"), bind(""), exec, parse("d2", "SELECT 2"), sync},
				[]string{"ParseComplete", "BindComplete", "CommandComplete", `Error 42P05 prepared statement "d2" already exists`, "Z I"}},
			{[]pgproto3.FrontendMessage{query("SELECT count(*) FROM dup_t")}, []string{"RowDescription", "DataRow 0", "CommandComplete", "Z I"}},
		}},
		{"duplicate name aborts an explicit transaction", []step{
			{[]pgproto3.FrontendMessage{query("BEGIN")}, []string{"CommandComplete", "Z T"}},
			{[]pgproto3.FrontendMessage{parse("d3", "SELECT 1"), sync}, []string{"ParseComplete", "Z T"}},
			{[]pgproto3.FrontendMessage{parse("d3", "SELECT 1"), sync}, []string{`Error 42P05 prepared statement "d3" already exists`, "Z E"}},
			{[]pgproto3.FrontendMessage{query("ROLLBACK")}, []string{"CommandComplete", "Z I"}},
			after,
		}},
		{"failed parse then close of the same name", []step{
			{[]pgproto3.FrontendMessage{parse("c1", "SELEC 1"), closeS("c1"), sync}, []string{"Error 42601", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("c1", "SELECT 1"), bind("c1"), exec, sync}, []string{"ParseComplete", "BindComplete", "DataRow 1", "CommandComplete", "Z I"}},
			after,
		}},
		{"query after an error, before sync", []step{
			{[]pgproto3.FrontendMessage{parse("", "SELEC 1"), query("SELECT 1"), sync}, []string{"Error 42601", "Z I"}},
			after,
		}},
		{"copy from stdin through execute", []step{
			{[]pgproto3.FrontendMessage{query("CREATE TEMP TABLE copy_t (x int)")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("", "COPY copy_t FROM STDIN"), bind(""), exec, sync}, []string{"ParseComplete", "BindComplete", "CopyInResponse"}},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("1\n2\n")}, &pgproto3.CopyDone{}, sync}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query("SELECT count(*) FROM copy_t")}, []string{"RowDescription", "DataRow 2", "CommandComplete", "Z I"}},
		}},
		{"copy from stdin through execute, failed by the client", []step{
			{[]pgproto3.FrontendMessage{query("CREATE TEMP TABLE copy_f (x int)")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("", "COPY copy_f FROM STDIN"), bind(""), exec, sync}, []string{"ParseComplete", "BindComplete", "CopyInResponse"}},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyFail{Message: "changed my mind"}, sync}, []string{"Error 57014", "Z I"}},
			{[]pgproto3.FrontendMessage{query("SELECT count(*) FROM copy_f")}, []string{"RowDescription", "DataRow 0", "CommandComplete", "Z I"}},
		}},
		{"copy from stdin failed by the server while the client waits", []step{
			{[]pgproto3.FrontendMessage{query("CREATE TEMP TABLE copy_w (x int)")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query("COPY copy_w FROM STDIN")}, []string{"CopyInResponse"}},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("1\nx\n")}}, []string{"Error 22P02", "Z I"}},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("2\n")}, &pgproto3.CopyDone{}}, nil},
			{[]pgproto3.FrontendMessage{query("SELECT count(*) FROM copy_w")}, []string{"RowDescription", "DataRow 0", "CommandComplete", "Z I"}},
		}},
		{"copy from stdin through execute, failed by the server while the client waits", []step{
			{[]pgproto3.FrontendMessage{query("CREATE TEMP TABLE copy_x (x int)")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("", "COPY copy_x FROM STDIN"), bind(""), exec, sync}, []string{"ParseComplete", "BindComplete", "CopyInResponse"}},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("1\nx\n")}}, []string{"Error 22P02"}},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("2\n")}, &pgproto3.CopyDone{}, sync}, []string{"Z I"}},
			{[]pgproto3.FrontendMessage{query("SELECT count(*) FROM copy_x")}, []string{"RowDescription", "DataRow 0", "CommandComplete", "Z I"}},
		}},
		{"close skipped after an error keeps the statement", []step{
			{[]pgproto3.FrontendMessage{parse("a", "SELECT 1"), sync}, []string{"ParseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{bind("nosuch"), exec, closeS("a"), sync}, []string{"Error 26000", "Z I"}},
			{[]pgproto3.FrontendMessage{bind("a"), exec, sync}, []string{"BindComplete", "DataRow 1", "CommandComplete", "Z I"}},
			after,
		}},
		{"parse skipped after an error creates nothing", []step{
			{[]pgproto3.FrontendMessage{bind("nosuch"), exec, parse("b", "SELECT 5"), sync}, []string{"Error 26000", "Z I"}},
			{[]pgproto3.FrontendMessage{bind("b"), exec, sync}, []string{"Error 26000", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("b", "SELECT 5"), bind("b"), exec, sync}, []string{"ParseComplete", "BindComplete", "DataRow 5", "CommandComplete", "Z I"}},
			after,
		}},
		{"statement timeout between Parse and Describe", []step{
			{[]pgproto3.FrontendMessage{query("SET statement_timeout = '100ms'")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("to1", "SELECT $1::varchar"), pause(300 * time.Millisecond), describeS("to1"), sync},
				[]string{"ParseComplete", "Error 57014", "Z I"}},
			{[]pgproto3.FrontendMessage{query("SET statement_timeout = 0")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query("SELECT count(*) FROM pg_prepared_statements WHERE name = 'to1'")},
				[]string{"RowDescription", "DataRow 1", "CommandComplete", "Z I"}},
		}},
		{"a pinned session's statements keep their names", []step{
			{[]pgproto3.FrontendMessage{query("SET work_mem = '8MB'")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("mine", "SELECT 3"), sync}, []string{"ParseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query("SELECT count(*) FROM pg_prepared_statements WHERE name = 'mine'")},
				[]string{"RowDescription", "DataRow 1", "CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query("EXECUTE mine")}, []string{"RowDescription", "DataRow 3", "CommandComplete", "Z I"}},
		}},
		{"SQL DEALLOCATE of a protocol-level statement", []step{
			{[]pgproto3.FrontendMessage{parse("ps", "SELECT 1"), sync}, []string{"ParseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query("DEALLOCATE ps")}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{closeS("ps"), sync}, []string{"CloseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("ps", "SELECT 2"), bind("ps"), exec, sync},
				[]string{"ParseComplete", "BindComplete", "DataRow 2", "CommandComplete", "Z I"}},
			after,
		}},
		{"SQL DEALLOCATE PREPARE, then Parse of the name with new text", []step{
			{[]pgproto3.FrontendMessage{parse("ps2", "SELECT 1"), sync}, []string{"ParseComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query(`deallocate prepare "ps2";`)}, []string{"CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{parse("ps2", "SELECT 2"), bind("ps2"), exec, sync},
				[]string{"ParseComplete", "BindComplete", "DataRow 2", "CommandComplete", "Z I"}},
			{[]pgproto3.FrontendMessage{query("DEALLOCATE nosuch")}, []string{"Error 26000", "Z I"}},
			after,
		}},
		{"error inside a transaction block", []step{
			{[]pgproto3.FrontendMessage{query("BEGIN")}, []string{"CommandComplete", "Z T"}},
			{[]pgproto3.FrontendMessage{parse("t1", "SELECT 1/(random()*0)::int"), bind("t1"), exec, flush}, []string{"ParseComplete", "BindComplete", "Error 22012"}},
			{[]pgproto3.FrontendMessage{bind("t1"), exec, sync}, []string{"Z E"}},
			{[]pgproto3.FrontendMessage{query("ROLLBACK")}, []string{"CommandComplete", "Z I"}},
			after,
		}},
	}
	direct := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", srv.port, appUser, appPW)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, target := range []struct{ name, dsn string }{{"direct", direct}, {"proxy", h.dsn(appUser, appPW, "")}} {
				got := runScript(ctx, t, target.name, target.dsn, c.steps)
				for i, st := range c.steps {
					if !slices.Equal(got[i], st.want) {
						t.Errorf("%s, step %d: got %q, want %q", target.name, i, got[i], st.want)
					}
				}
			}
		})
	}
}

// TestLargePipeline sends a pgx batch far larger than the socket buffers
// with large results: pgx writes it while reading in the background, and the
// proxy must relay responses before the client's Sync or everything stalls.
func TestLargePipeline(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 120*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	arg := strings.Repeat("x", 1000)
	const n = 30000 // ≈ 32 MB each way
	b := &pgx.Batch{}
	for i := range n {
		b.Queue("SELECT $1::text || $2::int", arg, i)
	}
	br := c.SendBatch(ctx, b)
	for i := range n {
		var s string
		if err := br.QueryRow().Scan(&s); err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		if want := arg + fmt.Sprint(i); s != want {
			t.Fatalf("query %d: got %d bytes", i, len(s))
		}
	}
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&v); err != nil || v != 1 {
		t.Fatal(v, err)
	}
}

// TestPreparedStatementCap runs more distinct named statements than a
// server connection may keep: the least recently used are closed on the
// server and re-prepared when needed, and every result stays right.
func TestPreparedStatementCap(t *testing.T) {
	srv := requirePG(t)
	const capacity = 8
	h := newHarnessLimits(t, srv, Limits{PreparedPerConnection: capacity, RegistryStatements: 20}, func(s *proxy.ProxySpec) {
		s.Pool.MaxConnectionsPercent = 1 // one server connection
	})
	ctx := ctxT(t, 60*time.Second)
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	for round := range 3 {
		for i := range 50 {
			var v int
			if err := c.QueryRow(ctx, fmt.Sprintf("SELECT $1::int + %d", i), round).Scan(&v); err != nil || v != round+i {
				t.Fatalf("round %d statement %d: %d %v", round, i, v, err)
			}
		}
		var onServer int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol).Scan(&onServer); err != nil {
			t.Fatal(err)
		}
		if onServer > capacity {
			t.Fatalf("round %d: %d statements prepared on the server connection, cap %d", round, onServer, capacity)
		}
	}
	regs := h.registry()
	regs.mu.Lock()
	n := len(regs.m)
	regs.mu.Unlock()
	if n > 20 {
		t.Fatalf("registry holds %d statements, limit 20", n)
	}
}

// TestBadMessagesAfterLogin: a logged-in client that breaks the framing or
// sends a message the proxy cannot parse gets a closed connection, with
// FATAL 08P01 where PostgreSQL sends one (an unknown message type) or a
// message the proxy must read is malformed, nothing for an impossible
// length (PostgreSQL only logs it); the next client is served.
func TestBadMessagesAfterLogin(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 30*time.Second)
	cases := []struct {
		name  string
		bytes []byte
		fatal string // expected FATAL code, "" for none
	}{
		{"unknown message type", []byte{'z', 0, 0, 0, 4}, "08P01"},
		{"length below four", []byte{'Q', 0, 0, 0, 3}, ""},
		{"length over the limit", []byte{'Q', 0x7f, 0xff, 0xff, 0xff}, ""},
		{"query without its terminator", []byte{'Q', 0, 0, 0, 6, 'x', 'y'}, "08P01"},
		{"describe of a bad kind", []byte{'D', 0, 0, 0, 6, 'X', 0}, "08P01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fe, conn := scriptConn(ctx, t, h.dsn(appUser, appPW, ""))
			conn.Write(c.bytes)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got []string
			for {
				m, err := fe.Receive()
				if err != nil {
					if strings.Contains(err.Error(), "timeout") {
						t.Fatalf("connection left open after %q", got)
					}
					break
				}
				got = append(got, describe(m))
			}
			var want []string
			if c.fatal != "" {
				want = []string{"Error " + c.fatal}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
}

// TestClientGoneWhileSkipping: a client that leaves after an extended-
// protocol error, before its Sync, inside a transaction: the proxy must
// send Sync before ROLLBACK (the server ignores anything else then), so
// the server connection comes back clean and is reused.
func TestClientGoneWhileSkipping(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, func(s *proxy.ProxySpec) { s.Pool.MaxConnectionsPercent = 1 }) // one connection
	ctx := ctxT(t, 30*time.Second)
	fe, conn := scriptConn(ctx, t, h.dsn(appUser, appPW, ""))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	fe.Send(&pgproto3.Query{String: "BEGIN; SELECT pg_backend_pid()"})
	fe.Send(&pgproto3.Parse{Query: "SELEC 1"})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var pid string
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := m.(*pgproto3.DataRow); ok {
			pid = string(d.Values[0])
		}
		if _, ok := m.(*pgproto3.ErrorResponse); ok {
			break
		}
	}
	conn.Close()
	c := h.mustConnect(ctx, "")
	defer c.Close(ctx)
	start := time.Now()
	var again string
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()::text").Scan(&again); err != nil {
		t.Fatal(err)
	}
	if again != pid {
		t.Fatalf("server connection %s replaced by %s after %v: it was not returned clean", pid, again, time.Since(start))
	}
}

// TestCopyFromFailsMidStream: when the server fails a COPY FROM STDIN
// while the client is still sending data, its ErrorResponse reaches the
// client then, so the client stops streaming (directly and through the
// proxy alike), and the session goes on after CopyDone.
func TestCopyFromFailsMidStream(t *testing.T) {
	srv := requirePG(t)
	h := newHarness(t, srv, nil)
	ctx := ctxT(t, 60*time.Second)
	direct := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable", srv.port, appUser, appPW)
	copyData := func(s string) []byte {
		b, _ := (&pgproto3.CopyData{Data: []byte(s)}).Encode(nil)
		return b
	}
	for _, target := range []struct{ name, dsn string }{{"direct", direct}, {"proxy", h.dsn(appUser, appPW, "")}} {
		t.Run(target.name, func(t *testing.T) {
			fe, conn := scriptConn(ctx, t, target.dsn)
			fe.Send(&pgproto3.Query{String: "CREATE TEMP TABLE copy_mid (x int)"})
			fe.Send(&pgproto3.Query{String: "COPY copy_mid FROM STDIN"})
			fe.Flush()
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				m, err := fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				if _, ok := m.(*pgproto3.CopyInResponse); ok {
					break
				}
			}
			conn.SetReadDeadline(time.Time{})
			got := make(chan string, 8)
			go func() {
				defer close(got)
				for {
					m, err := fe.Receive()
					if err != nil {
						return
					}
					got <- describe(m)
				}
			}()
			conn.Write(copyData("1\noops\n"))
			deadline := time.After(5 * time.Second)
			var first string
		stream:
			for {
				select {
				case first = <-got:
					break stream
				case <-deadline:
					t.Fatal("still streaming after 5s: the server's error did not arrive")
				case <-time.After(10 * time.Millisecond):
					if _, err := conn.Write(copyData("2\n")); err != nil {
						t.Fatal(err)
					}
				}
			}
			if first != "Error 22P02" {
				t.Fatalf("got %q while streaming, want Error 22P02", first)
			}
			b, _ := (&pgproto3.CopyDone{}).Encode(nil)
			b, _ = (&pgproto3.Query{String: "SELECT count(*) FROM copy_mid"}).Encode(b)
			conn.Write(b)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			var rest []string
			for m := range got {
				rest = append(rest, m)
				if len(rest) == 5 {
					break
				}
			}
			if want := []string{"Z I", "RowDescription", "DataRow 0", "CommandComplete", "Z I"}; !slices.Equal(rest, want) {
				t.Fatalf("after CopyDone: got %q, want %q", rest, want)
			}
		})
	}
}
