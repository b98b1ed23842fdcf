package api

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// ErrBadMarker is returned by Page for a marker it did not issue; each
// service turns it into its own error.
var ErrBadMarker = errors.New("invalid pagination marker")

// Page cuts the page that starts at marker ("" for the first) out of items,
// at most limit long, and returns the marker of the next page, "" when none
// follows (botocore stops with an error when a marker repeats, so one is
// never returned at the end). Markers are opaque to clients.
func Page[T any](items []T, marker string, limit int) (page []T, next string, err error) {
	start := 0
	if marker != "" {
		n, ok := decodeMarker(marker)
		if !ok || n > len(items) {
			return nil, "", ErrBadMarker
		}
		start = n
	}
	end := start + limit
	if end >= len(items) {
		return items[start:], "", nil
	}
	return items[start:end], encodeMarker(end), nil
}

func encodeMarker(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("rdslocal:" + strconv.Itoa(n)))
}

func decodeMarker(m string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(m)
	if err != nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(string(b), "rdslocal:")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}
