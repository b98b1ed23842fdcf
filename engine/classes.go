package engine

import "strings"

// maxConnections returns max_connections for an instance class. The table
// is deliberately small (see doc.go): the size word after the last '.'
// decides, so db.t3.micro, db.t4g.micro and db.m5.micro agree.
//
//	micro          50
//	small         100
//	medium        150
//	large, *xlarge 200
//	anything else 100
func maxConnections(class string) int {
	size := class[strings.LastIndexByte(class, '.')+1:]
	switch {
	case size == "micro":
		return 50
	case size == "small":
		return 100
	case size == "medium":
		return 150
	case size == "large", strings.HasSuffix(size, "xlarge"):
		return 200
	}
	return 100
}
