#!/usr/bin/env bash
# What the REST edge costs: in one run, h2load (nghttp2-client, installed here if missing) sends
# GetProduct at the same concurrency twice, over h2c both times:
#   1. REST: GET /v1/products/{id} through the gateway (routing, auth, rate limit, JSON);
#   2. gRPC: /agora.product.v1.ProductService/GetProduct straight to the product service;
# and prints requests/s, p50 and p99 of each and the ratios. Aim: the edge keeps at least 50% of
# the direct throughput and adds under 1 ms at p50.
#
#   scripts/bench-edge.sh [seconds per run, default 10] [clients, default 8] [streams per client, default 4]
#
# A release build of `agora up` (embedded default); the gateway's rate limiter stays on, with a
# budget the bench cannot reach, so its cost is in the figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
duration="${1:-10}" clients="${2:-8}" streams="${3:-4}"

if ! command -v h2load >/dev/null; then
  apt-get install -y -qq nghttp2-client >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
fi
cargo build --quiet --release -p agora --bin agora
export EDGE_AGORA_BIN="$PWD/target/release/agora"
export AGORA_GATEWAY__RATE_LIMIT__REQUESTS=1000000000
source scripts/edge-mesh.sh
start_mesh embedded

id="$(curl -fsS "$gw/v1/products?pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["products"][0]["id"])')"
# The gRPC request: a 5-byte frame header, then GetProductRequest{product_id = 1}.
python3 - "$id" "$work/get.grpc" <<'EOF'
import struct, sys
product_id = sys.argv[1].encode()
message = b"\x0a" + bytes([len(product_id)]) + product_id
open(sys.argv[2], "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
EOF
grpc_url="http://$grpc_product/agora.product.v1.ProductService/GetProduct"
grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers')

# Both must answer correctly before they are timed: a benchmark of errors measures nothing.
curl -fsS "$gw/v1/products/$id" | grep -q "\"id\":\"$id\"" || { echo "bench: the REST call does not return the product" >&2; exit 1; }
curl -sS --http2-prior-knowledge "${grpc_headers[@]}" --data-binary "@$work/get.grpc" -D "$work/grpc.headers" -o /dev/null "$grpc_url"
grep -qi '^grpc-status: *0' "$work/grpc.headers" || { echo "bench: the gRPC call fails" >&2; cat "$work/grpc.headers" >&2; exit 1; }

run() { # run <name> <h2load args...>
  local name="$1"; shift
  h2load --duration="$duration" --warm-up-time=2 -c "$clients" -m "$streams" -t 1 \
    --log-file="$work/$name.log" "$@" >"$work/$name.out"
  grep -E '^(finished in|requests:|status codes:)' "$work/$name.out" | sed "s/^/  $name: /" >&2
}
echo "bench: GetProduct for ${duration}s each, $clients connections x $streams streams, h2c" >&2
run rest "$gw/v1/products/$id"
run grpc "${grpc_headers[@]}" --data="$work/get.grpc" "$grpc_url"

python3 - "$work" "$duration" <<'EOF'
import sys
work, duration = sys.argv[1], float(sys.argv[2])
def stats(name):
    rows = [line.split("\t") for line in open(f"{work}/{name}.log") if line.strip()]
    ok = sorted(int(r[2]) for r in rows if r[1] == "200")
    if len(ok) < len(rows):
        sys.exit(f"bench: {name}: {len(rows) - len(ok)} of {len(rows)} requests did not answer 200")
    pick = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] / 1000.0
    return len(ok) / duration, pick(0.50), pick(0.99)
rest, grpc = stats("rest"), stats("grpc")
print(f"{'':28}{'requests/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
print(f"{'REST via the gateway':28}{rest[0]:>12.0f}{rest[1]:>10.2f}{rest[2]:>10.2f}")
print(f"{'gRPC straight to product':28}{grpc[0]:>12.0f}{grpc[1]:>10.2f}{grpc[2]:>10.2f}")
ratio = rest[0] / grpc[0]
added = rest[1] - grpc[1]
print(f"throughput kept by the edge: {ratio:.0%} (aim >= 50%); added p50: {added:.2f} ms (aim < 1 ms); added p99: {rest[2] - grpc[2]:.2f} ms")
EOF
