#!/bin/sh
# An init hook: rdslocal runs it once the fixtures are ready, with
# AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
# AWS_DEFAULT_REGION set; its output goes to rdslocal's log. This one gives
# the application its schema, through the proxy.
set -eu
ep=$(aws --endpoint-url "$AWS_ENDPOINT_URL" rds describe-db-proxies --db-proxy-name app-proxy \
  --query 'DBProxies[0].Endpoint' --output text)
# A hook runs beside rdslocal: a ports-mode Endpoint (host:port) listens
# on this machine too, whatever host it advertises; a loopback-mode one is
# an address on 5432.
case $ep in *:*) host=localhost port=${ep##*:} ;; *) host=$ep port=5432 ;; esac
ca=$(mktemp)
rdslocal ca --endpoint "$AWS_ENDPOINT_URL" > "$ca"
PGPASSWORD=app-password-1 psql "host=$host port=$port user=app dbname=postgres sslmode=verify-full sslrootcert=$ca" \
  -v ON_ERROR_STOP=1 -c 'CREATE TABLE IF NOT EXISTS greetings (id serial PRIMARY KEY, text text NOT NULL)'
rm -f "$ca"
