#!/usr/bin/env bash
# The API page (/docs) in a real browser: headless Chromium (Debian's package) loads the page with
# the OpenAPI document generated from the contracts beside it, and the rendered DOM must list
# every operation and schema. With --screenshot FILE it also saves a picture of the page.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v chromium >/dev/null; then
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
site="$(mktemp -d)"
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$site"' EXIT
cargo run --quiet -p agora-gateway --example openapi >"$site/openapi.json"
# .html, so the static server sends it as a page (the gateway serves it as text/html at /docs).
cp gateway/src/openapi/docs.html "$site/docs.html"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$site" >/dev/null 2>&1 &
server=$!
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$port/docs.html" >/dev/null 2>&1 && break; sleep 0.1; done

browse() {
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$site/profile" --virtual-time-budget=10000 "$@" "http://127.0.0.1:$port/docs.html" 2>/dev/null
}
browse --dump-dom >"$site/dom.html"
python3 - "$site/dom.html" "$site/openapi.json" <<'PY'
import json, re, sys
dom, doc = open(sys.argv[1]).read(), json.load(open(sys.argv[2]))
operations = sum(len(item) for item in doc["paths"].values())
rendered = re.search(r'data-rendered="(\d+)"', dom)
assert rendered and int(rendered.group(1)) == len(doc["paths"]), "the page rendered every path"
assert dom.count('class="op"') >= operations + len(doc["components"]["schemas"]), "an entry per operation and schema"
for path in ("/v1/orders/{order_id}:cancel", "/v1/products/{product_id}"):
    assert path in dom, path
assert "requires a bearer token" in dom and "google.rpc.Status" in dom
assert 'id="error"' not in dom, "the page says it could not load the document"
PY
echo "edge-docs: ok: /docs renders every operation and schema of the document in Chromium"
if [[ "${1:-}" == --screenshot ]]; then
  browse --window-size=1280,1600 --screenshot="$(realpath -m "$2")" >/dev/null
fi
echo "edge-docs: 1 passed, 0 failed"
