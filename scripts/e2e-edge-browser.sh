#!/usr/bin/env bash
# A real browser calls the REST edge from another origin. Headless Chromium (Debian's package)
# loads a page from a small static server on its own port; the page registers, logs in and reads
# its profile with `fetch` (JSON bodies and an Authorization header, so every call needs a CORS
# preflight), and writes what it got into the DOM, which the test reads with --dump-dom.
# The same page loaded from an origin the gateway does not allow must be refused by the browser.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v chromium >/dev/null; then
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi
cargo build --quiet -p agora --bin agora

page_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# Only the page's origin on 127.0.0.1 is allowed; the same page from `localhost` is another origin.
export AGORA_GATEWAY__CORS__ALLOWED_ORIGINS="[\"http://127.0.0.1:$page_port\"]"
source scripts/lib/edge-mesh.sh
start_mesh embedded

site="$work/site"
mkdir -p "$site"
cat >"$site/index.html" <<'EOF'
<!doctype html>
<html><head><meta charset="utf-8"><title>shop</title></head>
<body><pre id="result">pending</pre>
<script>
const gw = new URLSearchParams(location.search).get("gw");
const show = (text) => { document.getElementById("result").textContent = text; };
async function call(method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers["authorization"] = "Bearer " + token;
  const response = await fetch(gw + path, { method, headers, body: body && JSON.stringify(body) });
  return { status: response.status, requestId: response.headers.get("x-request-id"), body: await response.json() };
}
(async () => {
  const email = "browser." + Date.now() + "@example.com";
  const registered = await call("POST", "/v1/auth/register", { email, password: "correct horse 7" });
  const login = await call("POST", "/v1/auth/login", { email, password: "correct horse 7" });
  let me = null;
  for (let i = 0; i < 50; i++) {
    me = await call("GET", "/v1/users/me", null, login.body.tokens.accessToken);
    if (me.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const anonymous = await call("GET", "/v1/users/me");
  show(JSON.stringify({ email, registered: registered.status, login: login.status, me, anonymous }));
})().catch((error) => show("ERROR " + error.name + ": " + error.message));
</script></body></html>
EOF
python3 -m http.server "$page_port" --bind 127.0.0.1 --directory "$site" >"$work/site.log" 2>&1 &
mesh_pids+=($!)
for _ in $(seq 1 50); do curl -fsS "http://127.0.0.1:$page_port/" >/dev/null 2>&1 && break; sleep 0.1; done

dump() { # dump <page origin>
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --user-data-dir="$work/chromium-$RANDOM" --virtual-time-budget=20000 \
    --dump-dom "$1/index.html?gw=$gw" 2>"$work/chromium.log" \
    | python3 -c 'import html,re,sys; m=re.search(r"<pre id=\"result\">(.*?)</pre>", sys.stdin.read(), re.S); print(html.unescape(m.group(1)) if m else "NO RESULT")'
}

passed=0
result="$(dump "http://127.0.0.1:$page_port")"
python3 - "$result" <<'EOF' || { echo "edge-browser: FAILED: the allowed origin's calls: $result" >&2; tail -20 "$work/chromium.log" >&2; exit 1; }
import json, sys
r = json.loads(sys.argv[1])
assert r["registered"] == 200 and r["login"] == 200, r
assert r["me"]["status"] == 200 and r["me"]["body"]["profile"]["email"] == r["email"], r
# Readable from script only because the edge exposes it to the allowed origin.
assert r["me"]["requestId"], r
assert r["anonymous"]["status"] == 401 and r["anonymous"]["body"]["code"] == 16, r
EOF
echo "edge-browser: ok: a page on another origin registered, logged in and read its profile with fetch (preflighted), and read the 401 of an anonymous call"
passed=$((passed + 1))

result="$(dump "http://localhost:$page_port")"
[[ "$result" == "ERROR TypeError"* ]] || { echo "edge-browser: FAILED: a page from an origin not allowed got through: $result" >&2; exit 1; }
echo "edge-browser: ok: the browser refuses the same calls from an origin the edge does not allow"
passed=$((passed + 1))
echo "edge-browser: $passed passed, 0 failed"
