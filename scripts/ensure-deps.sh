#!/usr/bin/env bash
# Installs what the tests need when it is missing: PostgreSQL and MariaDB
# server binaries (the tests start their own servers from them) and the AWS
# CLI (used by the CLI flow tests). Debian/Ubuntu packages, as root.
set -euo pipefail

missing=()
have_pg() {
	command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
have_pg || missing+=(postgresql)
{ command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || missing+=(mariadb-server)
command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v aws >/dev/null 2>&1 || missing+=(awscli)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
# shellcheck disable=SC2207
missing=($(printf '%s\n' "${missing[@]}" | sort -u))
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-deps: missing ${missing[*]}; install them (apt-get install ${missing[*]}) — tests that need them will skip" >&2
	exit 0
fi
echo "ensure-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
