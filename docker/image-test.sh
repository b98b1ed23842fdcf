#!/usr/bin/env bash
# `make image-test`: runs the image for real and checks what the README
# promises, from outside the container:
#
#   1. docker run with the example fixture file and init hook mounted and
#      the API and proxy ports published; `rdslocal wait` on the published
#      API port (time to ready);
#   2. the proxies' Endpoint values name the advertised host; psql connects
#      through the published proxy ports with the secret's password and with
#      an IAM auth token, verify-full against the CA from the API; the init
#      hook's table is there;
#   3. Docker's HEALTHCHECK says healthy;
#   4. the CI service-container path: a container started without a file,
#      then `docker cp` + `docker exec … rdslocal fixtures apply`;
#   5. docker/compose.yaml, when docker compose or docker-compose is
#      installed: the app container connects through the proxies.
#
# Needs the image (make image), bin/rdslocal (make build), the AWS CLI and
# psql on this host. Ports: a free block of 20 from 24510 up (PORTS to
# choose), published as is so Endpoint values work from here.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${IMAGE:-rdslocal:latest}
bin=$PWD/bin/rdslocal
step() { printf '\n== %s\n' "$*"; }

free() { ! ss -ltnH "( sport = :$1 )" | grep -q .; }
pick_ports() {
	for base in $(seq 24510 40 30000); do
		ok=1
		for p in $(seq "$base" $((base + 20))); do free "$p" || { ok=0; break; }; done
		if [ $ok = 1 ]; then echo "$base"; return; fi
	done
	echo "no free ports" >&2; exit 1
}
lo=${PORTS:-$(pick_ports)}
hi=$((lo + 19))
api=$((lo + 20))
names=()
cleanup() { [ ${#names[@]} -eq 0 ] || docker rm -f "${names[@]}" >/dev/null 2>&1 || true; }
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=
url=http://127.0.0.1:$api

run() { # run NAME [docker run options]: starts the image with the block of ports published
	local name=$1; shift
	names+=("$name")
	docker run -d --name "$name" -p "127.0.0.1:$api:4566" -p "$lo-$hi:$lo-$hi" \
		-e RDSLOCAL_PORT_RANGE="$lo-$((hi + 1))" "$@" "$image" >/dev/null
}

# connect PROXY LOGIN: psql through the proxy from this host, LOGIN = password | iam.
connect() {
	local ep host port pw
	ep=$(aws --endpoint-url "$url" rds describe-db-proxies --db-proxy-name "$1" --query 'DBProxies[0].Endpoint' --output text)
	host=${ep%:*} port=${ep##*:}
	[ "$host" = localhost ] || { echo "Endpoint $ep does not name the advertised host localhost" >&2; exit 1; }
	if [ "$2" = iam ]; then pw=$(aws rds generate-db-auth-token --hostname "$host" --port "$port" --username app); else pw=app-password-1; fi
	PGPASSWORD=$pw psql "host=$host port=$port user=app dbname=postgres sslmode=verify-full sslrootcert=$ca connect_timeout=10" \
		-v ON_ERROR_STOP=1 -tAc "SELECT '$1 ($2, Endpoint $ep): ' || count(*) || ' greeting(s)' FROM greetings"
}

step "image $image: $(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'), API on $url, proxy ports $lo-$hi"

step "1. docker run with the fixture file and the init hook"
start=$(date +%s%N)
run rdslocal-image-test -e RDSLOCAL_INIT_FILE=/etc/rdslocal/fixtures.yaml \
	-v "$PWD/examples/fixtures.yaml:/etc/rdslocal/fixtures.yaml:ro" -v "$PWD/examples/init:/etc/rdslocal/init:ro"
"$bin" wait --endpoint "$url" --timeout 180s
echo "ready $(( ($(date +%s%N) - start) / 1000000 )) ms after docker run"

step "2. connect through the published proxy ports"
ca=$(mktemp)
"$bin" ca --endpoint "$url" > "$ca" # each container makes its own CA (no data directory)
connect app-proxy password
connect app-proxy-iam iam
docker logs rdslocal-image-test 2>&1 | grep -E 'init hook (started|output|succeeded|failed)' | cut -c1-200

step "3. Docker's HEALTHCHECK"
for _ in $(seq 30); do
	health=$(docker inspect --format '{{.State.Health.Status}}' rdslocal-image-test)
	[ "$health" = healthy ] && break
	sleep 1
done
echo "health: $health"
[ "$health" = healthy ]
docker rm -f rdslocal-image-test >/dev/null

step "4. CI service container: start without a file, then docker cp + docker exec rdslocal fixtures apply"
run rdslocal-image-test-svc
"$bin" wait --endpoint "$url" --timeout 60s
docker cp examples/fixtures.yaml rdslocal-image-test-svc:/tmp/fixtures.yaml
docker exec rdslocal-image-test-svc rdslocal fixtures apply /tmp/fixtures.yaml
docker exec rdslocal-image-test-svc aws rds describe-db-proxies --query 'DBProxies[].[DBProxyName,Endpoint,Status]' --output text
"$bin" ca --endpoint "$url" > "$ca"
PGPASSWORD=app-password-1 psql "host=localhost port=$(aws --endpoint-url "$url" rds describe-db-proxies --db-proxy-name app-proxy --query 'DBProxies[0].Endpoint' --output text | sed 's/.*://') user=app dbname=postgres sslmode=verify-full sslrootcert=$ca" -tAc "SELECT 'service container: password login ok'"
docker rm -f rdslocal-image-test-svc >/dev/null

step "5. docker/compose.yaml"
compose=()
if docker compose version >/dev/null 2>&1; then compose=(docker compose); elif command -v docker-compose >/dev/null; then compose=(docker-compose); fi
if [ ${#compose[@]} -eq 0 ]; then
	echo "skipped: neither docker compose nor docker-compose is installed"
else
	export RDSLOCAL_IMAGE=$image RDSLOCAL_API_PORT=$api RDSLOCAL_PORTS=$lo-$hi RDSLOCAL_PORT_RANGE=$lo-$((hi + 1))
	"${compose[@]}" -p rdslocal-image-test -f docker/compose.yaml up --no-color --abort-on-container-exit --exit-code-from app 2>&1 | grep -E '^app[-_]1 |exited with code' || true
	code=$("${compose[@]}" -p rdslocal-image-test -f docker/compose.yaml ps -q app | xargs docker inspect --format '{{.State.ExitCode}}')
	"${compose[@]}" -p rdslocal-image-test -f docker/compose.yaml down -v >/dev/null 2>&1
	echo "app exited with $code"
	[ "$code" = 0 ]
fi
rm -f "$ca"
step "image-test passed"
