#!/usr/bin/env bash
# The README's walkthrough, run for real: starts `agora up` on the embedded default (a temporary
# data directory, a free port), then uses `buf curl` with server reflection to list the services,
# check health, register, log in, refresh and fetch the JWKS. Fails on the first wrong answer.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --quiet -p agora --bin agora
buf() { "$root/scripts/buf.sh" "$@"; }
buf --version >/dev/null

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
AGORA_DATA_DIR="$work" AGORA_SERVICES__AUTH__PORT="$port" AGORA_LOG__FILTER=warn \
  "$root/target/debug/agora" up >"$work/up.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT

url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  "$root/target/debug/agora" health "127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.1
done

call() { buf curl --http2-prior-knowledge --protocol grpc "$@"; }
expect() { # expect <what> <python expression over `r`> <json>
  if ! python3 -c "import json,sys; r=json.loads(sys.argv[2]); sys.exit(0 if ($1) else 1)" "$1" "$3"; then
    echo "e2e: FAILED: $2" >&2
    echo "$3" >&2
    exit 1
  fi
  echo "e2e: ok: $2"
  passed=$((passed + 1))
}
passed=0

services="$(buf curl --http2-prior-knowledge --protocol grpc --list-services "$url")"
echo "$services" | grep -qx "agora.auth.v1.AuthService" || { echo "e2e: FAILED: reflection lists AuthService: $services" >&2; exit 1; }
echo "$services" | grep -qx "grpc.health.v1.Health" || { echo "e2e: FAILED: reflection lists Health: $services" >&2; exit 1; }
echo "e2e: ok: reflection lists the auth and health services"
passed=$((passed + 1))

expect 'r["status"] == "SERVING"' "health is SERVING" \
  "$(call -d '{"service":"agora.auth.v1.AuthService"}' "$url/grpc.health.v1.Health/Check")"

email="ada.$RANDOM$RANDOM@example.com"
registered="$(call -d "{\"email\":\"$email\",\"password\":\"correct horse 7\"}" "$url/agora.auth.v1.AuthService/Register")"
expect 'len(r["userId"]) == 36 and r["tokens"]["tokenType"] == "Bearer"' "register" "$registered"

logged_in="$(call -d "{\"email\":\"$email\",\"password\":\"correct horse 7\"}" "$url/agora.auth.v1.AuthService/Login")"
expect 'r["tokens"]["accessToken"].count(".") == 2' "login" "$logged_in"
refresh_token="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokens"]["refreshToken"])' "$logged_in")"
access_token="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokens"]["accessToken"])' "$logged_in")"

refreshed="$(call -d "{\"refreshToken\":\"$refresh_token\"}" "$url/agora.auth.v1.AuthService/Refresh")"
expect "r['tokens']['refreshToken'] != '$refresh_token'" "refresh rotates the token" "$refreshed"

expect 'r["keys"][0]["kty"] == "OKP" and r["keys"][0]["alg"] == "EdDSA"' "JWKS" \
  "$(call "$url/agora.auth.v1.AuthService/GetJwks")"

expect 'len(r["sessions"]) == 2' "a signed-in call with the access token" \
  "$(call -H "Authorization: Bearer $access_token" "$url/agora.auth.v1.AuthService/ListSessions")"

if call "$url/agora.auth.v1.AuthService/ListSessions" >"$work/anon.out" 2>&1; then
  echo "e2e: FAILED: ListSessions without a token succeeded" >&2
  exit 1
fi
grep -qi "unauthenticated" "$work/anon.out" || { cat "$work/anon.out" >&2; exit 1; }
echo "e2e: ok: no token, no sessions (unauthenticated)"
passed=$((passed + 1))
echo "e2e: $passed passed, 0 failed"
