#!/usr/bin/env bash
# Makes the Go toolchain image of the Dockerfile's build stage from the host's
# Go, for daemons that cannot pull golang:*: BASE plus `go env GOROOT` at
# /usr/local/go, where the official golang image has it.
#
#   docker/go-image.sh BASE [TAG]    (default TAG rdslocal/go:<go version>)
#
# Prints the tag. Does nothing when TAG already exists.
set -euo pipefail

base=${1:?usage: docker/go-image.sh BASE [TAG]}
goroot=$(go env GOROOT)
version=$(go env GOVERSION)
tag=${2:-rdslocal/go:${version#go}}
if docker image inspect "$tag" >/dev/null 2>&1; then
	echo "$tag"
	exit 0
fi
echo "docker/go-image.sh: $tag = $base + $goroot" >&2
cid=$(docker create "$base" true)
trap 'docker rm -f "$cid" >/dev/null' EXIT
tar -C "$goroot" --transform 's,^\.,go,' -cf - . | docker cp - "$cid:/usr/local"
docker commit --change 'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV GOTOOLCHAIN=local' "$cid" "$tag" >/dev/null
echo "$tag"
