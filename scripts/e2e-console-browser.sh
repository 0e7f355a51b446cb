#!/usr/bin/env bash
# The console (/console) in a real browser while traffic flows. `agora up` runs in a temporary
# data directory; headless Chromium (Debian's package) opens the console it prints (open on
# loopback, so no token) once idle and once under load: GetProduct answered OK through the REST
# edge, and ListProducts sent a message that is not protobuf, which the product service answers
# INTERNAL. The rendered page must show the five services, a request rate above zero for
# GetProduct, and ListProducts marked failing. Screenshots of both moments go to
# target/console-screenshots/ (their paths are printed). The console's access without loopback
# (401 without a token, 200 with an admin's) is tested in Rust: gateway/tests/gateway/console.rs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v chromium >/dev/null; then
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
cargo build --quiet -p agora --bin agora
shots="$PWD/target/console-screenshots"
mkdir -p "$shots"

# Its own metrics port, so another `agora up` on this machine does not matter.
source scripts/lib/edge-mesh.sh
export AGORA_TELEMETRY__METRICS_ADDR="127.0.0.1:$(free_port)"
start_mesh embedded

console="$(grep -o 'http://[^ ]*/console' "$work/up.log" | head -1)"
[[ "$console" == "$gw/console" ]] || { echo "console: FAILED: agora up printed no console URL ($console)" >&2; cat "$work/up.log" >&2; exit 1; }
passed=1
echo "console: ok: agora up prints the console at $console"

browse() { # browse <chromium flags...>: the console after a few seconds of its live updates
  timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$work/chromium-$RANDOM" --window-size=1280,1800 --virtual-time-budget=6000 \
    "$@" "$console" 2>>"$work/chromium.log"
}

browse --screenshot="$shots/console-idle.png" >/dev/null
echo "console: screenshot (idle): $shots/console-idle.png"

# Load for the next ~25 s: GetProduct through the edge, and ListProducts with a body that is not
# a ListProductsRequest (a gRPC frame of two bytes that are no protobuf field) to the service.
product_id="$(curl -fsS "$gw/v1/products?pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["products"][0]["id"])')"
printf '\x00\x00\x00\x00\x02\xff\xff' >"$work/garbage.bin"
load() {
  local end=$((SECONDS + 25))
  while ((SECONDS < end)) && [[ ! -e "$work/stop-load" ]]; do
    curl -fsS -o /dev/null "$gw/v1/products/$product_id"
    curl -sS -o /dev/null --http2-prior-knowledge -H 'content-type: application/grpc' -H 'te: trailers' \
      --data-binary @"$work/garbage.bin" "http://$grpc_product/agora.product.v1.ProductService/ListProducts"
    sleep 0.05
  done
}
load &
load_pid=$!
mesh_pids+=("$load_pid")
# Two readings of the console (every 2 s) with the load in them.
sleep 5

browse --dump-dom >"$work/dom.html"
python3 - "$work/dom.html" <<'PY' || { echo "console: FAILED: the page under load" >&2; tail -20 "$work/chromium.log" >&2; exit 1; }
import re, sys
dom = open(sys.argv[1]).read()
shown = set(re.findall(r'<article[^>]*data-service="([a-z]+)"', dom))
assert {"auth", "user", "product", "inventory", "order"} <= shown, f"the five services: {shown}"
assert int(re.search(r'data-snapshots="(\d+)"', dom).group(1)) >= 1, "a snapshot was drawn"
get = re.search(r'<tr[^>]*data-method="GetProduct"[^>]*>', dom)
assert get, "GetProduct is listed"
rate = float(re.search(r'data-rate="([0-9.e+-]+)"', get.group(0)).group(1))
assert rate > 0, f"GetProduct's rate {rate}"
assert 'data-failing="false"' in get.group(0), "GetProduct succeeds"
listing = re.search(r'<tr[^>]*data-method="ListProducts"[^>]*>(.*?)</tr>', dom, re.S)
assert listing and 'data-failing="true"' in listing.group(0), "ListProducts is marked failing"
assert "failing" in re.sub(r"<[^>]+>", " ", listing.group(1)), "and says so in words"
print(f"GetProduct at {rate:.2f}/s")
PY
echo "console: ok: the page shows the five services, GetProduct's rate above zero, and ListProducts failing"
passed=$((passed + 1))

browse --screenshot="$shots/console-load.png" >/dev/null
echo "console: screenshot (under load): $shots/console-load.png"
# Stopped between calls, so no call is cut off by the mesh stopping.
touch "$work/stop-load"
wait "$load_pid" 2>/dev/null || true
[[ -s "$shots/console-idle.png" && -s "$shots/console-load.png" ]] || { echo "console: FAILED: a screenshot is missing" >&2; exit 1; }
echo "console: $passed passed, 0 failed"
