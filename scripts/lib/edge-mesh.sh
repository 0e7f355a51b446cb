# Sourced by the edge's scripts: starts a whole mesh with its REST gateway on free ports, in one
# of two ways, and stops it on exit.
#
#   start_mesh embedded     `agora up` in a temporary data directory (SQLite, in-memory bus)
#   start_mesh distributed  `agora serve <svc>` per service, each on a fresh PostgreSQL database,
#                           sharing Redis under a key prefix of this run, then `agora serve gateway`
#
# Afterwards: $gw is the gateway's URL, $grpc_product the product service's, $work a temporary
# directory, $admin_password the administrator's password. Extra settings for every process can
# be passed as environment variables before calling (they are inherited). `agora` is built by the
# caller (debug by default; set EDGE_AGORA_BIN for another build). EDGE_PIN=<cpu list> runs every
# mesh process under `taskset -c <cpu list>`; ${mesh_pid[<svc>]} is each process's pid
# (`up`, or auth ... order and gateway).
#
# PostgreSQL: AGORA_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Redis: AGORA_TEST_REDIS_URL (default redis://127.0.0.1:6379).

edge_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
agora_bin="${EDGE_AGORA_BIN:-$edge_root/target/debug/agora}"
mesh_pids=()
declare -A mesh_pid=()
mesh_databases=()
pin=()
[[ -n "${EDGE_PIN:-}" ]] && pin=(taskset -c "$EDGE_PIN")
work="$(mktemp -d)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_mesh() {
  local pid
  for pid in "${mesh_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${mesh_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  mesh_pids=()
  local db
  for db in "${mesh_databases[@]}"; do
    psql "$pg_url" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  mesh_databases=()
  if [[ -n "${mesh_prefix:-}" ]]; then
    redis-cli -u "$redis_url" --scan --pattern "${mesh_prefix}*" 2>/dev/null \
      | xargs -r redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
  fi
}
trap 'stop_mesh; rm -rf "$work"' EXIT

# Ports for every process, the same in each one's environment.
export AGORA_SERVICES__AUTH__PORT="$(free_port)" AGORA_SERVICES__USER__PORT="$(free_port)" \
  AGORA_SERVICES__PRODUCT__PORT="$(free_port)" AGORA_SERVICES__INVENTORY__PORT="$(free_port)" \
  AGORA_SERVICES__ORDER__PORT="$(free_port)" AGORA_GATEWAY__PORT="$(free_port)"
export AGORA_LOG__FILTER="${AGORA_LOG__FILTER:-warn}"
gw="http://127.0.0.1:$AGORA_GATEWAY__PORT"
grpc_product="127.0.0.1:$AGORA_SERVICES__PRODUCT__PORT"

# Waits until the gateway's /readyz/upstreams says every upstream is SERVING (its /readyz says
# only that the edge itself is up).
wait_ready() {
  local _
  for _ in $(seq 1 600); do
    curl -fsS "$gw/readyz/upstreams" >/dev/null 2>&1 && return 0
    local pid
    for pid in "${mesh_pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "edge: a mesh process exited early" >&2; tail -n 40 "$work"/*.log >&2; return 1; }
    done
    sleep 0.1
  done
  echo "edge: the gateway never became ready" >&2
  tail -n 40 "$work"/*.log >&2
  return 1
}

start_mesh() {
  case "$1" in
    embedded)
      AGORA_DATA_DIR="$work/data" "${pin[@]}" "$agora_bin" up >"$work/up.log" 2>&1 &
      mesh_pids+=($!)
      mesh_pid[up]=$!
      # `up` prints "Ready." once the demo catalog is loaded.
      local _
      for _ in $(seq 1 600); do
        grep -q '^Ready\.' "$work/up.log" && break
        kill -0 "${mesh_pids[0]}" 2>/dev/null || { cat "$work/up.log" >&2; return 1; }
        sleep 0.1
      done
      grep -q '^Ready\.' "$work/up.log" || { echo "edge: agora up never got ready" >&2; cat "$work/up.log" >&2; return 1; }
      admin_password="$(cat "$work/data/admin-password")"
      wait_ready
      ;;
    distributed)
      pg_url="${AGORA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
      redis_url="${AGORA_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
      command -v psql >/dev/null && command -v redis-cli >/dev/null || {
        apt-get install -y -qq postgresql-client redis-tools >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-client redis-tools >/dev/null; }
      }
      local run="edge_$(date +%s)_$RANDOM"
      mesh_prefix="agora-edge-test:$run:"
      admin_password="admin-$RANDOM$RANDOM"
      export REDIS_URL="$redis_url" AGORA_EVENTS__PREFIX="${mesh_prefix}events:" \
        AGORA_AUTH__CACHE_PREFIX="${mesh_prefix}auth:" AGORA_PRODUCT__CACHE_PREFIX="${mesh_prefix}product:" \
        AGORA_GATEWAY__CACHE_PREFIX="${mesh_prefix}gateway:" \
        AGORA_AUTH__ADMIN_EMAIL="admin@agora.local" AGORA_AUTH__ADMIN_PASSWORD="$admin_password"
      local svc
      for svc in user product inventory order; do
        export "AGORA_AUTH__SERVICE_CLIENTS__${svc^^}=secret-$svc-$RANDOM$RANDOM"
      done
      for svc in auth user product inventory order; do
        local db="${run}_$svc"
        psql "$pg_url" -qAt -c "CREATE DATABASE $db" >/dev/null
        mesh_databases+=("$db")
        local secret_var="AGORA_AUTH__SERVICE_CLIENTS__${svc^^}"
        local secret=()
        [[ -n "${!secret_var:-}" ]] && secret=("AGORA_SERVICE_SECRET=${!secret_var}")
        env "${secret[@]}" DATABASE_URL="${pg_url%/*}/$db" \
          "${pin[@]}" "$agora_bin" serve "$svc" >"$work/$svc.log" 2>&1 &
        mesh_pids+=($!)
        mesh_pid[$svc]=$!
      done
      "${pin[@]}" "$agora_bin" serve gateway >"$work/gateway.log" 2>&1 &
      mesh_pids+=($!)
      mesh_pid[gateway]=$!
      wait_ready
      "$agora_bin" seed >"$work/seed.log" 2>&1 || { cat "$work/seed.log" >&2; return 1; }
      ;;
    *) echo "start_mesh embedded|distributed" >&2; return 2 ;;
  esac
}
