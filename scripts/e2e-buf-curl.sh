#!/usr/bin/env bash
# The README's walkthrough, run for real: starts `agora up` on the embedded default (a temporary
# data directory, free ports), then uses `buf curl` with server reflection to list the services,
# check health, register, log in, refresh, fetch the JWKS, read the new profile, browse the demo
# catalog, check stock and restock as the administrator. Fails on the first wrong answer.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cargo build --quiet -p agora --bin agora
buf() { "$root/scripts/buf.sh" "$@"; }
buf --version >/dev/null

work="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)" user_port="$(free_port)" product_port="$(free_port)" inventory_port="$(free_port)"
AGORA_DATA_DIR="$work" AGORA_LOG__FILTER=warn \
  AGORA_SERVICES__AUTH__PORT="$port" AGORA_SERVICES__USER__PORT="$user_port" \
  AGORA_SERVICES__PRODUCT__PORT="$product_port" AGORA_SERVICES__INVENTORY__PORT="$inventory_port" \
  "$root/target/debug/agora" up >"$work/up.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT

url="http://127.0.0.1:$port"
users="http://127.0.0.1:$user_port"
products="http://127.0.0.1:$product_port"
inventory="http://127.0.0.1:$inventory_port"
# `up` prints "Ready." once every service is SERVING and the demo catalog is loaded.
for _ in $(seq 1 600); do
  grep -q '^Ready\.' "$work/up.log" && break
  kill -0 $pid 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
  sleep 0.1
done
grep -q '^Ready\.' "$work/up.log" || { echo "e2e: FAILED: agora up never got ready" >&2; cat "$work/up.log" >&2; exit 1; }

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

# The user service made the profile from auth's UserRegistered event (asynchronously).
for _ in $(seq 1 100); do
  profile="$(call -H "Authorization: Bearer $access_token" "$users/agora.user.v1.UserService/GetMyProfile" 2>/dev/null)" && break
  sleep 0.1
done
expect "r['profile']['email'] == '$email'" "the new account has a profile" "$profile"

expect 'len(r["categories"]) == 5 and all(int(c["productCount"]) == 6 for c in r["categories"])' \
  "the demo catalog has five categories" \
  "$(call "$products/agora.product.v1.ProductService/ListCategories")"

page="$(call -d '{"category":"coffee","pageSize":3}' "$products/agora.product.v1.ProductService/ListProducts")"
expect 'len(r["products"]) == 3 and r["nextPageToken"] and all(p["category"] == "coffee" for p in r["products"])' \
  "browse a category, a page at a time" "$page"
ids="$(python3 -c 'import json,sys; print(json.dumps([p["id"] for p in json.loads(sys.argv[1])["products"]]))' "$page")"
first="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0])' "$ids")"

expect 'len(r["stockLevels"]) == 3 and all(int(s["available"]) > 0 for s in r["stockLevels"])' \
  "check stock of those products" \
  "$(call -d "{\"productIds\":$ids}" "$inventory/agora.inventory.v1.InventoryService/BatchGetStock")"

admin_token="$(call -d "{\"email\":\"admin@agora.local\",\"password\":\"$(cat "$work/admin-password")\"}" \
  "$url/agora.auth.v1.AuthService/Login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"]["accessToken"])')"
before="$(call -d "{\"productId\":\"$first\"}" "$inventory/agora.inventory.v1.InventoryService/GetStock")"
on_hand="$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["stockLevel"]["onHand"]))' "$before")"
expect "int(r['stockLevel']['onHand']) == $on_hand + 12" "the administrator restocks" \
  "$(call -H "Authorization: Bearer $admin_token" \
      -d "{\"productId\":\"$first\",\"delta\":12,\"reason\":\"ADJUSTMENT_REASON_RESTOCK\",\"note\":\"delivery 42\"}" \
      "$inventory/agora.inventory.v1.InventoryService/AdjustStock")"
expect "r['movements'][0]['note'] == 'delivery 42'" "the ledger explains the change" \
  "$(call -H "Authorization: Bearer $admin_token" -d "{\"productId\":\"$first\"}" \
      "$inventory/agora.inventory.v1.InventoryService/ListMovements")"

if call -H "Authorization: Bearer $access_token" -d "{\"productId\":\"$first\",\"delta\":1,\"reason\":\"ADJUSTMENT_REASON_RESTOCK\"}" \
    "$inventory/agora.inventory.v1.InventoryService/AdjustStock" >"$work/user-adjust.out" 2>&1; then
  echo "e2e: FAILED: a customer adjusted stock" >&2
  exit 1
fi
grep -qi "permission_denied" "$work/user-adjust.out" || { cat "$work/user-adjust.out" >&2; exit 1; }
echo "e2e: ok: a customer may not adjust stock (permission_denied)"
passed=$((passed + 1))
echo "e2e: $passed passed, 0 failed"
