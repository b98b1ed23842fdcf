package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// class is a kind of client of the proxy.
type class int

const (
	idle     class = iota // one long session, a write now and then
	inTx                  // BEGIN, INSERT, a pause, INSERT, COMMIT
	pinned                // a session-level SET, then writes that read it back
	arriving              // connect, write, disconnect
	nClasses
)

var classNames = [nClasses]string{"idle", "in transaction", "pinned", "newly arriving"}

// share is each class's part of the clients, in percent.
var share = [nClasses]int{40, 20, 20, 20}

// okRec is an acknowledged write: when, and which server (its port)
// took it.
type okRec struct {
	at   time.Time
	port int
}

// errRec is a failed operation.
type errRec struct {
	at   time.Time
	kind string
}

// recorder collects what the clients of one class (or the probe) saw.
type recorder struct {
	mu      sync.Mutex
	oks     []okRec
	errs    []errRec
	acked   []int64
	samples []string // first few leaks and silent state losses, for the report

	leaks atomic.Int64 // a session read a setting another session made
	lost  atomic.Int64 // a pinned session found its setting gone without an error
}

func (r *recorder) ok(port int, ids ...int64) {
	r.mu.Lock()
	r.oks = append(r.oks, okRec{time.Now(), port})
	r.acked = append(r.acked, ids...)
	r.mu.Unlock()
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, errRec{time.Now(), errKind(err)})
	r.mu.Unlock()
}

// check compares the setting a session read back with what it expects.
func (r *recorder) check(client int, want, got string) {
	switch {
	case got == want:
		return
	case got == "":
		r.lost.Add(1)
	default:
		r.leaks.Add(1)
	}
	r.mu.Lock()
	if len(r.samples) < 5 {
		r.samples = append(r.samples, fmt.Sprintf("client %d expected %q, read %q", client, want, got))
	}
	r.mu.Unlock()
}

var digits = regexp.MustCompile(`[0-9]+`)

// errKind names an error for counting: the SQLSTATE and message of a
// server error, else the error's text with numbers (addresses, ports)
// elided.
func errKind(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code + " " + shorten(digits.ReplaceAllString(pe.Message, "#"))
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return fmt.Sprintf("ERROR %d (%s) %s", me.Number, me.SQLState[:], shorten(digits.ReplaceAllString(me.Message, "#")))
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return shorten(digits.ReplaceAllString(err.Error(), "#"))
}

func shorten(s string) string {
	if len(s) > 90 {
		return s[:90] + "…"
	}
	return s
}

// writeSQL inserts a row and reads back the server's port and the
// session's soak.owner setting (PostgreSQL) or @soak_owner user variable
// (MySQL: MariaDB's INSERT … RETURNING), in one statement so that both
// come from the server that took the write.
const (
	writeSQL      = "INSERT INTO soak (id, client, class) VALUES ($1, $2, $3) RETURNING inet_server_port(), coalesce(current_setting('soak.owner', true), '')"
	writeSQLMySQL = "INSERT INTO soak (id, client, class) VALUES (?, ?, ?) RETURNING @@port, COALESCE(@soak_owner, '')"
)

// session is one client session of the proxy: pgx for PostgreSQL, one
// go-sql-driver/mysql connection for MySQL.
type session interface {
	// write inserts one row (inside the open transaction, if any).
	write(ctx context.Context, id int64, client int, cl class) (port int, owner string, err error)
	// setOwner makes the session-level setting that pins the session.
	setOwner(ctx context.Context, owner string) error
	begin(ctx context.Context) error
	commit(ctx context.Context) error
	rollback()
	// closed: the session is over (the proxy or the network ended it).
	closed() bool
	close()
}

// pgSession is a PostgreSQL session.
type pgSession struct {
	c  *pgx.Conn
	tx pgx.Tx
}

func (p *pgSession) write(ctx context.Context, id int64, client int, cl class) (port int, owner string, err error) {
	q := interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}(p.c)
	if p.tx != nil {
		q = p.tx
	}
	err = q.QueryRow(ctx, writeSQL, id, client, int(cl)).Scan(&port, &owner)
	return port, owner, err
}

func (p *pgSession) setOwner(ctx context.Context, owner string) error {
	_, err := p.c.Exec(ctx, "SET soak.owner = '"+owner+"'")
	return err
}

func (p *pgSession) begin(ctx context.Context) (err error) {
	p.tx, err = p.c.Begin(ctx)
	return err
}

func (p *pgSession) commit(ctx context.Context) error {
	err := p.tx.Commit(ctx)
	p.tx = nil
	return err
}

func (p *pgSession) rollback() {
	if p.tx != nil {
		_ = p.tx.Rollback(context.Background())
		p.tx = nil
	}
}

func (p *pgSession) closed() bool { return p.c.IsClosed() }
func (p *pgSession) close()       { p.c.Close(context.Background()) }

// mySession is a MySQL session: one connection of its own pool.
type mySession struct {
	db   *sql.DB
	c    *sql.Conn
	over bool // an error said the connection is gone
}

// note records whether err ended the session: anything but a server's
// error, or the proxy's failover error (ERROR 1053), which it sends before
// closing.
func (m *mySession) note(err error) error {
	var me *mysql.MySQLError
	if err != nil && (!errors.As(err, &me) || me.Number == 1053) {
		m.over = true
	}
	return err
}

func (m *mySession) write(ctx context.Context, id int64, client int, cl class) (port int, owner string, err error) {
	err = m.c.QueryRowContext(ctx, writeSQLMySQL, id, client, int(cl)).Scan(&port, &owner)
	return port, owner, m.note(err)
}

func (m *mySession) exec(ctx context.Context, q string) error {
	_, err := m.c.ExecContext(ctx, q)
	return m.note(err)
}

func (m *mySession) setOwner(ctx context.Context, owner string) error {
	return m.exec(ctx, "SET @soak_owner = '"+owner+"'")
}

func (m *mySession) begin(ctx context.Context) error  { return m.exec(ctx, "BEGIN") }
func (m *mySession) commit(ctx context.Context) error { return m.exec(ctx, "COMMIT") }

func (m *mySession) rollback() {
	if !m.over {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.exec(ctx, "ROLLBACK")
	}
}

func (m *mySession) closed() bool { return m.over }

func (m *mySession) close() {
	m.c.Close()
	m.db.Close()
}

// opTimeout bounds one operation: above the proxy's default
// ConnectionBorrowTimeout (120 s), so the proxy's own answer comes first.
const opTimeout = 150 * time.Second

// clients runs the soak's clients and probe until ctx ends.
type clients struct {
	mysql bool // the proxy is a MYSQL one; dsn is go-sql-driver's
	dsn   string
	think time.Duration
	next  atomic.Int64
	rec   [nClasses]*recorder
	probe *recorder
	wg    sync.WaitGroup
}

func newClients(isMySQL bool, dsn string, think time.Duration) *clients {
	if isMySQL {
		// The driver's own log would repeat every error the recorders
		// count.
		_ = mysql.SetLogger(&mysql.NopLogger{})
	}
	c := &clients{mysql: isMySQL, dsn: dsn, think: think, probe: &recorder{}}
	for i := range c.rec {
		c.rec[i] = &recorder{}
	}
	return c
}

// start launches n clients, spread over the classes and over ramp, and
// the probe.
func (cs *clients) start(ctx context.Context, n int, ramp time.Duration) {
	cs.wg.Go(func() { cs.runProbe(ctx) })
	k := 0
	for cl := range nClasses {
		m := n * share[cl] / 100
		if cl == nClasses-1 {
			m = n - k
		}
		for range m {
			id, delay := k, time.Duration(rand.Int64N(int64(ramp)+1))
			cs.wg.Go(func() {
				if sleep(ctx, delay) == nil {
					cs.run(ctx, cl, id)
				}
			})
			k++
		}
	}
}

func (cs *clients) connect(ctx context.Context) (session, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if cs.mysql {
		db, err := sql.Open("mysql", cs.dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		c, err := db.Conn(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		return &mySession{db: db, c: c}, nil
	}
	c, err := pgx.Connect(ctx, cs.dsn)
	if err != nil {
		return nil, err
	}
	return &pgSession{c: c}, nil
}

// pause is a think time: uniform in [0.5, 1.5) × think.
func (cs *clients) pause(ctx context.Context) error {
	return sleep(ctx, cs.think/2+time.Duration(rand.Int64N(int64(cs.think))))
}

// write inserts one row on c.
func (cs *clients) write(ctx context.Context, c session, client int, cl class) (id int64, port int, owner string, err error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	id = cs.next.Add(1)
	port, owner, err = c.write(ctx, id, client, cl)
	return id, port, owner, err
}

// run is one client of class cl until ctx ends.
func (cs *clients) run(ctx context.Context, cl class, client int) {
	r := cs.rec[cl]
	want := ""
	if cl == pinned {
		want = fmt.Sprintf("c%d", client)
	}
	var c session
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	drop := func() {
		if c != nil {
			c.close()
			c = nil
		}
	}
	for cs.pause(ctx) == nil {
		if c == nil {
			var err error
			if c, err = cs.connect(ctx); err != nil {
				if ctx.Err() == nil {
					r.fail(err)
				}
				c = nil
				continue
			}
			if cl == pinned {
				sctx, cancel := context.WithTimeout(ctx, opTimeout)
				err = c.setOwner(sctx, want)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						r.fail(err)
					}
					drop()
					continue
				}
			}
		}
		var err error
		switch cl {
		case inTx:
			err = cs.transaction(ctx, c, r, client)
		default:
			var id int64
			var port int
			var owner string
			if id, port, owner, err = cs.write(ctx, c, client, cl); err == nil {
				r.ok(port, id)
				r.check(client, want, owner)
			}
		}
		if err != nil && ctx.Err() == nil {
			r.fail(err)
		}
		if cl == arriving || c.closed() {
			drop()
		}
	}
}

// transaction writes two rows in one transaction, a moment apart.
func (cs *clients) transaction(ctx context.Context, c session, r *recorder, client int) error {
	tctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if err := c.begin(tctx); err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			c.rollback()
		}
	}()
	id1, _, owner1, err := cs.write(ctx, c, client, inTx)
	if err != nil {
		return err
	}
	if err := sleep(ctx, 20*time.Millisecond+time.Duration(rand.Int64N(int64(80*time.Millisecond)))); err != nil {
		return err
	}
	id2, port, owner2, err := cs.write(ctx, c, client, inTx)
	if err != nil {
		return err
	}
	done = true
	if err := c.commit(tctx); err != nil {
		return err
	}
	r.ok(port, id1, id2)
	r.check(client, "", owner1)
	r.check(client, "", owner2)
	return nil
}

// runProbe writes continuously on one session (another when it ends),
// to time each failover to the first successful write.
func (cs *clients) runProbe(ctx context.Context) {
	var c session
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	for sleep(ctx, 5*time.Millisecond) == nil {
		if c == nil || c.closed() {
			if c != nil {
				c.close()
			}
			var err error
			if c, err = cs.connect(ctx); err != nil {
				if ctx.Err() == nil {
					cs.probe.fail(err)
				}
				c = nil
				continue
			}
		}
		id, port, _, err := cs.write(ctx, c, -1, idle)
		if err != nil {
			if ctx.Err() == nil {
				cs.probe.fail(err)
			}
			continue
		}
		cs.probe.ok(port, id)
	}
}

// firstOK is the time from t0 to the first write acknowledged after t0
// by a server other than the one on port not (0: any), or -1.
func (r *recorder) firstOK(t0 time.Time, not int) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.oks {
		if o.at.After(t0) && (not == 0 || o.port != not) {
			return o.at.Sub(t0)
		}
	}
	return -1
}

// errorsIn counts the failures in [from, to) by kind.
func (r *recorder) errorsIn(from, to time.Time) (int, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kinds := map[string]int{}
	n := 0
	for _, e := range r.errs {
		if !e.at.Before(from) && e.at.Before(to) {
			n++
			kinds[e.kind]++
		}
	}
	return n, kinds
}

// topKinds renders the most frequent kinds of a count map.
func topKinds(kinds map[string]int, n int) string {
	type kc struct {
		k string
		c int
	}
	var l []kc
	for k, c := range kinds {
		l = append(l, kc{k, c})
	}
	for i := range l {
		for j := i + 1; j < len(l); j++ {
			if l[j].c > l[i].c || l[j].c == l[i].c && l[j].k < l[i].k {
				l[i], l[j] = l[j], l[i]
			}
		}
	}
	var parts []string
	for i, x := range l {
		if i == n {
			parts = append(parts, fmt.Sprintf("%d other kinds", len(l)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%d× %s", x.c, x.k))
	}
	return strings.Join(parts, "; ")
}
