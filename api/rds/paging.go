package rds

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/rdslocal/rdslocal/api"
)

// page cuts one page out of items for Marker/MaxRecords pagination
// (MaxRecords 20–100, default 100). The marker is opaque to clients; a
// marker is returned only when more items follow, since botocore stops with
// an error when it sees the same marker twice.
func page[T any](items []T, marker *string, maxRecords *int64) ([]T, string, error) {
	limit := 100
	if maxRecords != nil {
		if *maxRecords < 20 || *maxRecords > 100 {
			return nil, "", api.InvalidParameterValue("Invalid value %d for MaxRecords. Must be between 20 and 100", *maxRecords)
		}
		limit = int(*maxRecords)
	}
	start := 0
	if marker != nil && *marker != "" {
		n, ok := decodeMarker(*marker)
		if !ok || n > len(items) {
			return nil, "", api.InvalidParameterValue("The parameter Marker is not valid: %s", *marker)
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
