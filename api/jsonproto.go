package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"
)

// SerializationException is JSON 1.1's error for a body that does not parse
// or does not fit the operation's input shape.
func SerializationException(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, "SerializationException", format, args...)
}

// DecodeJSON validates a JSON 1.1 request body against the input shape of op.
// A body that is not JSON, or whose members do not fit the shape, gets a
// SerializationException; constraint violations (required members, lengths,
// ranges, enums) get one ValidationException listing them as AWS does
// ("1 validation error detected: Value null at 'secretId' failed to satisfy
// constraint: Member must not be null").
func (m *Model) DecodeJSON(op string, body []byte) ([]byte, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, SerializationException("Invalid JSON in request body: %v", err)
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return nil, SerializationException("Invalid JSON in request body: trailing data after the object")
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, SerializationException("Start of structure or map found where not expected: the request body must be a JSON object")
	}
	if shape := m.input(op); shape != nil {
		c := &jsonChecker{m: m}
		if err := c.check(shape, v, ""); err != nil {
			return nil, err
		}
		if len(c.violations) > 0 {
			n := len(c.violations)
			s := "s"
			if n == 1 {
				s = ""
			}
			return nil, NewError(http.StatusBadRequest, "ValidationException", "%d validation error%s detected: %s", n, s, strings.Join(c.violations, "; "))
		}
	}
	return body, nil
}

type jsonChecker struct {
	m          *Model
	violations []string
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func (c *jsonChecker) violate(s *Shape, path string, v any, constraint string) {
	shown := " null"
	if s != nil && s.Sensitive {
		shown = ""
	} else if v != nil {
		shown = fmt.Sprintf(" '%v'", v)
		if str, ok := v.(string); ok && len(str) > 64 {
			shown = " '" + str[:64] + "…'"
		}
	}
	c.violations = append(c.violations, fmt.Sprintf("Value%s at '%s' failed to satisfy constraint: %s", shown, path, constraint))
}

func (c *jsonChecker) check(s *Shape, v any, path string) error {
	switch s.Type {
	case "structure":
		obj, ok := v.(map[string]any)
		if !ok {
			return SerializationException("Expected an object for %s", pathName(path))
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ref, ok := s.Members[k]
			if !ok {
				return SerializationException("Unrecognized field %q in %s", k, pathName(path))
			}
			if obj[k] == nil {
				continue
			}
			if err := c.check(c.m.Shapes[ref.Shape], obj[k], join(path, lowerFirst(k))); err != nil {
				return err
			}
		}
		for _, req := range s.Required {
			if obj[req] == nil {
				c.violate(nil, join(path, lowerFirst(req)), nil, "Member must not be null")
			}
		}
	case "list":
		arr, ok := v.([]any)
		if !ok {
			return SerializationException("Expected a list for %s", pathName(path))
		}
		c.length(s, v, path, len(arr))
		for i, item := range arr {
			if err := c.check(c.m.Shapes[s.Member.Shape], item, fmt.Sprintf("%s.%d.member", path, i+1)); err != nil {
				return err
			}
		}
	case "map":
		obj, ok := v.(map[string]any)
		if !ok {
			return SerializationException("Expected a map for %s", pathName(path))
		}
		c.length(s, v, path, len(obj))
		for k, item := range obj {
			if err := c.check(c.m.Shapes[s.Value.Shape], item, path+"."+k); err != nil {
				return err
			}
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return SerializationException("Expected a string for %s", pathName(path))
		}
		c.length(s, v, path, utf8.RuneCountInString(str))
		if len(s.Enum) > 0 && !contains(s.Enum, str) {
			c.violate(s, path, v, "Member must satisfy enum value set: ["+strings.Join(s.Enum, ", ")+"]")
		}
	case "blob":
		str, ok := v.(string)
		if !ok {
			return SerializationException("Expected a base64 string for %s", pathName(path))
		}
		raw, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			return SerializationException("Invalid base64 for %s", pathName(path))
		}
		c.length(s, nil, path, len(raw))
	case "boolean":
		if _, ok := v.(bool); !ok {
			return SerializationException("Expected a boolean for %s", pathName(path))
		}
	case "integer", "long":
		n, ok := v.(json.Number)
		if !ok {
			return SerializationException("Expected a number for %s", pathName(path))
		}
		i, err := n.Int64()
		if err != nil {
			return SerializationException("Expected an integer for %s", pathName(path))
		}
		if s.Min != nil && float64(i) < *s.Min {
			c.violate(s, path, v, fmt.Sprintf("Member must have value greater than or equal to %g", *s.Min))
		}
		if s.Max != nil && float64(i) > *s.Max {
			c.violate(s, path, v, fmt.Sprintf("Member must have value less than or equal to %g", *s.Max))
		}
	case "double", "float":
		if _, ok := v.(json.Number); !ok {
			return SerializationException("Expected a number for %s", pathName(path))
		}
	case "timestamp":
		switch t := v.(type) {
		case json.Number:
		case string:
			if _, err := ParseTimestamp(t); err != nil {
				return SerializationException("Expected a timestamp for %s", pathName(path))
			}
		default:
			return SerializationException("Expected a timestamp for %s", pathName(path))
		}
	}
	return nil
}

func (c *jsonChecker) length(s *Shape, v any, path string, n int) {
	if s.Min != nil && float64(n) < *s.Min {
		c.violate(s, path, v, fmt.Sprintf("Member must have length greater than or equal to %g", *s.Min))
	}
	if s.Max != nil && float64(n) > *s.Max {
		c.violate(s, path, v, fmt.Sprintf("Member must have length less than or equal to %g", *s.Max))
	}
}

func pathName(path string) string {
	if path == "" {
		return "the request"
	}
	return "'" + path + "'"
}
