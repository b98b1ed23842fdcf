package postgres

import (
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/rdslocal/rdslocal/proxy/postgres/wire"
)

// Tracked settings and server parameters: what a client set in its
// startup packet is carried to whichever server connection serves it (SET
// at borrow when the values differ), so pools need not be keyed by them;
// and the ParameterStatus values a client has seen are kept up to date
// when its next server connection reports others.

// trackedSettings are the run-time parameters a client may set in its
// startup packet.
var trackedSettings = [...]string{"application_name", "client_encoding", "DateStyle", "TimeZone", "extra_float_digits"}

// settingValues holds one value per trackedSettings entry.
type settingValues [len(trackedSettings)]string

// settingIndex returns name's index in trackedSettings, or -1.
func settingIndex(name string) int {
	switch name {
	case "application_name":
		return 0
	case "client_encoding":
		return 1
	case "DateStyle":
		return 2
	case "TimeZone":
		return 3
	case "extra_float_digits":
		return 4
	}
	return -1
}

// settingNames maps the lower-cased startup parameters a client may send
// to their canonical names.
var settingNames = map[string]string{
	"application_name":   "application_name",
	"client_encoding":    "client_encoding",
	"datestyle":          "DateStyle",
	"timezone":           "TimeZone",
	"extra_float_digits": "extra_float_digits",
}

// paramSet is an immutable set of server parameters (ParameterStatus
// values). Backends of a pool that report the same values share one, so a
// session borrowing a backend whose set it has already seen needs no
// comparison beyond the pointer.
type paramSet struct{ m map[string]string }

// poolState is what the protocol keeps per pool of the core
// (proxy.Pooled.PoolState): the shared parameter sets and the default
// settings, as the pool's first connection reported them.
type poolState struct {
	mu          sync.Mutex
	paramSets   []*paramSet
	defaults    settingValues
	hasDefaults bool
}

func newPoolState() any { return &poolState{} }

// internParams returns the pool's shared set equal to m, adding m if none is.
func (pp *poolState) internParams(m map[string]string) *paramSet {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for _, ps := range pp.paramSets {
		if maps.Equal(ps.m, m) {
			return ps
		}
	}
	ps := &paramSet{m: m}
	if len(pp.paramSets) < 16 {
		pp.paramSets = append(pp.paramSets, ps)
	}
	return ps
}

// setDefaults records v as the pool's default settings if it has none yet,
// and returns the defaults.
func (pp *poolState) setDefaults(v settingValues) settingValues {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if !pp.hasDefaults {
		pp.defaults, pp.hasDefaults = v, true
	}
	return pp.defaults
}

// noteParam records a ParameterStatus body.
func (b *backend) noteParam(body []byte) (name, value string) {
	name, value, err := wire.ParseParameterStatus(body)
	if err != nil {
		return "", ""
	}
	if cur, ok := b.params.m[name]; !ok || cur != value {
		m := maps.Clone(b.params.m)
		if m == nil {
			m = map[string]string{}
		}
		m[name] = value
		b.params = b.pp.internParams(m)
	}
	if i := settingIndex(name); i >= 0 {
		b.settings[i] = value
	}
	return name, value
}

// syncSettings SETs the client's startup settings on the borrowed backend
// where they differ and queues ParameterStatus messages for server
// parameters the client has not seen with their current values.
func (s *session) syncSettings() error {
	b := s.b
	want := s.want
	for i := range want {
		if !s.wantSet[i] {
			want[i] = b.defaults[i]
		}
	}
	if b.settings != want {
		var q []byte
		for i, k := range trackedSettings {
			if b.settings[i] != want[i] {
				q = append(q, "SET "...)
				q = append(q, k...)
				q = append(q, " = '"...)
				q = append(q, strings.ReplaceAll(want[i], "'", "''")...)
				q = append(q, "';"...)
			}
		}
		b.conn.SetDeadline(time.Now().Add(10 * time.Second))
		st, err := b.exec(string(q))
		b.conn.SetDeadline(time.Time{})
		if ev := s.c.Evicted(); ev != nil && err == nil {
			// A failover's expired deadline was overwritten just now:
			// nothing more goes to this connection.
			err = ev
		}
		if err != nil {
			if pe, ok := err.(*wire.Error); ok && st == wire.TxIdle {
				return &wire.Error{Severity: "FATAL", Code: pe.Code, Message: pe.Message}
			}
			s.broken = true
			return err
		}
		b.settings = want
	}
	if s.seen != nil && s.seenSet != b.params {
		for k, v := range b.params.m {
			if s.seen[k] != v {
				s.cw.Write(wire.AppendParameterStatus(nil, k, v))
				s.seen[k] = v
			}
		}
		if len(s.seen) == len(b.params.m) {
			s.seenSet = b.params
		} else {
			s.seenSet = nil
		}
	}
	return nil
}

// noteParam records a ParameterStatus the client is about to see.
func (s *session) noteParam(body []byte) {
	b := s.b
	before := b.params
	name, value := b.noteParam(body)
	if s.seen != nil && name != "" {
		s.seen[name] = value
		// seen still equals the backend's set only if it did before.
		if s.seenSet == before {
			s.seenSet = b.params
		} else {
			s.seenSet = nil
		}
	}
}
