#!/usr/bin/env bash
# Fault injection under load: the distributed mesh (one `agora serve <svc>` process per service
# and the gateway, each service on a fresh PostgreSQL database of its own, a private
# redis-server), shoppers placing and cancelling orders (crates/testkit/src/bin/shoppers/),
# one fault in the middle of the load, then, once the mesh has settled, the invariants checked
# from the databases and through the API (scripts/lib/chaos_check.py): one table per fault.
#
#   scripts/chaos.sh                  every fault once, each on a fresh mesh
#   scripts/chaos.sh --runs K         the whole fault list K times
#   scripts/chaos.sh --short          kill -9 order, Redis restarted empty, kill -9 inventory
#   scripts/chaos.sh --faults a,b     the named faults (see --list)
#   --seconds N (load duration, default 24; 16 with --short), --shoppers N (default 16),
#   --on-hand N (units of each of the 6 products at the start, default 6 per second of load:
#   stock lasts about two thirds of the load, so the fault hits orders that take stock and the
#   last orders are refused for stock)
#
# Exits non-zero on any violation. Needs PostgreSQL on AGORA_TEST_POSTGRES_URL (default
# postgres://postgres@127.0.0.1:5432/postgres; databases chaos_<run>_<svc> are created and
# dropped), redis-server, psql, curl and python3. Logs stay in $CHAOS_KEEP (when set) or are
# removed with everything else on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

all_faults=(kill-inventory kill-order kill-product redis-pause redis-restart-empty gateway-term)
short_faults=(kill-order redis-restart-empty kill-inventory)
runs=1 seconds="" shoppers=16 on_hand="" faults=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --short) faults=("${short_faults[@]}"); seconds="${seconds:-16}"; shift ;;
    --faults) IFS=, read -r -a faults <<<"$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --shoppers) shoppers="$2"; shift 2 ;;
    --on-hand) on_hand="$2"; shift 2 ;;
    --list) printf '%s\n' "${all_faults[@]}"; exit 0 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
done
[[ ${#faults[@]} -gt 0 ]] || faults=("${all_faults[@]}")
seconds="${seconds:-24}"
on_hand="${on_hand:-$((seconds * 6))}"
for fault in "${faults[@]}"; do
  [[ " ${all_faults[*]} " == *" $fault "* ]] || { echo "chaos: unknown fault $fault (--list)" >&2; exit 2; }
done
for tool in psql redis-server redis-cli curl python3; do
  command -v "$tool" >/dev/null || { echo "chaos: $tool is needed" >&2; exit 2; }
done

pg_url="${AGORA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_base="${pg_url%/*}"
target="${CARGO_TARGET_DIR:-$root/target}"
echo "chaos: building agora and the load generator" >&2
cargo build -q -p agora -p agora-testkit --bin agora --bin shoppers
agora="$target/debug/agora"
shoppers_bin="$target/debug/shoppers"

work="$(mktemp -d "${TMPDIR:-/tmp}/agora-chaos.XXXXXX")"
declare -A pids=()
databases=()
redis_pid=""
load_pid=""

log() { echo "chaos: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_mesh() {
  if [[ -n "$load_pid" ]]; then kill -TERM "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; load_pid=""; fi
  local name
  for name in "${!pids[@]}"; do kill -CONT "${pids[$name]}" 2>/dev/null || true; kill -TERM "${pids[$name]}" 2>/dev/null || true; done
  for name in "${!pids[@]}"; do
    # Bounded: a process still there after 5 s is killed.
    for _ in $(seq 1 50); do kill -0 "${pids[$name]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[$name]}" 2>/dev/null || true
    wait "${pids[$name]}" 2>/dev/null || true
  done
  pids=()
  if [[ -n "$redis_pid" ]]; then
    kill -CONT "$redis_pid" 2>/dev/null || true
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
  fi
  local db
  for db in "${databases[@]}"; do
    psql "$pg_url" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  databases=()
}
cleanup() {
  stop_mesh
  if [[ -n "${CHAOS_KEEP:-}" ]]; then mkdir -p "$CHAOS_KEEP" && cp -r "$work"/. "$CHAOS_KEEP"/; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no >>"$run_dir/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  log "the private redis-server did not start"; return 1
}

# Starts one process of the mesh with its own environment; its log goes to $run_dir/<name>.log.
start() {
  local name="$1" env=()
  case "$name" in
    gateway) ;;
    *)
      env+=("DATABASE_URL=$pg_base/${run}_$name")
      local secret_var="AGORA_AUTH__SERVICE_CLIENTS__${name^^}"
      [[ -n "${!secret_var:-}" ]] && env+=("AGORA_SERVICE_SECRET=${!secret_var}")
      ;;
  esac
  env "${env[@]}" "$agora" serve "$name" >>"$run_dir/$name.log" 2>&1 &
  pids[$name]=$!
}

port_of() {
  case "$1" in
    gateway) echo "$AGORA_GATEWAY__PORT" ;;
    *) local var="AGORA_SERVICES__${1^^}__PORT"; echo "${!var}" ;;
  esac
}

# Waits (at most 60 s) until `name` answers SERVING (the gateway: /readyz/upstreams, every
# upstream SERVING as the edge sees it).
wait_serving() {
  local name="$1" port
  port="$(port_of "$name")"
  for _ in $(seq 1 300); do
    if [[ $name == gateway ]]; then
      curl -fsS "http://127.0.0.1:$port/readyz/upstreams" >/dev/null 2>&1 && return 0
    else
      "$agora" health "127.0.0.1:$port" --timeout 1s >/dev/null 2>&1 && return 0
    fi
    kill -0 "${pids[$name]}" 2>/dev/null || { log "$name exited"; tail -n 30 "$run_dir/$name.log" >&2; return 1; }
    sleep 0.2
  done
  log "$name never answered SERVING"; tail -n 30 "$run_dir/$name.log" >&2; return 1
}

# A fresh mesh for one fault: databases, Redis, ports, secrets, short timings.
start_mesh() {
  run="chaos_$(date +%s)_$RANDOM"
  run_dir="$work/$1"
  mkdir -p "$run_dir"
  redis_port="$(free_port)"
  start_redis
  local svc
  for svc in auth user product inventory order; do
    psql "$pg_url" -qAt -c "CREATE DATABASE ${run}_$svc" >/dev/null
    databases+=("${run}_$svc")
  done
  export AGORA_SERVICES__AUTH__PORT="$(free_port)" AGORA_SERVICES__USER__PORT="$(free_port)" \
    AGORA_SERVICES__PRODUCT__PORT="$(free_port)" AGORA_SERVICES__INVENTORY__PORT="$(free_port)" \
    AGORA_SERVICES__ORDER__PORT="$(free_port)" AGORA_GATEWAY__PORT="$(free_port)"
  admin_password="admin-$RANDOM$RANDOM"
  export REDIS_URL="redis://127.0.0.1:$redis_port" AGORA_HOST=127.0.0.1 \
    AGORA_LOG__FILTER="${AGORA_LOG__FILTER:-warn}" \
    AGORA_AUTH__ADMIN_EMAIL="admin@chaos.test" AGORA_AUTH__ADMIN_PASSWORD="$admin_password" \
    AGORA_EVENTS__CLAIM_AFTER=2s \
    AGORA_ORDER__RESERVATION_TTL=15s AGORA_ORDER__UPSTREAM_TIMEOUT=2s \
    AGORA_ORDER__RECOVERY_INTERVAL=1s AGORA_ORDER__RECOVERY_AFTER=5s \
    AGORA_INVENTORY__SWEEP_INTERVAL=1s
  # Every shopper registers from this one address, a new account every few orders.
  export AGORA_AUTH__MAX_REGISTRATIONS_PER_ADDRESS=1000000
  for svc in user product inventory order; do
    export "AGORA_AUTH__SERVICE_CLIENTS__${svc^^}=secret-$svc-$RANDOM$RANDOM"
  done
  for svc in auth user product inventory order gateway; do start "$svc"; done
  for svc in auth user product inventory order gateway; do wait_serving "$svc"; done
}

url() { echo "http://127.0.0.1:$(port_of "$1")"; }

# kill -9 (or SIGTERM) `name`, then start it again with the same settings after a pause.
restart() {
  local name="$1" signal="$2" pause="$3"
  kill "-$signal" "${pids[$name]}"
  wait "${pids[$name]}" 2>/dev/null || true
  sleep "$pause"
  start "$name"
  wait_serving "$name"
}

inject() {
  case "$1" in
    kill-inventory) restart inventory KILL 1.5 ;;
    kill-order) restart order KILL 1.5 ;;
    kill-product) restart product KILL 1.5 ;;
    gateway-term) restart gateway TERM 1 ;;
    redis-pause)
      kill -STOP "$redis_pid"; sleep 4; kill -CONT "$redis_pid" ;;
    redis-restart-empty)
      kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null || true
      sleep 1.5
      start_redis ;;
  esac
}

# Waits (at most 60 s) until nothing is in flight: no PENDING order, no pending reservation, no
# unpublished outbox row; then a little longer for consumers to apply what was published.
settle() {
  local pending
  for _ in $(seq 1 120); do
    pending="$(psql "$pg_base/${run}_order" -qAt -c "SELECT (SELECT count(*) FROM orders WHERE status = 'pending') + (SELECT count(*) FROM outbox WHERE published_at IS NULL)")"
    pending=$((pending + $(psql "$pg_base/${run}_inventory" -qAt -c "SELECT (SELECT count(*) FROM reservations WHERE state = 'pending') + (SELECT count(*) FROM outbox WHERE published_at IS NULL)")))
    local svc
    for svc in auth product; do
      pending=$((pending + $(psql "$pg_base/${run}_$svc" -qAt -c "SELECT count(*) FROM outbox WHERE published_at IS NULL")))
    done
    [[ $pending -eq 0 ]] && { sleep 3; return 0; }
    sleep 0.5
  done
  log "still unsettled after 60 s ($pending rows in flight); checking anyway"
}

# One fault under load on a fresh mesh, then the checks; sets $verdict to the checker's status.
# (It returns 0 itself so that `set -e` stays in force inside it: a mesh that cannot start or
# restart stops the whole script.)
one_fault() {
  local fault="$1" label="$2"
  start_mesh "$label"
  log "[$label] mesh up (run $run); creating products"
  "$shoppers_bin" setup --auth "$(url auth)" --product "$(url product)" --inventory "$(url inventory)" \
    --admin-email admin@chaos.test --admin-password "$admin_password" --run "$run" \
    --products 6 --on-hand "$on_hand" \
    >"$run_dir/products.jsonl" 2>>"$run_dir/shoppers.log"
  local products
  products="$(python3 -c 'import json,sys; print(",".join(json.loads(l)["product_id"] for l in open(sys.argv[1])))' "$run_dir/products.jsonl")"
  log "[$label] $shoppers shoppers for ${seconds}s; $fault at $((seconds / 3))s"
  "$shoppers_bin" load --auth "$(url auth)" --order "$(url order)" --gateway "$(url gateway)" \
    --product "$(url product)" --admin-email admin@chaos.test --admin-password "$admin_password" \
    --run "$run" --products "$products" --shoppers "$shoppers" --seconds "$seconds" \
    >"$run_dir/load.jsonl" 2>>"$run_dir/shoppers.log" &
  load_pid=$!
  sleep $((seconds / 3))
  log "[$label] injecting $fault"
  inject "$fault"
  local load_status=0
  wait "$load_pid" || load_status=$?
  load_pid=""
  [[ $load_status -eq 0 ]] || { log "[$label] the load generator failed ($load_status)"; tail -n 20 "$run_dir/shoppers.log" >&2; }
  # The mesh must be whole again before it can settle (a restarted process may still be starting).
  local svc
  for svc in auth user product inventory order gateway; do wait_serving "$svc"; done
  log "[$label] settling"
  settle
  "$shoppers_bin" verify --auth "$(url auth)" --order "$(url order)" --records "$run_dir/load.jsonl" \
    >"$run_dir/verify.jsonl" 2>>"$run_dir/shoppers.log" || log "[$label] reading orders back failed"
  local status=0
  python3 "$root/scripts/lib/chaos_check.py" "$label" "$pg_base" "$run" "$run_dir/products.jsonl" \
    "$run_dir/load.jsonl" "$run_dir/verify.jsonl" || status=$?
  [[ $load_status -eq 0 ]] || status=1
  stop_mesh
  verdict=$status
}

failures=()
for r in $(seq 1 "$runs"); do
  for fault in "${faults[@]}"; do
    label="$fault"
    [[ $runs -gt 1 ]] && label="$fault#$r"
    one_fault "$fault" "$label"
    [[ $verdict -eq 0 ]] || failures+=("$label")
  done
done
echo
if [[ ${#failures[@]} -gt 0 ]]; then
  echo "chaos: violations under: ${failures[*]}"
  exit 1
fi
echo "chaos: every invariant held under: ${faults[*]} (x$runs)"
