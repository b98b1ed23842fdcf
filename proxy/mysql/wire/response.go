package wire

import (
	"errors"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// Kind says what the response to a command looks like.
type Kind uint8

// Response kinds.
const (
	KindNone    Kind = iota // no response: COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA
	KindResult              // OK, ERR, LOCAL INFILE request or result sets: COM_QUERY, COM_STMT_EXECUTE, COM_PROCESS_INFO
	KindPrepare             // COM_STMT_PREPARE's OK with parameter and column definitions, or ERR
	KindRows                // rows up to a terminator, or ERR: COM_STMT_FETCH
	KindFields              // column definitions up to a terminator, or ERR: COM_FIELD_LIST
	KindSimple              // one OK, ERR or EOF packet: COM_PING, COM_INIT_DB, …
	KindRaw                 // one packet of anything: COM_STATISTICS
)

// KindOf returns the kind of response command cmd gets.
func KindOf(cmd byte) Kind {
	switch cmd {
	case mysql.COM_QUERY, mysql.COM_STMT_EXECUTE, mysql.COM_PROCESS_INFO:
		return KindResult
	case mysql.COM_STMT_PREPARE:
		return KindPrepare
	case mysql.COM_STMT_FETCH:
		return KindRows
	case mysql.COM_FIELD_LIST:
		return KindFields
	case mysql.COM_STATISTICS:
		return KindRaw
	case mysql.COM_STMT_CLOSE, mysql.COM_STMT_SEND_LONG_DATA, mysql.COM_QUIT:
		return KindNone
	}
	return KindSimple
}

// Event is what a packet means for the relay.
type Event uint8

// Events returned by Response.Next.
const (
	More        Event = iota // the response goes on
	Done                     // this packet ends the response
	LocalInfile              // a LOCAL INFILE request: the client's file follows, then the response goes on
)

// HeadSize is how many leading payload bytes Response.Next needs.
const HeadSize = 32

// Response follows one command's response packet by packet, from the
// packets' first bytes only, so that row data can be streamed: it tells
// where the response ends (result set after result set while
// SERVER_MORE_RESULTS_EXISTS is set), and remembers the status flags of
// the last OK or EOF packet, which is how the proxy knows whether a
// transaction is open.
type Response struct {
	kind         Kind
	deprecateEOF bool
	state        uint8
	left         uint64 // definitions left in the current list
	cols         uint64 // prepare: column definitions after the parameters
	cont         bool   // the previous packet was MaxPayload long

	// Status holds the flags of the last OK or EOF packet seen, if
	// HasStatus; an ERR carries none.
	Status    uint16
	HasStatus bool
	// Err is set when the response ended with an ERR packet.
	Err bool
	// InsertID and AffectedRows are those of the last OK packet.
	InsertID     uint64
	AffectedRows uint64
	// Prepared is the statement ID of a COM_STMT_PREPARE that succeeded.
	Prepared uint32
}

const (
	sStart       = iota // the first packet of a response or of a result
	sCols               // column definitions
	sColsEOF            // the EOF after them (classic protocol)
	sRows               // rows (or COM_FIELD_LIST's definitions) up to a terminator
	sParams             // prepare: parameter definitions
	sParamsEOF          // prepare: the EOF after them
	sPrepCols           // prepare: column definitions
	sPrepColsEOF        // prepare: the EOF after them
	sDone
)

var errUnexpected = errors.New("mysql: unexpected packet in a response")

// Start prepares for the response to a command of kind k;
// deprecateEOF is whether CLIENT_DEPRECATE_EOF was negotiated.
func (r *Response) Start(k Kind, deprecateEOF bool) {
	*r = Response{kind: k, deprecateEOF: deprecateEOF}
	switch k {
	case KindRows, KindFields:
		r.state = sRows
	case KindNone:
		r.state = sDone
	}
}

// Ended reports whether the response is complete.
func (r *Response) Ended() bool { return r.state == sDone }

// Next takes the next packet of the response: n is its payload length,
// head its first min(n, HeadSize) bytes.
func (r *Response) Next(n int, head []byte) (Event, error) {
	if r.state == sDone {
		return Done, errUnexpected
	}
	if r.cont {
		r.cont = n == MaxPayload
		return More, nil
	}
	r.cont = n == MaxPayload
	if len(head) == 0 {
		if r.state == sCols || r.state == sParams || r.state == sPrepCols || r.kind == KindRaw {
			return r.definition()
		}
		return Done, ErrMalformed
	}
	first := head[0]
	switch r.state {
	case sStart:
		return r.start(first, n, head)
	case sCols, sParams, sPrepCols:
		return r.definition()
	case sColsEOF, sParamsEOF, sPrepColsEOF:
		if !IsTerminator(first, n, false) {
			return Done, errUnexpected
		}
		st, err := TerminatorStatus(head, false)
		if err != nil {
			return Done, err
		}
		r.status(st)
		switch r.state {
		case sColsEOF:
			if st&mysql.SERVER_STATUS_CURSOR_EXISTS != 0 {
				// COM_STMT_EXECUTE opened a cursor: rows come with
				// COM_STMT_FETCH.
				return r.done()
			}
			r.state = sRows
		case sParamsEOF:
			r.afterParams()
		case sPrepColsEOF:
			return r.done()
		}
		if r.state == sDone {
			return Done, nil
		}
		return More, nil
	case sRows:
		if first == mysql.ERR_HEADER {
			r.Err = true
			return r.done()
		}
		if IsTerminator(first, n, r.deprecateEOF) {
			st, err := TerminatorStatus(head, r.deprecateEOF)
			if err != nil {
				return Done, err
			}
			r.status(st)
			if r.kind == KindResult && st&mysql.SERVER_MORE_RESULTS_EXISTS != 0 {
				r.state = sStart
				return More, nil
			}
			return r.done()
		}
		return More, nil
	}
	return Done, errUnexpected
}

func (r *Response) start(first byte, n int, head []byte) (Event, error) {
	if r.kind == KindRaw {
		return r.done()
	}
	switch first {
	case mysql.ERR_HEADER:
		r.Err = true
		return r.done()
	case mysql.OK_HEADER:
		if r.kind == KindPrepare {
			// stmt_id(4) num_columns(2) num_params(2) filler(1) warnings(2)
			if len(head) < 9 {
				return Done, ErrMalformed
			}
			r.Prepared = uint32(head[1]) | uint32(head[2])<<8 | uint32(head[3])<<16 | uint32(head[4])<<24
			r.cols = uint64(head[5]) | uint64(head[6])<<8
			r.left = uint64(head[7]) | uint64(head[8])<<8
			if r.left > 0 {
				r.state = sParams
				return More, nil
			}
			r.afterParams()
			if r.state == sDone {
				return Done, nil
			}
			return More, nil
		}
		ok, err := ParseOK(head)
		if err != nil {
			return Done, err
		}
		r.status(ok.Status)
		r.InsertID, r.AffectedRows = ok.InsertID, ok.AffectedRows
		if r.kind == KindResult && ok.Status&mysql.SERVER_MORE_RESULTS_EXISTS != 0 {
			return More, nil
		}
		return r.done()
	case mysql.EOF_HEADER:
		if r.kind == KindSimple && n < 9 {
			st, err := TerminatorStatus(head, false)
			if err != nil {
				return Done, err
			}
			r.status(st)
			return r.done()
		}
	case mysql.LocalInFile_HEADER:
		if r.kind == KindResult {
			return LocalInfile, nil // the OK or ERR after the file is again a start
		}
	}
	if r.kind != KindResult {
		return Done, errUnexpected
	}
	cols, k := LenEnc(head)
	if k == 0 || cols == 0 {
		return Done, ErrMalformed
	}
	r.left = cols
	r.state = sCols
	return More, nil
}

// definition counts one column or parameter definition.
func (r *Response) definition() (Event, error) {
	if r.kind == KindRaw {
		return r.done()
	}
	r.left--
	if r.left > 0 {
		return More, nil
	}
	switch r.state {
	case sCols:
		if r.deprecateEOF {
			r.state = sRows
		} else {
			r.state = sColsEOF
		}
	case sParams:
		if r.deprecateEOF {
			r.afterParams()
		} else {
			r.state = sParamsEOF
		}
	case sPrepCols:
		if r.deprecateEOF {
			return r.done()
		}
		r.state = sPrepColsEOF
	}
	if r.state == sDone {
		return Done, nil
	}
	return More, nil
}

func (r *Response) afterParams() {
	if r.cols == 0 {
		r.state = sDone
		return
	}
	r.left = r.cols
	r.state = sPrepCols
}

func (r *Response) status(st uint16) {
	r.Status, r.HasStatus = st, true
}

func (r *Response) done() (Event, error) {
	r.state = sDone
	return Done, nil
}

// InRows reports whether the next packet, unless it ends the list, is a
// row (or, for COM_FIELD_LIST, a column definition).
func (r *Response) InRows() bool { return r.state == sRows && !r.cont }
