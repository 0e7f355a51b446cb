#!/usr/bin/env bash
# A real Prometheus scrapes a running mesh, and PromQL through its HTTP API returns exactly the
# traffic sent. Debian's prometheus (installed here, pinned, when missing) starts on a free port
# with a generated scrape configuration (1 s interval) naming every process's /metrics, and
# deploy/prometheus/rules.yml as its rules (each must load and evaluate without error, as must
# every query of the Grafana dashboard, deploy/grafana/dashboards/agora.json). Then a
# known mix goes through the edge: products found, products unknown (404), failed logins, orders.
# After a scrape that follows the traffic, each row of the table below is one PromQL query and
# its answer: the exact value of a counter (the sum of the _count series of a label set:
# increase() extrapolates, a counter's value does not), or `number` for a finite number, which
# histogram_quantile(0.99, ...) over the buckets' values (every call since start: a rate over
# a window may hold a single sample) must answer for every route used.
#
#   scripts/e2e-prometheus.sh [embedded|distributed|both]   (default both)
#
# embedded: `agora up` (SQLite, in-memory bus), one /metrics for all. distributed: `agora serve`
# per service on fresh PostgreSQL databases sharing Redis under a key prefix of this run
# (scripts/lib/edge-mesh.sh), each process with a /metrics port of its own, as in a deployment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
modes="${1:-both}"
[[ "$modes" == both ]] && modes="embedded distributed"
prometheus_version=2.42.0+ds-5+deb12u1
if ! command -v prometheus >/dev/null; then
  install=(apt-get install -y -qq --no-install-recommends "prometheus=$prometheus_version")
  "${install[@]}" >/dev/null 2>&1 || { apt-get update -qq && "${install[@]}" >/dev/null; }
fi
cargo build --quiet -p agora --bin agora
root="$PWD"

# The traffic: how many of each.
found=5 unknown=3 failed_logins=4 orders=3

run_mode() {
  mode="$1"
  (
    passed=0
    ok() { echo "prometheus-e2e[$mode]: ok: $1"; passed=$((passed + 1)); }
    fail() { echo "prometheus-e2e[$mode]: FAILED: $1" >&2; shift; for extra in "$@"; do echo "$extra" >&2; done; exit 1; }
    # Every `agora up` and `agora serve` of the mesh gets a /metrics port of its own, noted in
    # $targets as "<address> <service>" for the scrape configuration.
    bin_dir="$(mktemp -d)"
    targets="$bin_dir/targets"
    cat >"$bin_dir/agora" <<EOF
#!/usr/bin/env bash
if [[ "\$1" == up || "\$1" == serve ]]; then
  port="\$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  echo "127.0.0.1:\$port \${2:-agora}" >>"$targets"
  export AGORA_TELEMETRY__METRICS_ADDR="127.0.0.1:\$port"
fi
exec "$root/target/debug/agora" "\$@"
EOF
    chmod +x "$bin_dir/agora"
    export EDGE_AGORA_BIN="$bin_dir/agora"
    # Enough sign-in budget at the edge for this script's logins.
    export AGORA_GATEWAY__RATE_LIMIT__SIGN_IN_REQUESTS=100
    source scripts/lib/edge-mesh.sh
    trap 'kill "${prometheus_pid:-0}" 2>/dev/null || true; wait "${prometheus_pid:-0}" 2>/dev/null || true; stop_mesh; rm -rf "$work" "$bin_dir"' EXIT
    start_mesh "$mode"

    # --- Prometheus on a free port, scraping every process each second.
    prom_port="$(free_port)"
    prom="http://127.0.0.1:$prom_port"
    python3 - "$targets" "$root/deploy/prometheus/rules.yml" >"$work/prometheus.yml" <<'PY'
import json, sys
targets = [line.split() for line in open(sys.argv[1]) if line.strip()]
config = {
    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
    "rule_files": [sys.argv[2]],
    "scrape_configs": [{"job_name": "agora", "static_configs": [
        {"targets": [address], "labels": {"service": service}} for address, service in targets]}],
}
print(json.dumps(config, indent=2))  # JSON is YAML
PY
    promtool check config "$work/prometheus.yml" >/dev/null || fail "the generated configuration is valid" "$(cat "$work/prometheus.yml")"
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
      --web.listen-address="127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
    prometheus_pid=$!
    for _ in $(seq 1 100); do curl -fsS "$prom/-/ready" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "$prom/-/ready" >/dev/null 2>&1 || fail "prometheus became ready" "$(tail -20 "$work/prometheus.log")"
    expected_targets="$(wc -l <"$targets")"

    # --- The traffic.
    json=(-H 'content-type: application/json')
    products="$(curl -fsS "$gw/v1/products?pageSize=$found")"
    ids=($(python3 -c 'import json,sys; print(" ".join(p["id"] for p in json.loads(sys.argv[1])["products"]))' "$products"))
    [[ ${#ids[@]} == "$found" ]] || fail "the catalog has $found products" "$products"
    code() { curl -sS -o /dev/null -w '%{http_code}' "$@"; }
    for id in "${ids[@]}"; do
      [[ "$(code "$gw/v1/products/$id")" == 200 ]] || fail "GET /v1/products/$id is 200"
    done
    for _ in $(seq 1 "$unknown"); do
      [[ "$(code "$gw/v1/products/$(python3 -c 'import uuid; print(uuid.uuid4())')")" == 404 ]] || fail "an unknown product is 404"
    done
    for i in $(seq 1 "$failed_logins"); do
      [[ "$(code -X POST "$gw/v1/auth/login" "${json[@]}" -d "{\"email\":\"nobody.$i.$RANDOM@example.com\",\"password\":\"wrong $i\"}")" == 401 ]] \
        || fail "a failed login is 401"
    done
    email="prom.$RANDOM$RANDOM@example.com"
    token="$(curl -fsS -X POST "$gw/v1/auth/register" "${json[@]}" -d "{\"email\":\"$email\",\"password\":\"correct horse 7\"}" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"]["accessToken"])')"
    for i in $(seq 1 "$orders"); do
      body="{\"idempotencyKey\":\"prom-$i-$RANDOM$RANDOM\",\"lines\":[{\"productId\":\"${ids[$((i % found))]}\",\"quantity\":1}]}"
      [[ "$(code -X POST "$gw/v1/orders" "${json[@]}" -H "authorization: Bearer $token" -d "$body")" == 200 ]] \
        || fail "order $i is placed"
    done
    ok "traffic sent: $found products found, $unknown unknown, $failed_logins failed logins, $orders orders"

    # --- Wait for a scrape of every target that began after the traffic.
    after="$(date +%s.%N)"
    query() { curl -fsS "$prom/api/v1/query" --data-urlencode "query=$1"; }
    for _ in $(seq 1 100); do
      scraped="$(query "count(timestamp(up{job=\"agora\"} == 1) > $after)" \
        | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')"
      [[ "$scraped" == "$expected_targets" ]] && break
      sleep 0.2
    done
    [[ "$scraped" == "$expected_targets" ]] || fail "every target ($expected_targets) was scraped after the traffic" \
      "$(query 'up')" "$(tail -20 "$work/prometheus.log")"
    ok "all $expected_targets targets scraped after the traffic"

    # --- The table: expected answer, then the PromQL query. `number`: any finite number.
    edge='http_server_request_duration_seconds'
    rpc='rpc_server_call_duration_seconds'
    product='rpc_service="agora.product.v1.ProductService",rpc_method="GetProduct"'
    cat >"$work/table" <<EOF
$expected_targets	sum(up{job="agora"})
$found	sum(${edge}_count{http_route="/v1/products/{product_id}",http_request_method="GET",http_response_status_code="200"})
$unknown	sum(${edge}_count{http_route="/v1/products/{product_id}",http_request_method="GET",http_response_status_code="404"})
$failed_logins	sum(${edge}_count{http_route="/v1/auth/login",http_request_method="POST",http_response_status_code="401"})
1	sum(${edge}_count{http_route="/v1/auth/register",http_request_method="POST",http_response_status_code="200"})
$orders	sum(${edge}_count{http_route="/v1/orders",http_request_method="POST",http_response_status_code="200"})
$((found + unknown + failed_logins + 1 + orders + 1))	sum(${edge}_count{agora_edge_protocol="rest",http_route=~"/v1/.*"})
$found	sum(${rpc}_count{$product,rpc_grpc_status_code="0"})
$unknown	sum(${rpc}_count{$product,rpc_grpc_status_code="5"})
$failed_logins	sum(${rpc}_count{rpc_service="agora.auth.v1.AuthService",rpc_method="Login",rpc_grpc_status_code="16"})
$orders	sum(${rpc}_count{rpc_service="agora.order.v1.OrderService",rpc_method="CreateOrder",rpc_grpc_status_code="0"})
$found	sum(${rpc}_bucket{$product,rpc_grpc_status_code="0",le="+Inf"})
number	histogram_quantile(0.99, sum by (le) (${edge}_bucket{http_route="/v1/products/{product_id}"}))
number	histogram_quantile(0.99, sum by (le) (${edge}_bucket{http_route="/v1/products"}))
number	histogram_quantile(0.99, sum by (le) (${edge}_bucket{http_route="/v1/auth/login"}))
number	histogram_quantile(0.99, sum by (le) (${edge}_bucket{http_route="/v1/auth/register"}))
number	histogram_quantile(0.99, sum by (le) (${edge}_bucket{http_route="/v1/orders"}))
number	histogram_quantile(0.99, sum by (le) (${rpc}_bucket{$product}))
number	histogram_quantile(0.99, sum by (le) (${rpc}_bucket{rpc_method="CreateOrder"}))
EOF
    # The domain's counters: every order confirmed once, every failed login counted once.
    cat >>"$work/table" <<EOF
$orders	sum(agora_orders_total{agora_order_outcome="placed"})
$failed_logins	sum(agora_auth_logins_total{agora_auth_outcome="failed"})
EOF
    python3 - "$prom" "$work/table" "$mode" <<'PY' || fail "the PromQL table"
import json, math, sys, urllib.parse, urllib.request
prom, table, mode = sys.argv[1], sys.argv[2], sys.argv[3]

def query(q):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]

failed = 0
for line in open(table):
    expected, q = line.rstrip("\n").split("\t", 1)
    result = query(q)
    got = result[0]["value"][1] if len(result) == 1 else f"{len(result)} series"
    good = (expected == "number" and len(result) == 1 and math.isfinite(float(got))) or \
        (expected != "number" and len(result) == 1 and float(got) == float(expected))
    print(f"prometheus-e2e[{mode}]: {'ok' if good else 'FAILED'}: {q} = {got} (expected {expected})")
    failed += not good
sys.exit(1 if failed else 0)
PY
    passed=$((passed + $(wc -l <"$work/table")))

    # --- The project's rules loaded and evaluate against the real series without error.
    python3 - "$prom" <<'PY' || fail "the rules of deploy/prometheus/rules.yml evaluate"
import json, sys, time, urllib.request
for _ in range(100):
    with urllib.request.urlopen(sys.argv[1] + "/api/v1/rules", timeout=10) as response:
        groups = json.load(response)["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    if rules and all(r.get("lastEvaluation", "").startswith("0001") is False for r in rules):
        break
    time.sleep(0.2)
bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
assert rules and not bad, bad
PY
    ok "every rule of deploy/prometheus/rules.yml loaded and evaluates without error"
    python3 - "$prom" "$root/deploy/grafana/dashboards/agora.json" <<'PY' || fail "the dashboard's queries evaluate"
import json, sys, urllib.parse, urllib.request
panels = json.load(open(sys.argv[2]))["panels"]
for expr in (t["expr"] for p in panels for t in p.get("targets", [])):
    q = expr.replace("$rpc_service", ".*")
    with urllib.request.urlopen(sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": q}), timeout=10) as r:
        assert json.load(r)["status"] == "success", expr
PY
    ok "every query of deploy/grafana/dashboards/agora.json evaluates without error"
    echo "prometheus-e2e[$mode]: $passed passed, 0 failed"
  )
}

for mode in $modes; do run_mode "$mode"; done
