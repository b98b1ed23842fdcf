#!/usr/bin/env bash
# Builds the runtime base image of rdslocal from Debian packages, for
# machines whose Docker daemon cannot pull from a registry: mmdebstrap
# makes a Debian bookworm root file system with PostgreSQL 15, MariaDB and
# the AWS CLI, and `docker import` turns it into a local image.
#
#   docker/base.sh [TAG]        (default rdslocal/base:bookworm)
#
# The Dockerfile takes this tag as its BASE build argument; where Docker Hub
# is reachable the default BASE (debian:bookworm-slim) is used instead and
# the Dockerfile installs the same packages with apt-get. Needs root (or
# user namespaces) and access to a Debian mirror (MIRROR, default
# http://deb.debian.org/debian). Does nothing when TAG already exists.
set -euo pipefail

tag=${1:-rdslocal/base:bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
security=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Keep in step with the apt-get line in docker/Dockerfile.
packages=${PACKAGES:-postgresql-15,mariadb-server,awscli,ca-certificates,tini}

if docker image inspect "$tag" >/dev/null 2>&1; then
	echo "docker/base.sh: $tag exists" >&2
	exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "docker/base.sh: installing mmdebstrap" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
	else
		echo "docker/base.sh: mmdebstrap is needed (apt-get install mmdebstrap)" >&2
		exit 1
	fi
fi

echo "docker/base.sh: building $tag from $mirror ($packages)" >&2
# The package scripts create a default PostgreSQL cluster and a MariaDB
# data directory; rdslocal makes its own, so the hook removes them, with
# PostgreSQL's JIT (LLVM, 130 MB; without its provider library PostgreSQL
# runs without JIT), documentation, man pages and apt's lists and caches.
mmdebstrap --variant=minbase --include="$packages" \
	--aptopt='APT::Install-Recommends "false"' \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='rm -rf "$1"/var/lib/postgresql/15/main "$1"/etc/postgresql/15/main "$1"/var/lib/mysql/* "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
	--customize-hook='rm -rf "$1"/usr/lib/postgresql/15/lib/llvmjit* "$1"/usr/lib/postgresql/15/lib/bitcode "$1"/usr/lib/x86_64-linux-gnu/libLLVM-* "$1"/usr/lib/x86_64-linux-gnu/libz3.so*' \
	bookworm - \
	"deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main" |
	docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		--message "Debian bookworm + $packages (docker/base.sh)" - "$tag"
docker image inspect --format '{{.Id}} {{.Size}}' "$tag"
