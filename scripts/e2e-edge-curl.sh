#!/usr/bin/env bash
# The REST edge, end to end with curl through the real mesh: browse the catalog, register, log
# in, read the new profile, place an order, watch it (newline-delimited JSON and Server-Sent
# Events) and cancel it; then what the edge owns: errors as google.rpc.Status with the request id,
# 401 with WWW-Authenticate, 403, 404, 405 with Allow, 400 before the upstream, 413, CORS
# preflight, the sign-in rate limit (429 with Retry-After and RateLimit-*), /healthz, /readyz
# (plain, verbose and /readyz/upstreams), /openapi.json and /docs.
#
#   scripts/e2e-edge-curl.sh [embedded|distributed|both]   (default both)
#
# embedded: `agora up` (SQLite, in-memory bus and counters). distributed: one `agora serve` per
# service, each on its own fresh PostgreSQL database, sharing Redis under this run's key prefix.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
modes="${1:-both}"
[[ "$modes" == both ]] && modes="embedded distributed"
cargo build --quiet -p agora --bin agora

passed=0
ok() { echo "edge-e2e[$mode]: ok: $1"; passed=$((passed + 1)); }
fail() { echo "edge-e2e[$mode]: FAILED: $1" >&2; shift; for extra in "$@"; do echo "$extra" >&2; done; exit 1; }
# expect <python expression over r (the JSON body)> <what> <body>
expect() {
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if ($2) else 1)" "$3" "$2" 2>/dev/null \
    || fail "$1" "$3"
  ok "$1"
}
field() { python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$1" "$2"; }
# call <method> <path> [curl args...]: prints the body; the status goes to $work/status and the
# headers to $work/headers.
call() {
  local method="$1" path="$2"; shift 2
  curl -sS -X "$method" -o "$work/body" -D "$work/headers" -w '%{http_code}' "$@" "$gw$path" >"$work/status"
  cat "$work/body"
}
status() { cat "$work/status"; }
header() { grep -i "^$1:" "$work/headers" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ //'; }

run_mode() {
  mode="$1"
  (
    # A generous general budget (this script is one client); the sign-in budget is the default.
    export AGORA_GATEWAY__CORS__ALLOWED_ORIGINS='["http://shop.test:3000"]'
    export AGORA_GATEWAY__RATE_LIMIT__SIGN_IN_REQUESTS=8
    source scripts/lib/edge-mesh.sh
    start_mesh "$mode"
    json=(-H 'content-type: application/json')

    # --- Browse, anonymously.
    body="$(call GET /v1/categories)"
    [[ "$(status)" == 200 ]] || fail "GET /v1/categories is 200" "$(status)" "$body"
    expect "the demo catalog has five categories" 'len(r["categories"]) == 5' "$body"
    body="$(call GET '/v1/products?category=coffee&pageSize=3')"
    expect "browse a category a page at a time (query parameters by JSON name)" \
      'len(r["products"]) == 3 and r["nextPageToken"] and all(p["category"] == "coffee" for p in r["products"])' "$body"
    first="$(field "$body" 'r["products"][0]["id"]')"
    second="$(field "$body" 'r["products"][1]["id"]')"
    body="$(call GET "/v1/products/$first")"
    expect "read one product by path parameter, price in minor units as an int64 string" \
      "r['product']['id'] == '$first' and isinstance(r['product']['price']['amountMinor'], str)" "$body"
    body="$(call GET "/v1/stock:batchGet?productIds=$first&productIds=$second")"
    expect "stock of two products with a repeated query parameter" 'len(r["stockLevels"]) == 2' "$body"
    available="$(field "$(call GET "/v1/stock/$first")" 'int(r["stockLevel"]["available"])')"

    # --- Register, log in, read the new profile.
    email="ada.$RANDOM$RANDOM@example.com"
    body="$(call POST /v1/auth/register "${json[@]}" -d "{\"email\":\"$email\",\"password\":\"correct horse 7\"}")"
    expect "register" 'len(r["userId"]) == 36 and r["tokens"]["tokenType"] == "Bearer"' "$body"
    body="$(call POST /v1/auth/login "${json[@]}" -d "{\"email\":\"$email\",\"password\":\"correct horse 7\"}")"
    expect "log in" 'r["tokens"]["accessToken"].count(".") == 2' "$body"
    token="$(field "$body" 'r["tokens"]["accessToken"]')"
    auth=(-H "authorization: Bearer $token")
    for _ in $(seq 1 100); do
      body="$(call GET /v1/users/me "${auth[@]}")"
      [[ "$(status)" == 200 ]] && break
      sleep 0.1
    done
    expect "the new account has a profile (made from auth's event)" "r['profile']['email'] == '$email'" "$body"

    # --- Order, watch, cancel.
    key="order-$RANDOM$RANDOM"
    order_body="{\"idempotencyKey\":\"$key\",\"lines\":[{\"productId\":\"$first\",\"quantity\":\"2\"},{\"product_id\":\"$second\",\"quantity\":1}]}"
    body="$(call POST /v1/orders "${json[@]}" "${auth[@]}" -d "$order_body")"
    [[ "$(status)" == 200 ]] || fail "POST /v1/orders is 200" "$(status)" "$body"
    expect "place an order (both field-name spellings, int64 as string or number)" \
      'r["order"]["status"] == "ORDER_STATUS_CONFIRMED" and len(r["order"]["lines"]) == 2 and isinstance(r["order"]["total"]["amountMinor"], str)' "$body"
    order="$(field "$body" 'r["order"]["id"]')"
    body="$(call POST /v1/orders "${json[@]}" "${auth[@]}" -d "$order_body")"
    expect "a retry with the same idempotency key returns the same order" "r['order']['id'] == '$order'" "$body"
    expect "the stock went down by the two units ordered" "int(r['stockLevel']['available']) == $available - 2" \
      "$(call GET "/v1/stock/$first")"

    # Watch in the background (both framings), then cancel: each stream ends with CANCELLED.
    curl -sS -N --max-time 30 "${auth[@]}" "$gw/v1/orders/$order:watch" >"$work/watch.ndjson" &
    ndjson=$!
    curl -sS -N --max-time 30 "${auth[@]}" -H 'accept: text/event-stream' "$gw/v1/orders/$order:watch" >"$work/watch.sse" &
    sse=$!
    for _ in $(seq 1 100); do
      [[ -s "$work/watch.ndjson" && -s "$work/watch.sse" ]] && break
      sleep 0.1
    done
    body="$(call POST "/v1/orders/$order:cancel" "${json[@]}" "${auth[@]}" -d '{"reason":"changed my mind"}')"
    expect "cancel the order (custom verb)" 'r["order"]["status"] == "ORDER_STATUS_CANCELLED" and r["order"]["cancelReason"] == "changed my mind"' "$body"
    wait "$ndjson" || fail "the NDJSON watch stream ended cleanly" "$(cat "$work/watch.ndjson")"
    wait "$sse" || fail "the SSE watch stream ended cleanly" "$(cat "$work/watch.sse")"
    python3 - "$work/watch.ndjson" <<'EOF' || fail "the NDJSON watch saw CONFIRMED then CANCELLED" "$(cat "$work/watch.ndjson")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
states = [l["result"]["order"]["status"] for l in lines]
assert states[0] == "ORDER_STATUS_CONFIRMED" and states[-1] == "ORDER_STATUS_CANCELLED", states
EOF
    ok "watch as newline-delimited JSON: CONFIRMED, then CANCELLED, then the stream ends"
    python3 - "$work/watch.sse" <<'EOF' || fail "the SSE watch saw CANCELLED" "$(cat "$work/watch.sse")"
import json, sys
events = [json.loads(l[len("data:"):]) for l in open(sys.argv[1]) if l.startswith("data:")]
assert events and events[-1]["result"]["order"]["status"] == "ORDER_STATUS_CANCELLED", events
EOF
    ok "watch as Server-Sent Events ends with CANCELLED"
    expect "the cancelled order's stock came back" "int(r['stockLevel']['available']) == $available" \
      "$(call GET "/v1/stock/$first")"
    body="$(call GET "/v1/orders?status=ORDER_STATUS_CANCELLED" "${auth[@]}")"
    expect "list my cancelled orders (enum query parameter by name)" "[o['id'] for o in r['orders']] == ['$order']" "$body"

    # --- What the edge owns.
    body="$(call GET /v1/users/me -H 'x-request-id: edge-e2e-1')"
    [[ "$(status)" == 401 ]] || fail "no token is 401" "$(status)" "$body"
    header www-authenticate | grep -q '^Bearer' || fail "401 carries WWW-Authenticate: Bearer" "$(cat "$work/headers")"
    [[ "$(header x-request-id)" == edge-e2e-1 ]] || fail "the request id comes back" "$(cat "$work/headers")"
    expect "401 with WWW-Authenticate and a google.rpc.Status body" 'r["code"] == 16 and r["message"]' "$body"
    body="$(call GET /v1/users/me -H 'authorization: Bearer not.a.token')"
    [[ "$(status)" == 401 ]] && header www-authenticate | grep -q 'invalid_token' \
      || fail "a bad token is 401 invalid_token" "$(status)" "$(cat "$work/headers")"
    ok "a forged token is 401 with error=\"invalid_token\""
    body="$(call POST "/v1/stock/$first:adjust" "${json[@]}" "${auth[@]}" -d '{"delta":1,"reason":"ADJUSTMENT_REASON_RESTOCK"}')"
    [[ "$(status)" == 403 ]] || fail "a customer adjusting stock is 403" "$(status)" "$body"
    expect "a customer may not adjust stock (403 PERMISSION_DENIED)" 'r["code"] == 7' "$body"
    body="$(call GET /v1/nowhere)"
    [[ "$(status)" == 404 ]] || fail "no route is 404" "$(status)" "$body"
    expect "no route is 404 with a Status body" 'r["code"] == 5' "$body"
    body="$(call DELETE /v1/categories)"
    [[ "$(status)" == 405 ]] && header allow | grep -q GET || fail "a wrong method is 405 with Allow" "$(status)" "$(cat "$work/headers")"
    ok "a wrong method is 405 with Allow: GET"
    body="$(call POST /v1/orders "${json[@]}" "${auth[@]}" -d '{"lines": [')"
    [[ "$(status)" == 400 ]] || fail "malformed JSON is 400" "$(status)" "$body"
    expect "malformed JSON is 400 INVALID_ARGUMENT" 'r["code"] == 3' "$body"
    python3 -c 'print("{\"email\":\"" + "x" * 2100000 + "\"}")' >"$work/big.json"
    body="$(call POST /v1/auth/login "${json[@]}" --data-binary "@$work/big.json")"
    [[ "$(status)" == 413 ]] || fail "a 2 MB body is 413" "$(status)" "$(head -c 300 <<<"$body")"
    expect "a body over the limit is 413 with a Status body" 'r["code"] == 8' "$body"
    call OPTIONS /v1/orders -H 'origin: http://shop.test:3000' -H 'access-control-request-method: POST' \
      -H 'access-control-request-headers: authorization,content-type' >/dev/null
    [[ "$(header access-control-allow-origin)" == "http://shop.test:3000" ]] \
      || fail "a preflight from the configured origin is allowed" "$(status)" "$(cat "$work/headers")"
    ok "CORS preflight answered at the edge for the configured origin"
    call OPTIONS /v1/orders -H 'origin: http://evil.test' -H 'access-control-request-method: POST' >/dev/null
    [[ -z "$(header access-control-allow-origin)" ]] || fail "another origin is not allowed" "$(cat "$work/headers")"
    ok "CORS preflight from another origin gets no permission"
    expect "/healthz" 'r["status"] == "SERVING"' "$(call GET /healthz)"
    expect "/readyz: the edge itself is ready" 'r["status"] == "SERVING"' "$(call GET /readyz)"
    body="$(call GET '/readyz?verbose')"
    expect "/readyz?verbose lists every upstream SERVING with its last check" 'all(u["status"] == "SERVING" and u["lastCheck"] for u in r["upstreams"].values()) and len(r["upstreams"]) >= 5' "$body"
    body="$(call GET /readyz/upstreams)"
    [[ "$(status)" == 200 ]] || fail "/readyz/upstreams is 200 with the whole mesh up" "$(status)" "$body"
    ok "/readyz/upstreams is 200 with the whole mesh up"
    body="$(call GET /openapi.json)"
    expect "/openapi.json is OpenAPI 3.1 with the order routes" 'r["openapi"].startswith("3.1") and "/v1/orders/{order_id}:cancel" in r["paths"]' "$body"
    call GET /docs >/dev/null
    [[ "$(status)" == 200 ]] && grep -q '/openapi.json' "$work/body" || fail "/docs serves the API page" "$(status)"
    ok "/docs serves the API page"

    # The sign-in budget (8 here): failed logins, each for another account (so auth's own
    # per-account throttle stays out of it), until the edge refuses, then 429 + headers.
    for i in $(seq 1 12); do
      call POST /v1/auth/login "${json[@]}" -d "{\"email\":\"nobody.$i.$RANDOM@example.com\",\"password\":\"wrong $i\"}" >/dev/null
      [[ "$(status)" == 429 ]] && break
    done
    [[ "$(status)" == 429 ]] || fail "too many logins are 429" "$(status)" "$(cat "$work/body")"
    [[ "$(header retry-after)" =~ ^[0-9]+$ && "$(header ratelimit-limit)" == 8 && "$(header ratelimit-remaining)" == 0 \
      && "$(header ratelimit-reset)" =~ ^[0-9]+$ ]] || fail "429 carries Retry-After and RateLimit-*" "$(cat "$work/headers")"
    expect "the ninth login in a minute is 429 RESOURCE_EXHAUSTED with Retry-After and RateLimit-*" 'r["code"] == 8' "$(cat "$work/body")"
    body="$(call GET /v1/categories)"
    [[ "$(status)" == 200 ]] || fail "browsing is still allowed (a separate budget)" "$(status)"
    ok "the general budget is separate from the sign-in budget"

    echo "edge-e2e[$mode]: $passed passed, 0 failed"
  )
}

for mode in $modes; do run_mode "$mode"; done
