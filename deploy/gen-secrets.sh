#!/usr/bin/env bash
# Generates the secrets docker-compose mounts (never committed: deploy/secrets/ is ignored):
#   postgres-password       the PostgreSQL superuser's password
#   db-passwords            "<service> <password>" lines, read by postgres/init-databases.sh
#   <service>.toml          each container's own settings file (AGORA_CONFIG): its database URL,
#                           its service secret, and for auth the clients' secrets, the JWT signing
#                           key and the administrator.
# Existing files are kept, so re-running never changes a password a database already has.
set -euo pipefail
out="${1:-$(dirname "${BASH_SOURCE[0]}")/secrets}"
mkdir -p "$out"
chmod 700 "$out"
services=(auth user product inventory order)
callers=(auth user product inventory order gateway)
random() { head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32; }

[[ -s "$out/postgres-password" ]] || random > "$out/postgres-password"
if [[ ! -s "$out/db-passwords" ]]; then
  for s in "${services[@]}"; do echo "$s $(random)"; done > "$out/db-passwords"
fi
if [[ ! -s "$out/service-secrets" ]]; then
  for s in "${callers[@]}"; do echo "$s $(random)"; done > "$out/service-secrets"
fi
db_password() { awk -v s="$1" '$1 == s { print $2 }' "$out/db-passwords"; }
service_secret() { awk -v s="$1" '$1 == s { print $2 }' "$out/service-secrets"; }

for s in "${callers[@]}"; do
  file="$out/$s.toml"
  [[ -s "$file" ]] && continue
  {
    echo "service_secret = \"$(service_secret "$s")\""
    if [[ " ${services[*]} " == *" $s "* ]]; then
      echo "[services.$s]"
      echo "database_url = \"postgres://$s:$(db_password "$s")@postgres:5432/$s\""
    fi
    if [[ "$s" == auth ]]; then
      echo "[auth]"
      echo "admin_email = \"admin@agora.local\""
      echo "admin_password = \"$(random)\""
      if command -v openssl > /dev/null; then
        echo "signing_key_pem = \"\"\""
        openssl genpkey -algorithm ed25519
        echo "\"\"\""
      fi
      echo "[auth.service_clients]"
      for c in "${callers[@]}"; do echo "$c = \"$(service_secret "$c")\""; done
    fi
  } > "$file"
done
chmod 644 "$out"/*
echo "secrets in $out"
