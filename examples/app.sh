#!/bin/sh
# The application container of docker/compose.yaml: it finds the proxies
# through the AWS API and logs in through them, with the secret's password
# and with an IAM auth token, as it would with RDS Proxy.
set -eu
ca=$(mktemp)
rdslocal ca --endpoint "$AWS_ENDPOINT_URL" > "$ca"
endpoint() {
  ep=$(aws rds describe-db-proxies --db-proxy-name "$1" --query 'DBProxies[0].Endpoint' --output text)
  case $ep in *:*) echo "${ep%:*} ${ep##*:}" ;; *) echo "$ep 5432" ;; esac
}
set -- $(endpoint app-proxy)
PGPASSWORD=app-password-1 psql "host=$1 port=$2 user=app dbname=postgres sslmode=verify-full sslrootcert=$ca" \
  -v ON_ERROR_STOP=1 -tAc "INSERT INTO greetings (text) VALUES ('hello through $1:$2') RETURNING text"
set -- $(endpoint app-proxy-iam)
PGPASSWORD=$(aws rds generate-db-auth-token --hostname "$1" --port "$2" --username app) \
  psql "host=$1 port=$2 user=app dbname=postgres sslmode=verify-full sslrootcert=$ca" \
  -v ON_ERROR_STOP=1 -tAc "SELECT count(*) || ' greeting(s), read with an IAM token through $1:$2' FROM greetings"
