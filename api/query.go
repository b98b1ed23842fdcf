package api

import (
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// reservedQueryParams are consumed by the gateway, not by an operation.
var reservedQueryParams = map[string]bool{
	"Action": true, "Version": true, "AWSAccessKeyId": true, "SignatureMethod": true,
	"SignatureVersion": true, "Signature": true, "Timestamp": true,
}

// DecodeQuery validates the parameters of a query-protocol request against the
// input shape of op and returns them as a JSON object keyed by member name.
// Unknown parameters, values of the wrong type and missing required members
// are answered with the query protocol's own errors.
func (m *Model) DecodeQuery(op string, form url.Values) ([]byte, error) {
	d := &queryDecoder{m: m, form: form, used: map[string]bool{}}
	out := map[string]any{}
	if shape := m.input(op); shape != nil {
		var err *Error
		if out, err = d.structure(shape, ""); err != nil {
			return nil, err
		}
	}
	var unknown []string
	for k := range form {
		if !d.used[k] && !reservedQueryParams[k] && !strings.HasPrefix(k, "X-Amz-") {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, InvalidParameterValue("Unrecognized parameter %s for action %s", unknown[0], op)
	}
	return json.Marshal(out)
}

type queryDecoder struct {
	m    *Model
	form url.Values
	used map[string]bool
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// hasPrefix reports whether any parameter lies under prefix ("p.…").
func (d *queryDecoder) hasPrefix(p string) bool {
	p += "."
	for k := range d.form {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func (d *queryDecoder) structure(s *Shape, prefix string) (map[string]any, *Error) {
	out := map[string]any{}
	names := make([]string, 0, len(s.Members))
	for name := range s.Members {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ref := s.Members[name]
		wire := name
		if ref.LocationName != "" {
			wire = ref.LocationName
		}
		v, ok, err := d.value(d.m.Shapes[ref.Shape], join(prefix, wire))
		if err != nil {
			return nil, err
		}
		if ok {
			out[name] = v
		}
	}
	for _, req := range s.Required {
		if _, ok := out[req]; !ok {
			wire := req
			if ref := s.Members[req]; ref.LocationName != "" {
				wire = ref.LocationName
			}
			return nil, MissingParameter(join(prefix, wire))
		}
	}
	return out, nil
}

// value decodes the parameter(s) at key for shape s; ok is false when absent.
func (d *queryDecoder) value(s *Shape, key string) (any, bool, *Error) {
	switch s.Type {
	case "structure":
		if !d.hasPrefix(key) {
			return nil, false, nil
		}
		v, err := d.structure(s, key)
		return v, err == nil, err
	case "list":
		return d.list(s, key)
	case "map":
		return d.mapValue(s, key)
	}
	vals, ok := d.form[key]
	if !ok {
		return nil, false, nil
	}
	d.used[key] = true
	v, err := scalar(s, key, vals[0])
	return v, err == nil, err
}

// list decodes Name.member.N (any middle segment is accepted, as clients
// differ in the member name they use) or Name.N for flattened lists; "Name="
// alone is an empty list.
func (d *queryDecoder) list(s *Shape, key string) (any, bool, *Error) {
	if vals, ok := d.form[key]; ok {
		d.used[key] = true
		if vals[0] != "" {
			return nil, false, InvalidParameterValue("Invalid value for parameter %s: a list is expected (%s.member.N)", key, key)
		}
		if !d.hasPrefix(key) {
			return []any{}, true, nil
		}
	}
	if !d.hasPrefix(key) {
		return nil, false, nil
	}
	itemPrefix := map[int]string{}
	for k := range d.form {
		rest, ok := strings.CutPrefix(k, key+".")
		if !ok {
			continue
		}
		segs := strings.SplitN(rest, ".", 3)
		var idx, mid string
		if s.Flattened {
			idx = segs[0]
		} else if len(segs) >= 2 {
			mid, idx = segs[0], segs[1]
		} else {
			return nil, false, InvalidParameterValue("Unrecognized parameter %s", k)
		}
		n, err := strconv.Atoi(idx)
		if err != nil || n < 1 || n > 100000 {
			return nil, false, InvalidParameterValue("Unrecognized parameter %s: list indexes start at 1", k)
		}
		if s.Flattened {
			itemPrefix[n] = key + "." + idx
		} else {
			itemPrefix[n] = key + "." + mid + "." + idx
		}
	}
	idxs := make([]int, 0, len(itemPrefix))
	for n := range itemPrefix {
		idxs = append(idxs, n)
	}
	sort.Ints(idxs)
	items := make([]any, 0, len(idxs))
	itemShape := d.m.Shapes[s.Member.Shape]
	for _, n := range idxs {
		v, ok, err := d.value(itemShape, itemPrefix[n])
		if err != nil {
			return nil, false, err
		}
		if ok {
			items = append(items, v)
		}
	}
	return items, true, nil
}

// mapValue decodes Name.entry.N.key / Name.entry.N.value.
func (d *queryDecoder) mapValue(s *Shape, key string) (any, bool, *Error) {
	if !d.hasPrefix(key) {
		return nil, false, nil
	}
	out := map[string]any{}
	for k := range d.form {
		rest, ok := strings.CutPrefix(k, key+".")
		if !ok || !strings.HasSuffix(rest, ".key") {
			continue
		}
		base := key + "." + strings.TrimSuffix(rest, ".key")
		d.used[k] = true
		kv := d.form.Get(k)
		v, ok, err := d.value(d.m.Shapes[s.Value.Shape], base+".value")
		if err != nil {
			return nil, false, err
		}
		if ok {
			out[kv] = v
		}
	}
	return out, true, nil
}

func scalar(s *Shape, key, raw string) (any, *Error) {
	switch s.Type {
	case "integer", "long":
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, InvalidParameterValue("Invalid value %q for parameter %s: an integer is expected", raw, key)
		}
		return n, nil
	case "boolean":
		switch strings.ToLower(raw) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, InvalidParameterValue("Invalid value %q for parameter %s: true or false is expected", raw, key)
	case "double", "float":
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return nil, InvalidParameterValue("Invalid value %q for parameter %s: a number is expected", raw, key)
		}
		return f, nil
	case "timestamp":
		if _, err := ParseTimestamp(raw); err != nil {
			return nil, InvalidParameterValue("Invalid value %q for parameter %s: an ISO 8601 timestamp is expected", raw, key)
		}
		return raw, nil
	}
	if len(s.Enum) > 0 && !contains(s.Enum, raw) {
		return nil, InvalidParameterValue("Invalid value %s for parameter %s. Valid values: %s", raw, key, strings.Join(s.Enum, ", "))
	}
	return raw, nil
}

// ParseTimestamp accepts the ISO 8601 forms the SDKs send.
func ParseTimestamp(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	_, err := time.Parse(time.RFC3339, s)
	return time.Time{}, err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
