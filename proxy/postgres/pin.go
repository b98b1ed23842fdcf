package postgres

import "github.com/rdslocal/rdslocal/proxy/postgres/wire"

// pinTextLimit is RDS Proxy's statement-size limit: a statement whose text
// is longer pins the session.
const pinTextLimit = 16384

// Pin reasons, worded as RDS Proxy logs them where its wording is known.
const (
	reasonTextSize = "The connection ran a SQL query which exceeded the 16384 byte limit."
	reasonSet      = "SQL changed session settings that the proxy doesn't track. Consider moving session configuration to the proxy's initialization query."
	reasonPrepare  = "SQL-level prepared statements (PREPARE, EXECUTE or DEALLOCATE) were used."
	reasonDiscard  = "The session state was discarded (DISCARD)."
	reasonListen   = "The client listens on a notification channel (LISTEN)."
	reasonTemp     = "A temporary table, view or sequence was created."
	reasonCursor   = "A cursor was declared WITH HOLD."
	reasonAdvisory = "A session-level advisory lock function was called."
	reasonLoad     = "A library module was loaded (LOAD)."
)

// pinReason is the pinning policy for PostgreSQL: which statement classes
// pin a session, as RDS documents. It returns "" for a class that does not
// pin.
func pinReason(c wire.Class) string {
	switch {
	case c == 0:
		return ""
	case c&wire.ClassSet != 0:
		return reasonSet
	case c&wire.ClassPrepare != 0:
		return reasonPrepare
	case c&wire.ClassDiscard != 0:
		return reasonDiscard
	case c&wire.ClassListen != 0:
		return reasonListen
	case c&wire.ClassTemp != 0:
		return reasonTemp
	case c&wire.ClassHoldCursor != 0:
		return reasonCursor
	case c&wire.ClassAdvisoryLock != 0:
		return reasonAdvisory
	case c&wire.ClassLoad != 0:
		return reasonLoad
	}
	return ""
}

// classify applies the pinning policy to a statement.
func (s *session) classify(c wire.Class, textLen int) {
	if textLen > pinTextLimit {
		s.pin(reasonTextSize)
	}
	if c == 0 {
		return
	}
	if r := pinReason(c); r != "" {
		s.pin(r)
	}
	if c&wire.ClassDDL != 0 && c&wire.ClassTemp == 0 {
		// Statements prepared before may no longer fit the schema; again
		// when the transaction commits (see stmtRegistry).
		s.regs.schemaChanged()
		s.ddl = true
	}
	if c&wire.ClassDropsPrepared != 0 {
		clear(s.b.prepared)
		for _, st := range s.stmts {
			s.regs.release(st, true)
		}
		clear(s.stmts)
		s.b.unnamed = nil
		s.unnamed = nil
	}
	if c&wire.ClassLoad != 0 {
		s.b.loaded = true
	}
}
