#!/usr/bin/env bash
# Runs buf (https://buf.build) on Agora's contracts from the repository root, installing a pinned
# version under ./.tools on first use so no global install is needed. Needs Node.js (npm).
#
#   scripts/buf.sh lint
#   scripts/buf.sh build
#   scripts/buf.sh breaking --against '.git#branch=main'
set -euo pipefail

BUF_VERSION="1.75.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

buf="$root/.tools/node_modules/.bin/buf"
if [[ ! -x "$buf" ]] || [[ "$("$buf" --version 2>/dev/null)" != "$BUF_VERSION" ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "scripts/buf.sh: npm is required to install buf $BUF_VERSION" >&2
    exit 1
  fi
  echo "scripts/buf.sh: installing buf $BUF_VERSION into .tools/" >&2
  npm install --prefix "$root/.tools" --no-save --no-audit --no-fund --loglevel=error \
    "@bufbuild/buf@$BUF_VERSION" >&2
fi

exec "$buf" "$@"
