#!/usr/bin/env bash
# A service in another language joins the REST edge by configuration alone: a Python grpcio
# greeter (tests/polyglot/, not in Agora's contracts, with reflection) is named in
# `gateway.upstreams`; `agora up` reads its descriptors from its reflection at start-up, and then
# its HTTP rules are REST routes, its methods pass through the edge over gRPC, the edge's own
# reflection lists it, and /openapi.json documents it, beside Agora's own services.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --quiet -p agora --bin agora
python="$(scripts/lib/python-env.sh)"

passed=0
ok() { echo "edge-polyglot: ok: $1"; passed=$((passed + 1)); }
fail() { echo "edge-polyglot: FAILED: $1" >&2; shift; for extra in "$@"; do echo "$extra" >&2; done; exit 1; }

greeter_log="$(mktemp)"
"$python" tests/polyglot/greeter_server.py 0 >"$greeter_log" 2>&1 &
greeter_pid=$!
for _ in $(seq 1 300); do
  grep -q '^greeter listening on' "$greeter_log" && break
  kill -0 "$greeter_pid" 2>/dev/null || { cat "$greeter_log" >&2; exit 1; }
  sleep 0.1
done
greeter_addr="$(sed -n 's/^greeter listening on //p' "$greeter_log")"
[[ -n "$greeter_addr" ]] || fail "the greeter started" "$(cat "$greeter_log")"

export AGORA_GATEWAY__UPSTREAMS="[{url=\"http://$greeter_addr\"}]"
source scripts/lib/edge-mesh.sh
trap 'stop_mesh; kill -TERM "$greeter_pid" 2>/dev/null; wait "$greeter_pid" 2>/dev/null; rm -rf "$work" "$greeter_log"' EXIT
start_mesh embedded

body="$(curl -sS "$gw/polyglot/v1/greetings/Ada?times=2")"
python3 - "$body" <<'EOF' || fail "GET /polyglot/v1/greetings/Ada reaches the Python service" "$body"
import json, sys
r = json.loads(sys.argv[1])
assert "Ada" in r["greeting"] and r["times"] == 2 and r["servedBy"].startswith("python-grpcio/"), r
EOF
ok "a REST route from the Python service's own HTTP rules answers from Python"

body="$(curl -sS -X POST -H 'content-type: application/json' -d '{"name":"Grace","text":"hello"}' "$gw/polyglot/v1/greetings")"
id="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["greeting"]["greetingId"])' "$body" 2>/dev/null)" \
  || fail "POST /polyglot/v1/greetings records a greeting" "$body"
code="$(curl -sS -o /dev/null -w '%{http_code}' "$gw/polyglot/v1/recorded-greetings/$id")"
[[ "$code" == 200 ]] || fail "the recorded greeting reads back" "$code"
code="$(curl -sS -o "$work/missing" -w '%{http_code}' "$gw/polyglot/v1/recorded-greetings/nope")"
[[ "$code" == 404 ]] && grep -q '"code":5' "$work/missing" || fail "an unknown greeting is 404 with google.rpc.Status" "$code" "$(cat "$work/missing")"
ok "a body route, and the Python service's NOT_FOUND as 404 google.rpc.Status"

code="$(curl -sS -o /dev/null -w '%{http_code}' "$gw/v1/categories")"
[[ "$code" == 200 ]] || fail "Agora's own routes still answer" "$code"
ok "Agora's own routes answer beside it"

curl -fsS "$gw/openapi.json" | python3 -c '
import json, sys
doc = json.load(sys.stdin)
assert "/polyglot/v1/greetings/{name}" in doc["paths"], sorted(doc["paths"])
assert "/v1/products" in doc["paths"]' || fail "/openapi.json documents the Python service's routes"
ok "/openapi.json documents the Python service's routes"

buf="$(scripts/buf.sh --version >/dev/null && echo .tools/node_modules/.bin/buf)"
services="$("$buf" curl --http2-prior-knowledge --protocol grpc --list-services "$gw")"
grep -qx 'polyglot.greeter.v1.GreeterService' <<<"$services" && grep -qx 'agora.product.v1.ProductService' <<<"$services" \
  || fail "the edge's reflection lists the Python service and Agora's" "$services"
ok "the edge's own reflection lists the Python service beside Agora's"
answer="$("$buf" curl --http2-prior-knowledge --protocol grpc -d '{"name":"Linus"}' "$gw/polyglot.greeter.v1.GreeterService/Greet")"
grep -q 'Linus' <<<"$answer" || fail "a gRPC call through the edge reaches Python" "$answer"
ok "a native gRPC call to the edge passes through to Python"

echo "edge-polyglot: $passed passed, 0 failed"
