#!/usr/bin/env bash
# What idle WatchOrder streams cost the order service, and how fast a change reaches many
# watchers: a release build of the distributed mesh (`agora serve <svc>` per process, PostgreSQL
# and Redis, see scripts/lib/edge-mesh.sh), then the `watchers` load (crates/testkit/src/bin/
# watchers.rs) with the watch caps raised for the run:
#   1. 2,000 idle streams from 4 accounts: the order process's RSS growth per stream
#      (/proc/<pid>/status VmRSS before and after) and its CPU over 30 s idle (utime + stime of
#      /proc/<pid>/stat), as % of one core;
#   2. 1,000 watchers of one order: the time from just before CancelOrder to each watcher
#      receiving CANCELLED, p50 / p99 / max.
# Aims: idle under 2% of a core, under 20 kB per stream, p99 under 50 ms.
#
#   scripts/bench-watch.sh [idle streams, default 2000] [idle seconds, default 30] [fan-out, default 1000]
#
# By hand, not in CI: it needs PostgreSQL and Redis (AGORA_TEST_POSTGRES_URL, AGORA_TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
idle="${1:-2000}" seconds="${2:-30}" fan_out="${3:-1000}"

cargo build --quiet --release -p agora --bin agora -p agora-testkit --bin watchers
export EDGE_AGORA_BIN="$PWD/target/release/agora"
# Every stream of the run fits under the caps.
export AGORA_ORDER__WATCH__MAX_PER_USER=$((idle + fan_out)) AGORA_ORDER__WATCH__MAX_TOTAL=$((idle + fan_out))
source scripts/lib/edge-mesh.sh
start_mesh distributed

# edge-mesh.sh starts auth, user, product, inventory, order, then the gateway.
order_pid="${mesh_pids[4]}"
tr '\0' ' ' <"/proc/$order_pid/cmdline" | grep -q "serve order" \
  || { echo "bench: process $order_pid is not the order service" >&2; exit 1; }

echo "bench: $idle idle watches for ${seconds}s, then $fan_out watchers of one order (release build, distributed mesh)" >&2
target/release/watchers \
  --auth "http://127.0.0.1:$AGORA_SERVICES__AUTH__PORT" \
  --product "http://127.0.0.1:$AGORA_SERVICES__PRODUCT__PORT" \
  --order "http://127.0.0.1:$AGORA_SERVICES__ORDER__PORT" \
  --pid "$order_pid" --clk-tck "$(getconf CLK_TCK)" \
  --accounts 4 --idle "$idle" --idle-seconds "$seconds" --fan-out "$fan_out"
