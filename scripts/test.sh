#!/usr/bin/env bash
# Every test of the project: the contracts' lint, the Rust suites (unit tests, and integration
# tests through the real gRPC surface on embedded SQLite and on PostgreSQL + Redis), the
# `buf curl` walkthrough against a running mesh, a Python client generated from proto/, the REST
# edge end to end (curl on both backends, a Python service joining by reflection, a browser on
# another origin, schemathesis over /openapi.json), a real Prometheus scraping the mesh, faults
# injected under load on the distributed mesh, and the deployment files.
#
# PostgreSQL (AGORA_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres) and
# Redis (AGORA_TEST_REDIS_URL, default redis://127.0.0.1:6379) must be reachable; with CI=true a
# suite whose server is missing fails instead of being skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "== buf lint and build (proto/)"
scripts/buf.sh lint
scripts/buf.sh build

echo "== cargo test"
cargo test --locked

echo "== buf curl walkthrough"
scripts/e2e-buf-curl.sh

echo "== Python client generated from proto/"
scripts/e2e-python-client.sh

echo "== the edge's OpenAPI document against the OpenAPI 3.1 meta-schema"
scripts/edge-openapi-validate.sh

echo "== the API page (/docs) rendered in headless Chromium"
scripts/edge-docs-browser.sh

echo "== the REST edge end to end with curl, embedded and on PostgreSQL + Redis"
scripts/e2e-edge-curl.sh both

echo "== a Python service outside the contracts joins the edge by its reflection"
scripts/e2e-edge-polyglot.sh

echo "== a page on another origin calls the edge from headless Chromium (CORS preflights)"
scripts/e2e-edge-browser.sh

echo "== the console (/console) in headless Chromium while traffic flows, with screenshots"
scripts/e2e-console-browser.sh

echo "== schemathesis against the running edge's /openapi.json"
scripts/e2e-edge-schemathesis.sh

echo "== a real Prometheus scrapes the mesh: exact counts by PromQL, embedded and on PostgreSQL + Redis"
scripts/e2e-prometheus.sh both

echo "== faults under load: kill -9 order and inventory, Redis restarted empty (scripts/chaos.sh --short)"
scripts/chaos.sh --short

echo "== deployment: kustomize overlays, Kubernetes schemas, policy, compose spec, containers as deployed"
scripts/deploy-check.sh
