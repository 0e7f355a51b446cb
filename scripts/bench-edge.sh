#!/usr/bin/env bash
# What the edge costs, measured in one run. The distributed mesh (`agora serve <svc>` per process
# on fresh PostgreSQL databases and Redis, `agora serve gateway` on its own) runs pinned to core 0;
# h2load (nghttp2-client, installed here if missing) runs pinned to core 1 and sends GetProduct,
# the same product each time, at the same concurrency along every path:
#
#   grpc-direct     gRPC over h2c straight to the product service (the floor)
#   rest-h1         GET /v1/products/{id} through the gateway over HTTP/1.1 keep-alive
#   rest-h2c        the same over h2c
#   grpc-edge       gRPC passthrough through the gateway (h2c)
#   grpc-web-edge   gRPC-Web (binary) through the gateway over HTTP/1.1
#   floor-http      a bare axum server answering the same product JSON over HTTP/1.1, nothing
#                   else (testkit's `floor`): the least any HTTP/1.1 answer costs here
#   floor-proxy     the same, but each request first calls GetProduct on the product service
#                   over one HTTP/2 connection with hyper's client: the least any REST-to-gRPC
#                   proxy costs here, with nothing of the edge (no transcoding, checks, tracing)
#
# For each it prints requests/s, p50 and p99 latency, and the CPU microseconds per request of
# the gateway process (for the floors, the floor's process) and of the product process (utime + stime from /proc/<pid>/stat over the
# timed run, divided by the requests answered). Every feature of the edge stays on: auth, rate
# limits (with a budget the bench cannot reach, so their cost is counted), CORS, request ids,
# tracing.
#
#   scripts/bench-edge.sh [--seconds N] [--connections N] [--streams N] [--paths a,b]
#                         [--json out.json] [--compare earlier.json] [--bin path/to/agora]
#                         [--metrics-cost] [--rounds N]
#
# --json writes the figures; --compare prints each figure beside an earlier run's and the change.
# --metrics-cost measures what the metrics cost: the mesh runs with metrics on (the default:
# every instrument recording, as in production) and then again with `telemetry.metrics = false`
# (no-op instruments), each path timed on both, and it prints the CPU per request of each beside
# the other and the difference; --rounds N alternates on and off N times (default 1) and adds
# the rounds up, which evens out a machine whose speed drifts. The floors take no part in it.
# The mesh is this checkout's release build, or the `agora` binary given by --bin (an earlier
# build kept aside, to measure a change before and after on the same machine in one sitting). Needs PostgreSQL and Redis (AGORA_TEST_POSTGRES_URL,
# AGORA_TEST_REDIS_URL) as the distributed mesh does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=10 connections=32 streams=1
paths="grpc-direct,rest-h1,rest-h2c,grpc-edge,grpc-web-edge,floor-http,floor-proxy"
json_out="" compare="" bin="" metrics_cost="" rounds=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --streams) streams="$2"; shift 2 ;;
    --paths) paths="$2"; shift 2 ;;
    --json) json_out="$(realpath -m "$2")"; shift 2 ;;
    --compare) compare="$(realpath "$2")"; shift 2 ;;
    --bin) bin="$(realpath "$2")"; shift 2 ;;
    --metrics-cost) metrics_cost=1; shift ;;
    --rounds) rounds="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-edge: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ "$(nproc)" -lt 2 ]]; then
  echo "bench-edge: needs two cores (the mesh on one, the load on the other)" >&2; exit 1
fi

if ! command -v h2load >/dev/null; then
  apt-get install -y -qq nghttp2-client >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nghttp2-client >/dev/null; }
fi
if [[ -z "$bin" ]]; then
  cargo build --quiet --release -p agora --bin agora
  bin="$PWD/target/release/agora"
fi
floor_bin="$PWD/target/release/floor"
[[ -n "$metrics_cost" ]] || cargo build --quiet --release -p agora-testkit --bin floor
export EDGE_AGORA_BIN="$bin" EDGE_PIN=0
export AGORA_GATEWAY__RATE_LIMIT__REQUESTS=1000000000
source scripts/lib/edge-mesh.sh
method=/agora.product.v1.ProductService/GetProduct
grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers')
web_headers=(-H 'content-type: application/grpc-web+proto' -H 'x-grpc-web: 1')

# Every path must answer correctly before it is timed: a benchmark of errors measures nothing.
check_grpc() { # check_grpc <url> <curl args...>: the call answers grpc-status 0 (in headers or trailers)
  local url="$1"; shift
  curl -sS "$@" --data-binary "@$work/get.grpc" -D "$work/check.headers" -o "$work/check.body" "$url"
  grep -qai 'grpc-status: *0' "$work/check.headers" "$work/check.body" \
    || { echo "bench-edge: $url does not answer grpc-status 0" >&2; cat "$work/check.headers" >&2; exit 1; }
}

declare -A floor_pid=()
# Starts the mesh (and, unless metrics are being costed, the floors) and checks every path.
prepare() {
  start_mesh distributed
  gateway_pid="${mesh_pid[gateway]}" product_pid="${mesh_pid[product]}"
  id="$(curl -fsS "$gw/v1/products?pageSize=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["products"][0]["id"])')"
  # The gRPC request: a 5-byte frame header, then GetProductRequest{product_id = 1}; gRPC-Web
  # (binary) frames its body the same way.
  python3 - "$id" "$work/get.grpc" <<'EOF2'
import struct, sys
product_id = sys.argv[1].encode()
message = b"\x0a" + bytes([len(product_id)]) + product_id
open(sys.argv[2], "wb").write(b"\x00" + struct.pack(">I", len(message)) + message)
EOF2
  curl -fsS "$gw/v1/products/$id" | grep -q "\"id\":\"$id\"" || { echo "bench-edge: REST GetProduct does not return the product" >&2; exit 1; }
  curl -fsS --http2-prior-knowledge "$gw/v1/products/$id" | grep -q "\"id\":\"$id\"" || { echo "bench-edge: REST over h2c fails" >&2; exit 1; }
  check_grpc "http://$grpc_product$method" --http2-prior-knowledge "${grpc_headers[@]}"
  check_grpc "$gw$method" --http2-prior-knowledge "${grpc_headers[@]}"
  check_grpc "$gw$method" --http1.1 "${web_headers[@]}"
  [[ -n "$metrics_cost" ]] && return 0

  floor_pid=()
  # The floors, on core 0 beside the mesh, answering the product JSON the edge returns.
  curl -fsS "$gw/v1/products/$id" >"$work/product.json"
  floor_http="127.0.0.1:$(free_port)" floor_proxy="127.0.0.1:$(free_port)"
  taskset -c 0 "$floor_bin" --listen "$floor_http" --body "$work/product.json" &
  mesh_pids+=($!); floor_pid[floor-http]=$!
  taskset -c 0 "$floor_bin" --listen "$floor_proxy" --body "$work/product.json" \
    --upstream "$grpc_product" --call "$method" --message "$work/get.grpc" &
  mesh_pids+=($!); floor_pid[floor-proxy]=$!
  local url
  for url in "http://$floor_http" "http://$floor_proxy"; do
    for _ in $(seq 1 50); do curl -fsS "$url/" -o /dev/null 2>/dev/null && break; sleep 0.1; done
    curl -fsS "$url/v1/products/$id" | grep -q "\"id\":\"$id\"" || { echo "bench-edge: $url does not answer the product" >&2; exit 1; }
  done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # run <path> <h2load args...>: times <path>, recorded as $label
  local path="$1" name="$label"; shift
  local front="${floor_pid[$path]:-$gateway_pid}"
  # Warm up (connections, caches, JIT-free but allocator and pools), then the timed run.
  taskset -c 1 h2load --duration=2 -c "$connections" -m "$streams" -t 1 "$@" >/dev/null
  local gw0 pr0 gw1 pr1
  gw0="$(cpu_ticks "$front")" pr0="$(cpu_ticks "$product_pid")"
  taskset -c 1 h2load --duration="$seconds" -c "$connections" -m "$streams" -t 1 \
    --log-file="$work/$name.$round.log" "$@" >"$work/$name.out"
  gw1="$(cpu_ticks "$front")" pr1="$(cpu_ticks "$product_pid")"
  echo "$name $((gw1 - gw0)) $((pr1 - pr0))" >>"$work/cpu"
  grep -E '^(requests:|status codes:)' "$work/$name.out" | sed "s/^/  $name: /" >&2
}

modes=(as-set)
[[ -n "$metrics_cost" ]] && modes=(metrics-on metrics-off)
[[ -n "$metrics_cost" ]] || rounds=1
echo "bench-edge: GetProduct for ${seconds}s per path, $connections connections x $streams streams; mesh on core 0, h2load on core 1" >&2
: >"$work/cpu"
for round in $(seq 1 "$rounds"); do
  for mode in "${modes[@]}"; do
    case "$mode" in
      metrics-on) export AGORA_TELEMETRY__METRICS=true ;;
      metrics-off) export AGORA_TELEMETRY__METRICS=false ;;
    esac
    [[ "$mode" == as-set ]] || echo "bench-edge: round $round, $mode" >&2
    prepare
    for path in ${paths//,/ }; do
      label="$path"
      [[ "$mode" == as-set ]] || label="$path@${mode#metrics-}"
      case "$path" in
        grpc-direct) run "$path" "${grpc_headers[@]}" --data="$work/get.grpc" "http://$grpc_product$method" ;;
        rest-h1) run "$path" --h1 "$gw/v1/products/$id" ;;
        rest-h2c) run "$path" "$gw/v1/products/$id" ;;
        grpc-edge) run "$path" "${grpc_headers[@]}" --data="$work/get.grpc" "$gw$method" ;;
        grpc-web-edge) run "$path" --h1 "${web_headers[@]}" --data="$work/get.grpc" "$gw$method" ;;
        floor-http|floor-proxy)
          [[ -z "$metrics_cost" ]] || { echo "bench-edge: the floors have no metrics to cost; leave $path out" >&2; exit 2; }
          if [[ "$path" == floor-http ]]; then run "$path" --h1 "http://$floor_http/v1/products/$id"
          else run "$path" --h1 "http://$floor_proxy/v1/products/$id"; fi ;;
        *) echo "bench-edge: unknown path $path" >&2; exit 2 ;;
      esac
    done
    stop_mesh
  done
done

python3 - "$work" "$seconds" "$(getconf CLK_TCK)" "$json_out" "$compare" "$connections" "$streams" "$rounds" <<'EOF'
import glob, json, sys
work, seconds, tck, json_out, compare, connections, streams, rounds = sys.argv[1:]
seconds, tck = float(seconds) * int(rounds), int(tck)
# Each line is one timed run of a path (one per round): its CPU ticks are added up.
cpu = {}
for line in open(f"{work}/cpu"):
    name, gw, pr = line.split()
    before = cpu.get(name, (0, 0))
    cpu[name] = (before[0] + int(gw), before[1] + int(pr))
figures = {}
for name, (gw_ticks, pr_ticks) in cpu.items():
    rows = [line.split("\t") for log in sorted(glob.glob(f"{work}/{name}.*.log"))
            for line in open(log) if line.strip()]
    ok = sorted(int(r[2]) for r in rows if r[1] == "200")
    if not rows or len(ok) < len(rows):
        sys.exit(f"bench-edge: {name}: {len(rows) - len(ok)} of {len(rows)} requests did not answer 200")
    pick = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] / 1000.0
    per_request = lambda ticks: int(ticks) * 1e6 / tck / len(ok)
    figures[name] = {
        "requests_per_s": round(len(ok) / seconds),
        "p50_ms": round(pick(0.50), 3),
        "p99_ms": round(pick(0.99), 3),
        "gateway_cpu_us": None if name.startswith("grpc-direct") else round(per_request(gw_ticks), 1),
        "product_cpu_us": round(per_request(pr_ticks), 1),
    }
earlier = json.load(open(compare))["paths"] if compare else {}
columns = [("requests_per_s", "req/s", "{:.0f}"), ("p50_ms", "p50 ms", "{:.2f}"), ("p99_ms", "p99 ms", "{:.2f}"),
           ("gateway_cpu_us", "gateway us/req", "{:.1f}"), ("product_cpu_us", "product us/req", "{:.1f}")]
def cell(value, fmt):
    return "-" if value is None else fmt.format(value)
print(f"{'path':15}" + "".join(f"{title:>16}" for _, title, _ in columns))
for name, row in figures.items():
    print(f"{name:15}" + "".join(f"{cell(row[key], fmt):>16}" for key, _, fmt in columns))
    before = earlier.get(name)
    if before:
        print(f"{'  before':15}" + "".join(f"{cell(before.get(key), fmt):>16}" for key, _, fmt in columns))
        def change(key):
            a, b = before.get(key), row[key]
            return "-" if a in (None, 0) or b is None else f"{(b - a) / a:+.0%}"
        print(f"{'  change':15}" + "".join(f"{change(key):>16}" for key, _, _ in columns))
if "rest-h1" in figures and "floor-proxy" in figures:
    print(f"the floor of a bare REST-to-gRPC proxy here: {figures['floor-proxy']['gateway_cpu_us']} us per request "
          f"(a bare HTTP/1.1 answer: {figures.get('floor-http', {}).get('gateway_cpu_us', '-')} us)")
if "rest-h1" in figures and "grpc-direct" in figures:
    rest, direct = figures["rest-h1"], figures["grpc-direct"]
    print(f"REST over HTTP/1.1 keeps {rest['requests_per_s'] / direct['requests_per_s']:.0%} of direct gRPC throughput; "
          f"the gateway spends {rest['gateway_cpu_us']} us per REST GetProduct (aim: at most 35, product {rest['product_cpu_us']})")
costed = [name[:-3] for name in figures if name.endswith("@on") and f"{name[:-3]}@off" in figures]
if costed:
    print(f"what the metrics cost (on: every instrument recording; off: telemetry.metrics = false), "
          f"{rounds} round(s) of {seconds / int(rounds):.0f}s each:")
    print(f"{'path':15}{'us/req on':>12}{'us/req off':>12}{'cost':>9}{'req/s on':>11}{'req/s off':>11}")
    for path in costed:
        on, off = figures[f"{path}@on"], figures[f"{path}@off"]
        total = lambda row: (row["gateway_cpu_us"] or 0) + row["product_cpu_us"]
        cost = (total(on) - total(off)) / total(off)
        print(f"{path:15}{total(on):>12.1f}{total(off):>12.1f}{cost:>+9.1%}"
              f"{on['requests_per_s']:>11}{off['requests_per_s']:>11}")
    print("us/req: CPU microseconds per request of the gateway and the product process together "
          "(the product alone for grpc-direct)")
if json_out:
    json.dump({"seconds": seconds, "connections": int(connections), "streams": int(streams), "paths": figures},
              open(json_out, "w"), indent=2)
    print(f"figures written to {json_out}")
EOF
