package mysql

import (
	"bytes"
	"strconv"
)

// Class is what the proxy needs to know about a COM_QUERY text: whether it
// pins the session, changes tracked session state, or asks for something
// the proxy answers itself. It comes from a lexical scan (comments, quoted
// strings and identifiers skipped; MySQL's executable comments /*! … */
// read as code), never from executing anything, so it can be wrong for
// statements built inside stored programs, as RDS documents.
type Class struct {
	// Pin is the reason a statement pins the session (RDS's list:
	// prepared statements, temporary tables, table locks, named locks,
	// SQL_CALC_FOUND_ROWS), or "".
	Pin string
	// VarPin is the reason a statement pins because it sets a user
	// variable or an untracked system variable; SessionPinningFilters
	// EXCLUDE_VARIABLE_SETS turns these off.
	VarPin string
	// Tracked: a statement may change tracked session state (a tracked
	// variable, the character set, the default schema); the proxy reads
	// the values back after it succeeds.
	Tracked bool
	// OneShot: SET TRANSACTION without a scope changes only the next
	// transaction; the connection is kept until that next statement has
	// run.
	OneShot bool
	// LastInsertID: the text calls LAST_INSERT_ID(); PrevResult: it calls
	// ROW_COUNT() or FOUND_ROWS(). Both depend on the session's previous
	// statement.
	LastInsertID, PrevResult bool
	// Kill is set when the whole text is one KILL statement.
	Kill *KillStmt
	// Routine: the text defines a stored program (its body's statements
	// are not the session's).
	Routine bool
}

// KillStmt is a KILL statement.
type KillStmt struct {
	Query bool   // KILL QUERY (else the connection)
	ID    uint64 // the connection ID
	// Unsupported is set for forms the proxy does not map (KILL USER,
	// KILL QUERY ID, an expression).
	Unsupported bool
}

// Pin reasons, in the style of RDS Proxy's log lines.
const (
	reasonTextSize  = "The connection ran a SQL query which exceeded the 16384 byte limit."
	reasonSet       = "SQL changed session settings that the proxy doesn't track. Consider moving session configuration to the proxy's initialization query."
	reasonUserVar   = "A user variable was set."
	reasonPrepare   = "A prepared statement was created (COM_STMT_PREPARE or SQL PREPARE)."
	reasonTemp      = "A temporary table was created."
	reasonLock      = "Tables were locked (LOCK TABLES or FLUSH TABLES WITH READ LOCK)."
	reasonNamedLock = "A named lock was taken with GET_LOCK."
	reasonFoundRows = "SQL_CALC_FOUND_ROWS was used."
	reasonHandler   = "A HANDLER was opened."
	reasonRole      = "The session changed its role (SET ROLE)."
)

// trackedNames are the variables RDS Proxy tracks instead of pinning
// (with their aliases), lower case.
var trackedNames = map[string]bool{
	"autocommit": true, "auto_increment_increment": true,
	"character_set_client": true, "character_set_connection": true, "character_set_database": true,
	"character_set_filesystem": true, "character_set_results": true, "character_set_server": true,
	"collation_connection": true, "collation_database": true, "collation_server": true,
	"interactive_timeout": true, "net_write_timeout": true, "query_cache_type": true,
	"session_track_schema": true, "sql_mode": true, "time_zone": true,
	"transaction_isolation": true, "tx_isolation": true, "transaction_read_only": true, "tx_read_only": true,
	"wait_timeout": true,
}

// Classify classifies a COM_QUERY text (every statement of a
// multi-statement text).
func Classify(q []byte) Class {
	var c Class
	lx := lexer{s: q}
	firstStmt := true
	for {
		t := lx.next()
		if t.kind == tEOF {
			break
		}
		if t.kind == tSemi {
			continue
		}
		single := firstStmt
		firstStmt = false
		c.statement(&lx, t, single)
		if c.Routine {
			break
		}
	}
	return c
}

// statement classifies one statement whose first token is t, consuming it
// up to its ';'.
func (c *Class) statement(lx *lexer, t token, single bool) {
	kw := lx.keyword(t)
	switch kw {
	case "set":
		c.set(lx)
		return
	case "use":
		c.Tracked = true
	case "drop":
		if w := lx.keyword(lx.next()); w == "database" || w == "schema" {
			c.Tracked = true
		} else if w == "prepare" {
			c.Pin = first(c.Pin, reasonPrepare)
		}
	case "prepare", "deallocate":
		c.Pin = first(c.Pin, reasonPrepare)
	case "execute":
		if lx.keyword(lx.peek()) != "immediate" {
			c.Pin = first(c.Pin, reasonPrepare)
		}
	case "lock":
		if w := lx.keyword(lx.peek()); w == "table" || w == "tables" {
			c.Pin = first(c.Pin, reasonLock)
		}
	case "handler":
		c.Pin = first(c.Pin, reasonHandler)
	case "create", "alter":
		if lx.routine() {
			c.Routine = true
			return
		}
	case "kill":
		k := lx.kill()
		if single && lx.peek().kind == tEOF {
			c.Kill = k
		}
		return
	}
	c.scan(lx, kw)
}

// scan looks at the rest of a statement for what pins or needs the
// session's previous results wherever it appears.
func (c *Class) scan(lx *lexer, kw string) {
	var prev token
	prevWord := ""
	for {
		t := lx.next()
		switch t.kind {
		case tEOF, tSemi:
			return
		case tWord:
			w := lx.keyword(t)
			switch w {
			case "temporary":
				if kw == "create" {
					c.Pin = first(c.Pin, reasonTemp)
				}
			case "lock":
				if kw == "flush" && prevWord == "read" {
					c.Pin = first(c.Pin, reasonLock)
				}
			case "sql_calc_found_rows":
				c.Pin = first(c.Pin, reasonFoundRows)
			case "get_lock", "last_insert_id", "row_count", "found_rows":
				if lx.peek().kind == tPunct && lx.s[lx.peek().start] == '(' {
					switch w {
					case "get_lock":
						c.Pin = first(c.Pin, reasonNamedLock)
					case "last_insert_id":
						c.LastInsertID = true
					default:
						c.PrevResult = true
					}
				}
			}
			prevWord = w
		case tUserVar:
			// @x := …, … INTO @x
			if n := lx.peek(); n.kind == tAssign || prev.kind == tWord && lx.keyword(prev) == "into" {
				c.VarPin = first(c.VarPin, reasonUserVar)
			}
			prevWord = ""
		default:
			prevWord = ""
		}
		prev = t
	}
}

// set classifies a SET statement's assignments.
func (c *Class) set(lx *lexer) {
	scope := "" // the statement's scope keyword, if any
	for {
		t := lx.next()
		if t.kind == tEOF || t.kind == tSemi {
			return
		}
		w := lx.word(t)
		switch w {
		case "global", "session", "local", "persist", "persist_only":
			if n := lx.peek(); n.kind == tWord || n.kind == tQuoted {
				scope = w
				if lx.word(n) == "transaction" {
					lx.next()
					if scope == "session" || scope == "local" {
						c.Tracked = true
					}
					lx.skipStatement()
					return
				}
				c.assignment(lx, lx.next(), scope)
			} else {
				// A variable named like a scope keyword.
				c.assignment(lx, t, scope)
			}
		case "transaction":
			c.OneShot = true
			lx.skipStatement()
			return
		case "names", "character", "charset":
			c.Tracked = true
			lx.skipExpr()
		case "password", "default":
			lx.skipStatement()
			return
		case "role":
			c.Pin = first(c.Pin, reasonRole)
			lx.skipStatement()
			return
		case "statement":
			// SET STATEMENT var=value … FOR statement: for one statement.
			lx.skipStatement()
			return
		default:
			c.assignment(lx, t, scope)
		}
		if !lx.comma() {
			lx.skipStatement()
			return
		}
	}
}

// assignment classifies one "target = value" of a SET whose target token
// is t (a user variable, @@[scope.]name, or a name) and skips the value.
func (c *Class) assignment(lx *lexer, t token, scope string) {
	switch t.kind {
	case tUserVar:
		c.VarPin = first(c.VarPin, reasonUserVar)
	case tSysVar:
		name := lx.lower(t.start+2, t.end)
		sc := scope
		if i := bytes.IndexByte([]byte(name), '.'); i >= 0 {
			sc, name = name[:i], name[i+1:]
		}
		c.sysVar(sc, name)
	case tWord, tQuoted:
		c.sysVar(scope, lx.lower(t.start, t.end))
	}
	lx.skipExpr()
}

func (c *Class) sysVar(scope, name string) {
	if scope == "global" || scope == "persist" || scope == "persist_only" {
		return // server-wide: not the session's state
	}
	if trackedNames[name] {
		c.Tracked = true
		return
	}
	c.VarPin = first(c.VarPin, reasonSet)
}

func first(cur, r string) string {
	if cur != "" {
		return cur
	}
	return r
}

// Token kinds.
const (
	tEOF     = iota
	tWord    // keyword, identifier or number
	tQuoted  // a string or `identifier`
	tUserVar // @name
	tSysVar  // @@[scope.]name
	tPunct   // one byte
	tAssign  // :=
	tSemi    // ;
)

type token struct {
	kind       uint8
	start, end int
}

// lexer splits SQL text into tokens. It never fails: bytes it does not
// understand are punctuation.
// A lexer is a value: a copy looks ahead without moving the original.
type lexer struct {
	s      []byte
	p      int
	peeked bool
	pk     token
}

func (lx *lexer) peek() token {
	if !lx.peeked {
		lx.pk = lx.scan()
		lx.peeked = true
	}
	return lx.pk
}

func (lx *lexer) next() token {
	if lx.peeked {
		lx.peeked = false
		return lx.pk
	}
	return lx.scan()
}

func isWordByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '$' || b >= 0x80
}

func (lx *lexer) scan() token {
	s := lx.s
	for lx.p < len(s) {
		b := s[lx.p]
		switch {
		case b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v':
			lx.p++
		case b == '#':
			lx.toEOL()
		case b == '-' && lx.p+1 < len(s) && s[lx.p+1] == '-' && (lx.p+2 == len(s) || s[lx.p+2] <= ' '):
			lx.toEOL()
		case b == '/' && lx.p+1 < len(s) && s[lx.p+1] == '*':
			lx.comment()
		case b == '*' && lx.p+1 < len(s) && s[lx.p+1] == '/':
			lx.p += 2 // the end of an executable comment
		default:
			return lx.tokenAt(b)
		}
	}
	return token{kind: tEOF, start: len(s), end: len(s)}
}

func (lx *lexer) tokenAt(b byte) token {
	s := lx.s
	start := lx.p
	switch {
	case isWordByte(b):
		for lx.p < len(s) && isWordByte(s[lx.p]) {
			lx.p++
		}
		return token{tWord, start, lx.p}
	case b == '\'' || b == '"' || b == '`':
		lx.quoted(b)
		return token{tQuoted, start, lx.p}
	case b == '@':
		lx.p++
		kind := uint8(tUserVar)
		if lx.p < len(s) && s[lx.p] == '@' {
			lx.p++
			kind = tSysVar
		}
		if lx.p < len(s) && (s[lx.p] == '\'' || s[lx.p] == '"' || s[lx.p] == '`') {
			lx.quoted(s[lx.p])
		} else {
			for lx.p < len(s) && (isWordByte(s[lx.p]) || s[lx.p] == '.') {
				lx.p++
			}
		}
		return token{kind, start, lx.p}
	case b == ';':
		lx.p++
		return token{tSemi, start, lx.p}
	case b == ':' && lx.p+1 < len(s) && s[lx.p+1] == '=':
		lx.p += 2
		return token{tAssign, start, lx.p}
	}
	lx.p++
	return token{tPunct, start, lx.p}
}

func (lx *lexer) toEOL() {
	for lx.p < len(lx.s) && lx.s[lx.p] != '\n' {
		lx.p++
	}
}

// comment skips a /* … */ comment; an executable one (/*! or /*M!, with
// an optional version) is entered instead, its text read as code.
func (lx *lexer) comment() {
	s := lx.s
	p := lx.p + 2
	if p < len(s) && s[p] == 'M' && p+1 < len(s) && s[p+1] == '!' {
		p++
	}
	if p < len(s) && s[p] == '!' {
		p++
		for p < len(s) && s[p] >= '0' && s[p] <= '9' {
			p++
		}
		lx.p = p
		return
	}
	if i := bytes.Index(s[p:], []byte("*/")); i >= 0 {
		lx.p = p + i + 2
	} else {
		lx.p = len(s)
	}
}

// quoted skips a quoted string or identifier opened by q at lx.p.
func (lx *lexer) quoted(q byte) {
	s := lx.s
	lx.p++
	for lx.p < len(s) {
		b := s[lx.p]
		switch {
		case b == '\\' && q != '`':
			lx.p += 2
		case b == q:
			if lx.p+1 < len(s) && s[lx.p+1] == q {
				lx.p += 2
				continue
			}
			lx.p++
			return
		default:
			lx.p++
		}
	}
	lx.p = len(s)
}

// keyword returns t lower-cased if it is one of the words the classifier
// looks for, else "", without allocating.
func (lx *lexer) keyword(t token) string {
	if t.kind != tWord || t.end-t.start > 24 || t.end-t.start < 3 {
		return ""
	}
	var buf [24]byte
	b := buf[:t.end-t.start]
	for i, c := range lx.s[t.start:t.end] {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	// Each case returns its constant, so string(b) is compared in place
	// and never allocated.
	switch string(b) {
	case "set":
		return "set"
	case "use":
		return "use"
	case "drop":
		return "drop"
	case "database":
		return "database"
	case "schema":
		return "schema"
	case "prepare":
		return "prepare"
	case "deallocate":
		return "deallocate"
	case "execute":
		return "execute"
	case "immediate":
		return "immediate"
	case "lock":
		return "lock"
	case "table":
		return "table"
	case "tables":
		return "tables"
	case "handler":
		return "handler"
	case "create":
		return "create"
	case "alter":
		return "alter"
	case "kill":
		return "kill"
	case "temporary":
		return "temporary"
	case "read":
		return "read"
	case "sql_calc_found_rows":
		return "sql_calc_found_rows"
	case "get_lock":
		return "get_lock"
	case "last_insert_id":
		return "last_insert_id"
	case "row_count":
		return "row_count"
	case "found_rows":
		return "found_rows"
	case "into":
		return "into"
	case "flush":
		return "flush"
	}
	return ""
}

// word returns t lower-cased if it is a word (a keyword or name), else "".
func (lx *lexer) word(t token) string {
	if t.kind != tWord {
		return ""
	}
	return lx.lower(t.start, t.end)
}

// lower returns s[i:j] lower-cased, unquoted if quoted.
func (lx *lexer) lower(i, j int) string {
	b := lx.s[i:j]
	if len(b) >= 2 && (b[0] == '`' || b[0] == '\'' || b[0] == '"') && b[len(b)-1] == b[0] {
		b = b[1 : len(b)-1]
	}
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return string(bytes.ToLower(b))
		}
	}
	return string(b)
}

// skipExpr skips to the next top-level ',' or the end of the statement,
// leaving either unconsumed.
func (lx *lexer) skipExpr() {
	depth := 0
	for {
		t := lx.peek()
		switch t.kind {
		case tEOF, tSemi:
			return
		case tPunct:
			switch lx.s[t.start] {
			case '(':
				depth++
			case ')':
				depth--
			case ',':
				if depth <= 0 {
					return
				}
			}
		}
		lx.next()
	}
}

// comma consumes a ',' if it comes next.
func (lx *lexer) comma() bool {
	t := lx.peek()
	if t.kind == tPunct && lx.s[t.start] == ',' {
		lx.next()
		return true
	}
	return false
}

// skipStatement skips to the end of the statement (its ';' consumed).
func (lx *lexer) skipStatement() {
	for {
		t := lx.next()
		if t.kind == tEOF || t.kind == tSemi {
			return
		}
	}
}

// routine reports whether a CREATE or ALTER defines a stored program
// (procedure, function, trigger, event, package), looking past OR REPLACE,
// DEFINER = … and similar words before the object kind. It does not move
// lx.
func (lx lexer) routine() bool {
	for range 16 {
		t := lx.peek()
		if t.kind == tEOF || t.kind == tSemi {
			return false
		}
		switch lx.word(t) {
		case "procedure", "function", "trigger", "event", "package":
			return true
		case "table", "database", "schema", "index", "view", "user", "role", "sequence", "server", "tablespace":
			return false
		}
		lx.next()
	}
	return false
}

// kill parses the rest of a KILL statement.
func (lx *lexer) kill() *KillStmt {
	k := &KillStmt{}
	t := lx.next()
	switch lx.word(t) {
	case "hard", "soft":
		t = lx.next()
	}
	switch lx.word(t) {
	case "connection":
		t = lx.next()
	case "query":
		k.Query = true
		t = lx.next()
		if lx.word(t) == "id" {
			k.Unsupported = true
		}
	case "user":
		k.Unsupported = true
	}
	if t.kind != tWord {
		k.Unsupported = true
	} else if id, err := strconv.ParseUint(string(lx.s[t.start:t.end]), 10, 64); err != nil {
		k.Unsupported = true
	} else {
		k.ID = id
	}
	if n := lx.peek(); n.kind != tEOF && n.kind != tSemi {
		k.Unsupported = true
	}
	lx.skipStatement()
	return k
}
