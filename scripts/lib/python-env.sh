#!/usr/bin/env bash
# Creates (once) the venv .tools/python with grpcio, grpcio-tools, grpcio-status,
# grpcio-reflection and grpcio-health-checking pinned to one version, and prints the path of its python on stdout (all
# else goes to stderr, so callers can write `python="$(scripts/lib/python-env.sh)"`).
#
# Quick when the venv is already there with the pinned version; concurrent callers (a test suite
# and a script at once) wait on a lock instead of installing into the same venv together.
set -euo pipefail

GRPC_VERSION="1.76.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/.tools/python"
python="$venv/bin/python"

ready() {
  [[ -x "$python" ]] && "$python" -c "
import sys, grpc, grpc_tools, grpc_status, grpc_reflection, grpc_health
sys.exit(grpc.__version__ != '$GRPC_VERSION')" 2>/dev/null
}

if ! ready; then
  mkdir -p "$root/.tools"
  exec 9>"$root/.tools/python.lock"
  flock 9
  # Another caller may have installed it while this one waited for the lock.
  if ! ready; then
    echo "python-env: installing grpcio $GRPC_VERSION into .tools/python" >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "grpcio==$GRPC_VERSION" "grpcio-tools==$GRPC_VERSION" \
      "grpcio-status==$GRPC_VERSION" "grpcio-reflection==$GRPC_VERSION" \
      "grpcio-health-checking==$GRPC_VERSION" >&2
    ready || { echo "python-env: the venv at $venv is still incomplete after installing" >&2; exit 1; }
  fi
fi
echo "$python"
