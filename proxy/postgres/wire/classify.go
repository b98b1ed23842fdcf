package wire

// Class is a bit set of the session-state effects the classifier found in
// SQL text. The proxy's pinning policy decides which classes pin.
type Class uint16

// The classes Classify reports.
const (
	ClassSet          Class = 1 << iota // SET (not LOCAL/TRANSACTION/CONSTRAINTS), RESET, set_config()
	ClassPrepare                        // SQL-level PREPARE, EXECUTE, DEALLOCATE
	ClassDiscard                        // DISCARD
	ClassListen                         // LISTEN
	ClassTemp                           // CREATE TEMP/TEMPORARY …, SELECT … INTO TEMP, pg_temp objects
	ClassHoldCursor                     // DECLARE … WITH HOLD
	ClassAdvisoryLock                   // session-level pg_advisory_lock / pg_try_advisory_lock (+ _shared)
	ClassLoad                           // LOAD
	// ClassDropsPrepared marks DEALLOCATE ALL and DISCARD ALL: every prepared
	// statement of the session is gone afterwards.
	ClassDropsPrepared
	// ClassDDL marks CREATE, ALTER, DROP and DO: the schema may change, and
	// prepared statements with it.
	ClassDDL
)

// Classify scans SQL text (one or more ';'-separated statements) with a
// small lexer that skips whitespace, comments (nested /* */ and --), string
// literals ('…', E'…', $tag$…$tag$) and quoted identifiers, and reports which
// session-state effects its statements have. It decides by the leading
// keywords of each statement and by calls of a few functions anywhere, never
// by substrings inside literals or comments. It does not allocate.
func Classify(sql []byte) Class {
	var c Class
	var st stmtState
	i, n := 0, len(sql)
	for i < n {
		ch := sql[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v':
			i++
		case ch == '-' && i+1 < n && sql[i+1] == '-':
			for i < n && sql[i] != '\n' {
				i++
			}
		case ch == '/' && i+1 < n && sql[i+1] == '*':
			depth := 1
			i += 2
			for i < n && depth > 0 {
				if sql[i] == '*' && i+1 < n && sql[i+1] == '/' {
					depth--
					i += 2
				} else if sql[i] == '/' && i+1 < n && sql[i+1] == '*' {
					depth++
					i += 2
				} else {
					i++
				}
			}
		case ch == '\'':
			i = skipString(sql, i+1, false)
			st.other()
		case ch == '"':
			i++
			for i < n {
				if sql[i] == '"' {
					if i+1 < n && sql[i+1] == '"' {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
			st.word(nil, &c)
		case ch == '$':
			j := i + 1
			if j < n && sql[j] >= '0' && sql[j] <= '9' { // parameter $n
				for j < n && sql[j] >= '0' && sql[j] <= '9' {
					j++
				}
				i = j
				st.other()
				continue
			}
			for j < n && isIdentChar(sql[j]) && sql[j] != '$' {
				j++
			}
			if j < n && sql[j] == '$' {
				tag := sql[i : j+1]
				i = skipDollar(sql, j+1, tag)
			} else {
				i = j
			}
			st.other()
		case isIdentStart(ch):
			j := i + 1
			for j < n && isIdentChar(sql[j]) {
				j++
			}
			w := sql[i:j]
			if j < n && sql[j] == '\'' && len(w) == 1 && (w[0] == 'e' || w[0] == 'E') {
				i = skipString(sql, j+1, true)
				st.other()
				continue
			}
			i = j
			st.word(w, &c)
		case ch == '(':
			st.paren(&c)
			i++
		case ch == ';':
			st.end(&c)
			st = stmtState{}
			i++
		default:
			i++
			st.other()
		}
	}
	st.end(&c)
	return c
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

// skipString returns the index after the string literal whose body starts
// at i; backslash escapes count when esc is set (E'…').
func skipString(s []byte, i int, esc bool) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			if esc {
				i += 2
				continue
			}
		case '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return i
}

// skipDollar returns the index after the closing tag of a dollar-quoted
// string whose body starts at i.
func skipDollar(s []byte, i int, tag []byte) int {
	for ; i+len(tag) <= len(s); i++ {
		if s[i] == '$' && string(s[i:i+len(tag)]) == string(tag) {
			return i + len(tag)
		}
	}
	return len(s)
}

// eqFold reports whether the identifier w equals the lower-case keyword kw,
// ignoring ASCII case.
func eqFold(w []byte, kw string) bool {
	if len(w) != len(kw) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != kw[i] {
			return false
		}
	}
	return true
}

// stmtState follows one statement's tokens.
type stmtState struct {
	nwords   int    // words seen
	first    []byte // first three words (nil for quoted identifiers)
	second   []byte
	third    []byte
	prev     []byte // previous token if it was a word, else nil
	prevWord bool
}

func (st *stmtState) other() { st.prev, st.prevWord = nil, false }

func (st *stmtState) word(w []byte, c *Class) {
	switch st.nwords {
	case 0:
		st.first = w
	case 1:
		st.second = w
	case 2:
		st.third = w
	}
	st.nwords++
	if w != nil {
		if st.prevWord && st.prev != nil {
			switch {
			case eqFold(st.prev, "into") && (eqFold(w, "temp") || eqFold(w, "temporary")):
				*c |= ClassTemp
			case eqFold(st.prev, "with") && eqFold(w, "hold") && eqFold(st.first, "declare"):
				*c |= ClassHoldCursor
			}
		}
		if eqFold(st.first, "create") && st.nwords <= 6 && (eqFold(w, "temp") || eqFold(w, "temporary") || eqFold(w, "pg_temp")) {
			*c |= ClassTemp
		}
	}
	st.prev, st.prevWord = w, true
}

// paren handles '(' : a function call if a word precedes it.
func (st *stmtState) paren(c *Class) {
	if st.prevWord && st.prev != nil {
		w := st.prev
		switch {
		case eqFold(w, "pg_advisory_lock"), eqFold(w, "pg_advisory_lock_shared"),
			eqFold(w, "pg_try_advisory_lock"), eqFold(w, "pg_try_advisory_lock_shared"):
			*c |= ClassAdvisoryLock
		case eqFold(w, "set_config"):
			*c |= ClassSet
		}
	}
	st.other()
}

// end classifies the statement by its leading keywords.
func (st *stmtState) end(c *Class) {
	f, s, t := st.first, st.second, st.third
	switch {
	case f == nil:
	case eqFold(f, "set"):
		if !(eqFold(s, "local") || eqFold(s, "transaction") || eqFold(s, "constraints")) {
			*c |= ClassSet
		}
	case eqFold(f, "reset"):
		*c |= ClassSet
	case eqFold(f, "prepare"):
		if !eqFold(s, "transaction") {
			*c |= ClassPrepare
		}
	case eqFold(f, "execute"):
		*c |= ClassPrepare
	case eqFold(f, "deallocate"):
		*c |= ClassPrepare
		if eqFold(s, "all") || eqFold(s, "prepare") && eqFold(t, "all") {
			*c |= ClassDropsPrepared
		}
	case eqFold(f, "discard"):
		*c |= ClassDiscard
		if eqFold(s, "all") {
			*c |= ClassDropsPrepared
		}
	case eqFold(f, "listen"):
		*c |= ClassListen
	case eqFold(f, "load"):
		*c |= ClassLoad
	case eqFold(f, "create"), eqFold(f, "alter"), eqFold(f, "drop"), eqFold(f, "do"):
		*c |= ClassDDL
	}
}

// DeallocateName reports the statement name of SQL text that is exactly
// one DEALLOCATE [PREPARE] name statement (comments, whitespace and a
// closing semicolon allowed), folded as PostgreSQL folds identifiers:
// unquoted names to lower case, quoted ones as written. DEALLOCATE ALL and
// anything else report false. The proxy uses it to apply a client's SQL
// DEALLOCATE to the statement it prepared under another name.
func DeallocateName(sql []byte) (string, bool) {
	i := skipSpace(sql, 0)
	w, i := word(sql, i)
	if !eqFold(w, "deallocate") {
		return "", false
	}
	i = skipSpace(sql, i)
	// PREPARE is optional, and also a valid name: "DEALLOCATE prepare".
	if w, j := word(sql, i); eqFold(w, "prepare") {
		if k := skipSpace(sql, j); k < len(sql) && sql[k] != ';' {
			i = k
		}
	}
	var name []byte
	quoted := i < len(sql) && sql[i] == '"'
	if quoted {
		for i++; ; i++ {
			if i >= len(sql) {
				return "", false
			}
			if sql[i] == '"' {
				if i+1 < len(sql) && sql[i+1] == '"' {
					name = append(name, '"')
					i++
					continue
				}
				i++
				break
			}
			name = append(name, sql[i])
		}
		if len(name) == 0 {
			return "", false
		}
	} else {
		w, i = word(sql, i)
		if w == nil || eqFold(w, "all") {
			return "", false
		}
		name = make([]byte, len(w))
		for k, c := range w {
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			name[k] = c
		}
	}
	i = skipSpace(sql, i)
	if i < len(sql) && sql[i] == ';' {
		i = skipSpace(sql, i+1)
	}
	if i != len(sql) {
		return "", false
	}
	return string(name), true
}

// skipSpace returns the index of the first byte at or after i that is
// neither whitespace nor inside a comment.
func skipSpace(sql []byte, i int) int {
	for i < len(sql) {
		switch c := sql[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			depth := 1
			for i += 2; i < len(sql) && depth > 0; {
				if sql[i] == '*' && i+1 < len(sql) && sql[i+1] == '/' {
					depth--
					i += 2
				} else if sql[i] == '/' && i+1 < len(sql) && sql[i+1] == '*' {
					depth++
					i += 2
				} else {
					i++
				}
			}
		default:
			return i
		}
	}
	return i
}

// word returns the unquoted identifier or keyword at i (nil if none) and
// the index after it.
func word(sql []byte, i int) ([]byte, int) {
	if i >= len(sql) || !isIdentStart(sql[i]) {
		return nil, i
	}
	j := i + 1
	for j < len(sql) && isIdentChar(sql[j]) {
		j++
	}
	return sql[i:j], j
}
