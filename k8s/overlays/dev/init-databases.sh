#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory: one database and one login role per
# service, each owning only its own database, so a service cannot read another's tables.
#
# The passwords file holds "<service> <password>" lines. Its last line may lack a newline (a
# Kubernetes Secret literal or a file saved by an editor often does): `read` then returns non-zero
# although it read the line, so `|| [[ -n $service ]]` keeps that last service.
# DB_NAME_PREFIX (empty in deployments) prefixes every role and database name, so that
# scripts/deploy-check.sh can run this very script against a shared server.
set -euo pipefail
prefix="${DB_NAME_PREFIX:-}"
while read -r service password || [[ -n $service ]]; do
  [[ -n "$service" ]] || continue
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v svc="$prefix$service" -v pw="$password" <<'SQL'
CREATE ROLE :"svc" LOGIN PASSWORD :'pw';
CREATE DATABASE :"svc" OWNER :"svc";
REVOKE ALL ON DATABASE :"svc" FROM PUBLIC;
SQL
done < "${DB_PASSWORDS_FILE:-/run/secrets/db-passwords}"
