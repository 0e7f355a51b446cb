#!/usr/bin/env bash
# Generates a Python client from proto/ with grpcio-tools (pinned, in the venv of
# scripts/lib/python-env.sh) and runs tests/python/auth_client.py against `agora up` on the embedded
# default.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="$(scripts/lib/python-env.sh)"

cargo build --quiet -p agora --bin agora
work="$(mktemp -d)"
# google/api comes with googleapis-common-protos (a grpcio-status dependency), so only Agora's
# own packages are generated.
mkdir -p "$work/gen"
"$python" -m grpc_tools.protoc -I proto --python_out="$work/gen" --grpc_python_out="$work/gen" \
  $(find proto/agora -name '*.proto' | sort)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)" user_port="$(free_port)" product_port="$(free_port)" inventory_port="$(free_port)"
AGORA_DATA_DIR="$work" AGORA_LOG__FILTER=warn \
  AGORA_SERVICES__AUTH__PORT="$port" AGORA_SERVICES__USER__PORT="$user_port" \
  AGORA_SERVICES__PRODUCT__PORT="$product_port" AGORA_SERVICES__INVENTORY__PORT="$inventory_port" \
  "$root/target/debug/agora" up >"$work/up.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
# `up` prints "Ready." once every service is SERVING and the demo catalog is loaded.
for _ in $(seq 1 600); do
  grep -q '^Ready\.' "$work/up.log" && break
  kill -0 $pid 2>/dev/null || { cat "$work/up.log" >&2; exit 1; }
  sleep 0.1
done

AGORA_AUTH_ADDR="127.0.0.1:$port" PYTHONPATH="$work/gen" "$python" tests/python/auth_client.py
AGORA_PRODUCT_ADDR="127.0.0.1:$product_port" AGORA_INVENTORY_ADDR="127.0.0.1:$inventory_port" \
  PYTHONPATH="$work/gen" "$python" tests/python/catalog_client.py
