#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time each (default 20s).
# New crashers land in the package's testdata/fuzz and then run in `make test`.
set -euo pipefail
t=${1:-20s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $target ($t)"
		go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$t"
	done
done
