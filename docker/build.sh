#!/usr/bin/env bash
# `make image`: builds the rdslocal image (IMAGE, default rdslocal:latest) on
# a machine like the ones this project is developed on — Debian, Docker from
# Debian's docker.io, and no image registry reachable:
#
#   1. a Docker daemon: when none answers and this is root on Debian,
#      install docker.io if needed and start dockerd in the background;
#   2. the runtime base from Debian packages (docker/base.sh → BASE_IMAGE);
#   3. the Go toolchain image from the host's Go (docker/go-image.sh);
#   4. a build context of the repository's files plus vendor/ (go mod vendor,
#      from the host's module cache), so the build needs no network;
#   5. docker build -f docker/Dockerfile with those as BASE and GO_IMAGE.
#
# Where Docker Hub is reachable, `docker build -f docker/Dockerfile .` alone
# builds the same image from debian:bookworm-slim and golang:1.26-bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-rdslocal:latest}
base=${BASE_IMAGE:-rdslocal/base:bookworm}

if ! docker info >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "docker/build.sh: no Docker daemon answers; start one (dockerd) and run make image again" >&2
		exit 1
	fi
	if ! command -v dockerd >/dev/null 2>&1; then
		echo "docker/build.sh: installing docker.io" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
	fi
	# On DOCKER_HOST's socket when it names one, else the default.
	sock=()
	case ${DOCKER_HOST:-} in unix://*) sock=(-H "$DOCKER_HOST" --pidfile "${DOCKER_HOST#unix://}.pid") ;; esac
	echo "docker/build.sh: starting dockerd ${sock[*]} (log: /var/log/rdslocal-dockerd.log)" >&2
	nohup dockerd "${sock[@]}" >/var/log/rdslocal-dockerd.log 2>&1 &
	for _ in $(seq 60); do
		docker info >/dev/null 2>&1 && break
		sleep 0.5
	done
	docker info >/dev/null 2>&1 || { echo "docker/build.sh: dockerd did not start; see /var/log/rdslocal-dockerd.log" >&2; exit 1; }
fi

docker/base.sh "$base"
goimage=$(docker/go-image.sh "$base")

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
if git rev-parse --show-toplevel >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -C "$ctx" -xf -
else
	tar --exclude=./bin --exclude=./.cache -cf - . | tar -C "$ctx" -xf -
fi
go mod vendor -o "$ctx/vendor"

# The legacy builder: Debian's docker.io has no buildx, and the Dockerfile
# needs nothing BuildKit adds.
export DOCKER_BUILDKIT=0
start=$(date +%s)
docker build -f docker/Dockerfile --build-arg BASE="$base" --build-arg GO_IMAGE="$goimage" -t "$image" "$ctx"
echo "docker/build.sh: $image built in $(( $(date +%s) - start ))s, $(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}')" >&2
