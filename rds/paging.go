package rds

import (
	"github.com/rdslocal/rdslocal/api"
)

// page cuts one page out of items for Marker/MaxRecords pagination
// (MaxRecords 20–100, default 100).
func page[T any](items []T, marker *string, maxRecords *int64) ([]T, string, error) {
	limit := 100
	if maxRecords != nil {
		if *maxRecords < 20 || *maxRecords > 100 {
			return nil, "", api.InvalidParameterValue("Invalid value %d for MaxRecords. Must be between 20 and 100", *maxRecords)
		}
		limit = int(*maxRecords)
	}
	out, next, err := api.Page(items, deref(marker), limit)
	if err != nil {
		return nil, "", api.InvalidParameterValue("The parameter Marker is not valid: %s", deref(marker))
	}
	return out, next, nil
}
