#!/usr/bin/env bash
# Run once by the postgres image on an empty data directory: one database and one login role per
# service, each owning only its own database, so a service cannot read another's tables.
set -euo pipefail
while read -r service password; do
  [[ -n "$service" ]] || continue
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v svc="$service" -v pw="$password" <<'SQL'
CREATE ROLE :"svc" LOGIN PASSWORD :'pw';
CREATE DATABASE :"svc" OWNER :"svc";
REVOKE ALL ON DATABASE :"svc" FROM PUBLIC;
SQL
done < "${DB_PASSWORDS_FILE:-/run/secrets/db-passwords}"
