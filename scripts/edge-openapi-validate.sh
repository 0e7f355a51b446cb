#!/usr/bin/env bash
# The edge's OpenAPI document, generated from the contracts, validated against the OpenAPI 3.1
# meta-schema with openapi-spec-validator (pinned, from PyPI, in a virtualenv under target/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="target/edge-py"
if [[ ! -x "$venv/bin/openapi-spec-validator" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "openapi-spec-validator==0.9.0"
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run --quiet -p agora-gateway --example openapi >"$out/openapi.json"
"$venv/bin/openapi-spec-validator" "$out/openapi.json"
python3 - "$out/openapi.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["openapi"] == "3.1.0", doc["openapi"]
ops = [op for item in doc["paths"].values() for op in item.values()]
assert len(ops) >= 25, len(ops)
assert all(op.get("description") for op in ops), "every operation has its proto comment"
secured = [op for op in ops if op.get("security")]
assert secured and len(secured) < len(ops), "bearer auth on the non-public methods only"
assert "google.rpc.Status" in doc["components"]["schemas"]
print(f"{len(ops)} operations, {len(doc['components']['schemas'])} schemas")
PY
echo "edge-openapi: 1 passed, 0 failed"
