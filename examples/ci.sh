#!/bin/sh
# A CI job that gets RDS Proxy endpoints from rdslocal: start it with the
# fixture file, wait until every resource is ready, connect through the
# proxies. Needs rdslocal, the AWS CLI and psql on PATH.
set -eu
export AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://localhost:4566}"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1

rdslocal --init-file examples/fixtures.yaml > rdslocal.log 2>&1 &
RDSLOCAL_PID=$!
trap 'kill "$RDSLOCAL_PID"; wait "$RDSLOCAL_PID"' EXIT
rdslocal wait --timeout 120s
rdslocal ca > rdslocal-ca.pem

# endpoint PROXY prints the host and port of a proxy's Endpoint (an address
# on 5432, or host:port in ports mode). AWS CLI v1 needs --endpoint-url for
# rds in us-east-1 (see "AWS_ENDPOINT_URL" in the README).
endpoint() {
  ep=$(aws --endpoint-url "$AWS_ENDPOINT_URL" rds describe-db-proxies --db-proxy-name "$1" \
    --query 'DBProxies[0].Endpoint' --output text)
  case $ep in *:*) echo "${ep%:*} ${ep##*:}" ;; *) echo "$ep 5432" ;; esac
}

# With the secret's password.
set -- $(endpoint app-proxy)
PGPASSWORD=app-password-1 psql "host=$1 port=$2 user=app dbname=postgres sslmode=verify-full sslrootcert=rdslocal-ca.pem" \
  -tAc "select 'password login through app-proxy'"

# With an IAM auth token.
set -- $(endpoint app-proxy-iam)
PGPASSWORD=$(aws rds generate-db-auth-token --hostname "$1" --port "$2" --username app) \
  psql "host=$1 port=$2 user=app dbname=postgres sslmode=verify-full sslrootcert=rdslocal-ca.pem" \
  -tAc "select 'IAM login through app-proxy-iam'"
