package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

func startupBytes(version uint32, params ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, version)
	for _, p := range params {
		b = append(append(b, p...), 0)
	}
	return append(b, 0)
}

func TestParseStartup(t *testing.T) {
	s, err := ParseStartup(startupBytes(ProtocolVersion30, "user", "app", "database", "db", "DateStyle", "ISO"))
	if err != nil || s.Kind != KindStartup || s.Major != 3 || len(s.Params) != 3 {
		t.Fatalf("%+v %v", s, err)
	}
	if v, ok := s.Get("datestyle"); !ok || v != "ISO" {
		t.Fatalf("Get: %q %v", v, ok)
	}
	if s, err := ParseStartup(binary.BigEndian.AppendUint32(nil, SSLRequestCode)); err != nil || s.Kind != KindSSLRequest {
		t.Fatal(s, err)
	}
	cancel := binary.BigEndian.AppendUint32(nil, CancelRequestCode)
	cancel = binary.BigEndian.AppendUint32(cancel, 77)
	cancel = append(cancel, 1, 2, 3, 4)
	if s, err := ParseStartup(cancel); err != nil || s.Kind != KindCancelRequest || s.PID != 77 || len(s.Secret) != 4 {
		t.Fatal(s, err)
	}
	for _, bad := range [][]byte{nil, {0, 3}, startupBytes(ProtocolVersion30, "user")[:10], append(startupBytes(ProtocolVersion30), 'x')} {
		if _, err := ParseStartup(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]Class{
		"SELECT 1":                                   0,
		"set search_path=x":                          ClassSet,
		"  /* c */ SET LOCAL x = 1":                  0,
		"SET TRANSACTION READ ONLY":                  0,
		"select 1; reset all":                        ClassSet,
		"PREPARE TRANSACTION 'x'":                    0,
		"prepare p as select 1":                      ClassPrepare,
		"DEALLOCATE ALL":                             ClassPrepare | ClassDropsPrepared,
		"discard all":                                ClassDiscard | ClassDropsPrepared,
		"DISCARD TEMP":                               ClassDiscard,
		"listen foo":                                 ClassListen,
		"create global temporary table t(a int)":     ClassTemp | ClassDDL,
		"create table pg_temp.t(a int)":              ClassTemp | ClassDDL,
		"create table temp_data(a int)":              ClassDDL,
		"ALTER TABLE t DROP COLUMN b":                ClassDDL,
		"select 1; drop type e":                      ClassDDL,
		"do $$ begin end $$":                         ClassDDL,
		"select 'create table x'":                    0,
		"select * into temp t from x":                ClassTemp,
		"declare c cursor with hold for select 1":    ClassHoldCursor,
		"declare c cursor without hold for select 1": 0,
		"select pg_catalog.pg_advisory_lock(1)":      ClassAdvisoryLock,
		"select pg_advisory_xact_lock(1)":            0,
		"select 'pg_advisory_lock(1)'":               0,
		"select $$ set x $$; select e'\\' set'":      0,
		"select \"set\" from t":                      0,
		"load 'x'":                                   ClassLoad,
		"update t set a = 1":                         0,
		"-- set x\nselect 1":                         0,
		"select set_config('a','b',false)":           ClassSet,
		"/* /* nested */ set */ select 1":            0,
		"SELECT $1, $tag$ LISTEN $tag$":              0,
	}
	for sql, want := range cases {
		if got := Classify([]byte(sql)); got != want {
			t.Errorf("Classify(%q) = %b, want %b", sql, got, want)
		}
	}
}

func TestDeallocateName(t *testing.T) {
	cases := []struct {
		sql  string
		name string // "" for not a single DEALLOCATE of a name
	}{
		{"DEALLOCATE ps", "ps"},
		{"deallocate PREPARE Ps;", "ps"},
		{" /* x */ Deallocate\n\"My \"\"S\"\"\" -- c", `My "S"`},
		{"DEALLOCATE ALL", ""},
		{"DEALLOCATE PREPARE ALL", ""},
		{"DEALLOCATE \"all\"", "all"},
		{"DEALLOCATE prepare", "prepare"},
		{"DEALLOCATE ps; SELECT 1", ""},
		{"DEALLOCATE", ""},
		{"DEALLOCATE \"\"", ""},
		{"DEALLOCATE \"open", ""},
		{"SELECT 1", ""},
		{"deallocate ps ; ", "ps"},
	}
	for _, c := range cases {
		name, ok := DeallocateName([]byte(c.sql))
		if ok != (c.name != "") || name != c.name {
			t.Errorf("DeallocateName(%q) = %q, %v; want %q", c.sql, name, ok, c.name)
		}
	}
}

func TestReaderAndBuilders(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	w.Write(AppendParse(nil, "s1", []byte("SELECT $1"), []byte{0, 1, 0, 0, 0, 23}))
	w.Write(AppendBind(nil, "", "s1", []byte{0, 0, 0, 0, 0, 0}))
	w.Write(AppendDescribeClose(nil, MsgClose, 'S', "s1"))
	w.Write(AppendErrorResponse(nil, &Error{Severity: "FATAL", Code: "28P01", Message: "m"}))
	big := bytes.Repeat([]byte{'x'}, 100000)
	WriteMessage(w, MsgQuery, append(big, 0))
	w.Flush()
	r := NewReader(&buf, 4096)
	typ, body, err := r.Next()
	name, q, params, perr := ParseParse(body)
	if err != nil || typ != 'P' || perr != nil || string(name) != "s1" || string(q) != "SELECT $1" || len(params) != 6 {
		t.Fatalf("parse: %q %q %v %v", name, q, err, perr)
	}
	typ, body, _ = r.Next()
	if _, stmt, _, err := ParseBind(body); typ != 'B' || err != nil || string(stmt) != "s1" {
		t.Fatal("bind")
	}
	typ, body, _ = r.Next()
	if k, n, err := ParseDescribeClose(body); typ != 'C' || err != nil || k != 'S' || string(n) != "s1" {
		t.Fatal("close")
	}
	_, body, _ = r.Next()
	if e := ParseErrorResponse(body); e.Code != "28P01" || e.Severity != "FATAL" {
		t.Fatal(e)
	}
	typ, body, err = r.Next()
	if err != nil || typ != 'Q' || len(body) != 100001 {
		t.Fatal("big message", err, len(body))
	}
}

func FuzzStartup(f *testing.F) {
	f.Add(startupBytes(ProtocolVersion30, "user", "app", "database", "db"))
	f.Add(startupBytes(ProtocolVersion32, "user", "a", "_pq_.x", "y"))
	f.Add(binary.BigEndian.AppendUint32(nil, SSLRequestCode))
	f.Add(binary.BigEndian.AppendUint32(nil, GSSENCRequestCode))
	f.Add(append(binary.BigEndian.AppendUint32(nil, CancelRequestCode), 0, 0, 0, 1, 9, 9, 9, 9))
	f.Add([]byte{0, 2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStartup(b)
		if err == nil && s.Kind == 0 {
			t.Fatal("no kind")
		}
		// Through the length-prefixed reader too.
		pkt := binary.BigEndian.AppendUint32(nil, uint32(len(b)+4))
		ReadStartupPacket(bytes.NewReader(append(pkt, b...)))
	})
}

func FuzzPasswordMessages(f *testing.F) {
	f.Add([]byte("secret\x00"))
	f.Add([]byte("SCRAM-SHA-256\x00\x00\x00\x00\x05n,,n="))
	f.Add([]byte("SCRAM-SHA-256\x00\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParsePasswordMessage(b)
		if m, d, err := ParseSASLInitialResponse(b); err == nil && len(m) > len(b) || len(d) > len(b) {
			t.Fatal("out of range")
		}
	})
}

func FuzzFrontendMessages(f *testing.F) {
	f.Add(byte('P'), []byte("s\x00SELECT 1\x00\x00\x00"))
	f.Add(byte('B'), []byte("\x00s\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(byte('D'), []byte("Ss\x00"))
	f.Add(byte('Q'), []byte("select 'x'; set y=1\x00"))
	f.Add(byte('Q'), []byte("deallocate prepare \"a\"\"b\";\x00"))
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		ParseParse(body)
		ParseBind(body)
		ParseDescribeClose(body)
		if q, err := ParseQuery(body); err == nil {
			Classify(q)
		}
		Classify(body)
		if name, ok := DeallocateName(body); ok && (name == "" || len(name) > len(body)) {
			t.Fatalf("DeallocateName(%q) = %q", body, name)
		}
		ParseErrorResponse(body)
		ParseParameterStatus(body)
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		WriteMessage(w, typ, body)
		w.Flush()
		r := NewReader(&buf, 64)
		if gt, gb, err := r.Next(); err != nil || gt != typ || !bytes.Equal(gb, body) {
			t.Fatalf("frame round trip: %v", err)
		}
	})
}
