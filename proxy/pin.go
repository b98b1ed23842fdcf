package proxy

import "github.com/rdslocal/rdslocal/proxy/pg"

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
func pinReason(c pg.Class) string {
	switch {
	case c == 0:
		return ""
	case c&pg.ClassSet != 0:
		return reasonSet
	case c&pg.ClassPrepare != 0:
		return reasonPrepare
	case c&pg.ClassDiscard != 0:
		return reasonDiscard
	case c&pg.ClassListen != 0:
		return reasonListen
	case c&pg.ClassTemp != 0:
		return reasonTemp
	case c&pg.ClassHoldCursor != 0:
		return reasonCursor
	case c&pg.ClassAdvisoryLock != 0:
		return reasonAdvisory
	case c&pg.ClassLoad != 0:
		return reasonLoad
	}
	return ""
}
