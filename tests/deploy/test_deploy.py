"""Offline proof of the deployment files (no Docker engine, no cluster needed).

- every Kustomize overlay renders, alone and with each component of k8s/components/, and passes
  the Kubernetes API schemas (strict), its custom resources (Gateway API, cert-manager) the
  pinned CRDs' schemas (strict, tests/deploy/crds/);
- a policy over the rendered manifests (probes, resources, restricted securityContext, pinned
  images, gRPC ports, NetworkPolicy/HPA/PDB coverage, and with the mtls component a certificate
  from an Issuer of the namespace for every pod), shown to fail on broken manifests too;
- docker-compose.yml passes the Compose-spec JSON schema;
- the commands and environment that docker-compose.yml and the dev overlay give each container
  run as local processes against the machine's PostgreSQL and Redis (fresh databases and key
  prefixes of their own), and every one reports SERVING through its own probe.

Run by scripts/deploy-check.sh, which renders the overlays into $DEPLOY_CHECK_RENDERED: <overlay>.yaml,
and <overlay>+<component>.yaml for the overlay with the component listed in its kustomization.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import re
import secrets
import subprocess

import jsonschema
import pytest
import yaml

import crd_schema
import runner

ROOT = pathlib.Path(__file__).resolve().parents[2]
RENDERED = pathlib.Path(os.environ.get("DEPLOY_CHECK_RENDERED", ROOT / "target" / "deploy-check"))
OVERLAYS = ["dev", "prod"]
COMPONENTS = sorted(p.parent.name for p in (ROOT / "k8s" / "components").glob("*/kustomization.yaml"))
# Every overlay, then every overlay with each component.
RENDERINGS = OVERLAYS + [f"{o}+{c}" for c in COMPONENTS for o in OVERLAYS]
KUBERNETES_VERSION = os.environ.get("DEPLOY_CHECK_K8S_VERSION", "1.33.0")
COMPOSE_SCHEMA = pathlib.Path(os.environ.get("DEPLOY_CHECK_COMPOSE_SCHEMA", RENDERED / "compose-spec.json"))
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
GATEWAY_API = "gateway.networking.k8s.io/"
CERT_MANAGER = "cert-manager.io/"
# The API groups of the custom resources, validated against their CRDs rather than the Kubernetes API.
CUSTOM = (GATEWAY_API, CERT_MANAGER)
# The pinned CRDs (scripts/deploy-check.sh checks their sha256).
CRDS = tuple(pathlib.Path(__file__).resolve().parent / "crds" / f
             for f in ("gateway-api-v1.3.0-standard.yaml", "cert-manager-v1.21.1.yaml"))
# The custom kinds each component adds; every rendering has the Gateway API's.
COMPONENT_KINDS = {"mtls": {"Certificate", "Issuer"}}
# /readyz waits this long for the upstreams' answers (gateway.probe_timeout's default).
GATEWAY_PROBE_TIMEOUT = 2
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def manifests(overlay: str) -> list[dict]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all((RENDERED / f"{overlay}.yaml").read_text(), Loader=loader) if d]


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels only: the manifests use nothing else, and anything else is a violation below."""
    if set(selector) - {"matchLabels"}:
        return False
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def violations(docs: list[dict], by_digest: bool = False) -> list[str]:
    """Everything in `docs` the deployment policy forbids; empty when it complies. `by_digest`:
    images must be pinned by digest, not only by tag (prod)."""
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
            if by_digest and not DIGEST.search(image):
                found.append(f"{cname}: image {image!r} is not pinned by digest")
            for var in c.get("env", []):
                if "secretKeyRef" in var.get("valueFrom", {}) and labels.get("app.kubernetes.io/part-of") == "agora":
                    found.append(f"{cname}: secret in environment variable {var['name']} (mount it as a file)")
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
            # One slow or lost answer must not take a pod out of its endpoints.
            if c.get("readinessProbe", {}).get("failureThreshold", 3) < 3:
                found.append(f"{cname}: readinessProbe failureThreshold below 3")
            ready = c.get("readinessProbe", {})
            if ready.get("httpGet", {}).get("path") == "/readyz" and \
                    ready.get("timeoutSeconds", 1) <= GATEWAY_PROBE_TIMEOUT:
                found.append(f"{cname}: readinessProbe timeoutSeconds is not above the edge's probe_timeout "
                             f"({GATEWAY_PROBE_TIMEOUT}s)")
            # With mTLS the grpc port wants a client certificate the kubelet cannot present: the
            # probes then use the plaintext health-only port (named `health`), and only it.
            health = [p for p in c.get("ports", []) if p.get("name") == "health"]
            grpc_ports = [p for p in c.get("ports", []) if p.get("name") == "grpc"]
            for p in grpc_ports:
                target = health[0] if health else p
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if c.get(probe, {}).get("grpc", {}).get("port") != target["containerPort"]:
                        found.append(f"{cname}: {probe} is not a native gRPC probe on the {target['name']} port")
        agora = labels.get("app.kubernetes.io/part-of") == "agora" and labels.get(
            "app.kubernetes.io/component") in {"service", "edge"}
        if agora and drain <= 20:
            found.append(f"{name}: terminationGracePeriodSeconds {drain} is not longer than the drain (20s)")
        own = [p for p in policies if "app.kubernetes.io/name" in p["spec"].get("podSelector", {}).get("matchLabels", {})
               and selects(p["spec"]["podSelector"], labels)]
        if not own:
            found.append(f"{name}: no NetworkPolicy of its own")
        scaled = any(h["spec"]["scaleTargetRef"]["kind"] == w["kind"]
                     and h["spec"]["scaleTargetRef"]["name"] == w["metadata"]["name"] for h in hpas)
        if scaled and "replicas" in w["spec"]:
            found.append(f"{name}: sets replicas although an HPA scales it (each apply would reset it)")
        if agora:
            keys = {t["topologyKey"] for t in spec.get("topologySpreadConstraints", [])}
            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
                if key not in keys:
                    found.append(f"{name}: pods are not spread by {key}")
        if agora or w["kind"] == "Deployment":
            if not scaled:
                found.append(f"{name}: no HorizontalPodAutoscaler")
            if not any(selects(p["spec"]["selector"], labels) for p in pdbs):
                found.append(f"{name}: no PodDisruptionBudget")
    for s in (d for d in docs if d["kind"] == "Service"):
        for p in s["spec"]["ports"]:
            if p.get("name") == "grpc" and p.get("appProtocol") != "grpc":
                found.append(f"Service/{s['metadata']['name']}: grpc port without appProtocol: grpc")
    return found


TLS_DIR = "/etc/agora/tls"  # where mtls.cert_file, key_file and ca_file point by default
TRUST_DOMAIN = "agora"


def mtls_violations(docs: list[dict]) -> list[str]:
    """What in a rendering with the mtls component keeps a pod from its certificate, or the mesh
    from trusting it; empty when every service and the edge get one they can use."""
    found = []
    common = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "agora-common")["data"]
    if common.get("AGORA_MTLS__ENABLED") != "true":
        found.append("ConfigMap/agora-common: mTLS is not enabled")
    issuers = {(d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs if d["kind"] == "Issuer"}
    certificates = {(d["metadata"].get("namespace"), d["spec"]["secretName"]): d
                    for d in docs if d["kind"] == "Certificate"}
    for (namespace, _), c in certificates.items():
        ref = c["spec"]["issuerRef"]
        if ref.get("kind", "Issuer") == "Issuer" and (namespace, ref["name"]) not in issuers:
            found.append(f"Certificate/{c['metadata']['name']}: no Issuer {ref['name']} in namespace {namespace}")
    signers = set()
    for w in (d for d in docs if d["kind"] in WORKLOADS):
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        role = labels.get("app.kubernetes.io/component")
        if labels.get("app.kubernetes.io/part-of") != "agora" or role not in {"service", "edge"}:
            continue
        name, spec = labels["app.kubernetes.io/name"], pod_spec(w)
        wname = f"{w['kind']}/{w['metadata']['name']}"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            cname = f"{wname}/{c['name']}"
            health = [p["containerPort"] for p in c.get("ports", []) if p.get("name") == "health"]
            if role == "service" and health != [int(common.get("AGORA_MTLS__HEALTH_PORT", 0))]:
                found.append(f"{cname}: health port {health} is not mtls.health_port "
                             f"({common.get('AGORA_MTLS__HEALTH_PORT')})")
            mount = next((m for m in c.get("volumeMounts", []) if m["mountPath"] == TLS_DIR), None)
            secret = volumes.get(mount["name"], {}).get("secret", {}).get("secretName") if mount else None
            certificate = certificates.get((w["metadata"].get("namespace"), secret))
            if certificate is None:
                found.append(f"{cname}: no Secret of a Certificate in its namespace mounted at {TLS_DIR}")
                continue
            cert = certificate["spec"]
            signers.add((cert["issuerRef"].get("kind", "Issuer"), cert["issuerRef"]["name"]))
            spiffe = next((u for u in cert.get("uris", []) if u.startswith("spiffe://")), "")
            service_id = f"spiffe://{TRUST_DOMAIN}/service/{name}"
            if role == "service" and spiffe != service_id:
                found.append(f"{cname}: its certificate names {spiffe!r}, not {service_id}")
            if role == "edge" and (not spiffe.startswith(f"spiffe://{TRUST_DOMAIN}/") or "/service/" in spiffe):
                found.append(f"{cname}: its certificate names {spiffe!r}, not an edge ID of {TRUST_DOMAIN}")
            usages = set(cert.get("usages", ["digital signature", "key encipherment"]))
            for usage in ["client auth"] + (["server auth"] if role == "service" else []):
                if usage not in usages:
                    found.append(f"{cname}: its certificate lacks the usage {usage!r}")
    # Each pod trusts the ca.crt of its own Secret: one signer for all, or they reject each other.
    if len(signers) > 1:
        found.append(f"the certificates come from several issuers {sorted(signers)}: pods would not trust each other")
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
    # Nothing but the binary: probes run `agora health`, so no shell or busybox ships.
    assert "busybox" not in runtime and "/bin/sh" not in runtime
    assert "org.opencontainers.image.source" in runtime and "org.opencontainers.image.revision" in runtime
    builder = text.split("AS builder", 1)[1].split("AS runtime", 1)[0]
    assert builder.index("cargo chef cook") < builder.index("COPY . .") < builder.index("cargo build")


@pytest.mark.parametrize("overlay", RENDERINGS)
def test_every_overlay_passes_the_kubernetes_api_schemas_strictly(overlay, tmp_path):
    # Gateway API and cert-manager kinds are custom resources: checked against their CRDs below.
    builtin = tmp_path / "builtin.yaml"
    builtin.write_text(yaml.safe_dump_all([d for d in manifests(overlay) if not d["apiVersion"].startswith(CUSTOM)]))
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(builtin)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("overlay", RENDERINGS)
def test_every_overlay_passes_the_crd_schemas_of_its_custom_resources_strictly(overlay):
    schemas = crd_schema.load(*CRDS)
    docs = [d for d in manifests(overlay) if d["apiVersion"].startswith(CUSTOM)]
    component = overlay.partition("+")[2]
    assert {d["kind"] for d in docs} == {"Gateway", "HTTPRoute", "GRPCRoute"} | COMPONENT_KINDS.get(component, set())
    assert [e for d in docs for e in crd_schema.errors(d, schemas)] == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda r: r["spec"]["rules"][0].update(timeout={"request": "20m"}), "'timeout' was unexpected"),
    (lambda r: r["spec"]["rules"][0]["timeouts"].update(request="20 minutes"), "does not match"),
    (lambda r: r.update(apiVersion=GATEWAY_API + "v1alpha9"), "no CRD serves"),
])
def test_the_gateway_api_validation_rejects_a_misspelt_field_a_bad_duration_and_an_unknown_version(breakage, expected):
    route = copy.deepcopy(next(d for d in manifests("prod") if d["kind"] == "HTTPRoute"))
    breakage(route)
    assert any(expected in e for e in crd_schema.errors(route, crd_schema.load(*CRDS)))


@pytest.mark.parametrize("breakage, expected", [
    (lambda c: c["spec"].update(renewBefor=c["spec"].pop("renewBefore")), "'renewBefor' was unexpected"),
    (lambda c: c["spec"]["privateKey"].update(algorithm="ECDSA-P256"), "is not one of"),
    (lambda c: c["spec"].update(uris="spiffe://agora/service/auth"), "is not of type 'array'"),
    (lambda c: c.update(apiVersion=CERT_MANAGER + "v1alpha2"), "no CRD serves"),
])
def test_the_cert_manager_validation_rejects_a_misspelt_field_a_bad_value_and_an_unknown_version(breakage, expected):
    certificate = copy.deepcopy(next(d for d in manifests("prod+mtls")
                                     if d["kind"] == "Certificate" and d["metadata"]["name"] == "auth-mtls"))
    assert crd_schema.errors(certificate, crd_schema.load(*CRDS)) == []
    breakage(certificate)
    assert any(expected in e for e in crd_schema.errors(certificate, crd_schema.load(*CRDS)))


def test_the_edge_is_reached_over_tls_with_routes_that_let_watches_live():
    docs = manifests("prod")
    gateway = next(d for d in docs if d["kind"] == "Gateway")
    listeners = {listener["name"]: listener for listener in gateway["spec"]["listeners"]}
    for listener in listeners.values():
        assert listener["protocol"] == "HTTPS" and listener["tls"]["certificateRefs"], listener
    http = next(d for d in docs if d["kind"] == "HTTPRoute")
    grpc = next(d for d in docs if d["kind"] == "GRPCRoute")
    # An HTTPRoute and a GRPCRoute on one listener and host name conflict: separate ones.
    assert not set(http["spec"]["hostnames"]) & set(grpc["spec"]["hostnames"])
    assert {p["sectionName"] for p in http["spec"]["parentRefs"]} != {p["sectionName"] for p in grpc["spec"]["parentRefs"]}
    watch_lifetime = 15 * 60
    for rule in http["spec"]["rules"]:
        timeouts = rule["timeouts"]
        request, backend = duration(timeouts["request"]), duration(timeouts["backendRequest"])
        # "0s" turns a timeout off; anything else must outlast a watch.
        assert request == 0 or request > watch_lifetime, timeouts
        assert backend == 0 or backend > watch_lifetime, timeouts
        # The spec: backendRequest may not exceed request (a CEL rule the schema check skips).
        assert request == 0 or 0 < backend <= request, timeouts
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "gateway")
    ports = {p["port"]: p for p in service["spec"]["ports"]}
    for ref in grpc["spec"]["rules"][0]["backendRefs"]:
        assert ports[ref["port"]]["appProtocol"] == "kubernetes.io/h2c", "gRPC needs HTTP/2 to the edge"


def duration(value: str) -> int:
    """Seconds of a Gateway API duration (GEP-2257: `1h30m`, `20m`, `0s`; ms rounded down)."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ms|h|m|s)", value))


@pytest.mark.parametrize("component", [""] + [f"+{c}" for c in COMPONENTS])
def test_the_prod_overlay_runs_the_same_commands_with_the_same_files_as_dev(component):
    def containers(overlay):
        return {(d["metadata"]["name"], c["name"]): (c.get("args"), c.get("env"), c.get("volumeMounts"))
                for d in manifests(overlay) if d["kind"] == "Deployment"
                for c in pod_spec(d).get("initContainers", []) + pod_spec(d)["containers"]}
    dev, prod = containers("dev" + component), containers("prod" + component)
    assert dev.keys() == prod.keys()
    # Only the proxies' address range is the cluster's own.
    for key in dev:
        strip = [e for e in (dev[key][1] or []) if e["name"] != "AGORA_GATEWAY__TRUSTED_PROXIES"]
        assert (dev[key][0], strip, dev[key][2]) == \
            (prod[key][0], [e for e in (prod[key][1] or []) if e["name"] != "AGORA_GATEWAY__TRUSTED_PROXIES"],
             prod[key][2]), key


def test_the_schema_validation_rejects_a_misspelt_field(tmp_path):
    docs = manifests("prod")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod_spec(deployment)["containers"][0]["readinesProbe"] = pod_spec(deployment)["containers"][0]["readinessProbe"]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(["kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(broken)],
                            capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("overlay", RENDERINGS)
def test_every_overlay_complies_with_the_deployment_policy(overlay):
    docs = manifests(overlay)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for name in ["auth", "user", "product", "inventory", "order", "gateway"]:
        for kind in ["Deployment", "Service", "ServiceAccount", "HorizontalPodAutoscaler", "PodDisruptionBudget"]:
            assert (kind, name) in kinds, f"{overlay}: no {kind}/{name}"
    for name in ["auth", "user", "product", "inventory", "order"]:
        assert ("Service", f"{name}-headless") in kinds
    assert {("Gateway", "agora"), ("HTTPRoute", "gateway"), ("GRPCRoute", "gateway")} <= kinds
    assert ("Ingress", "gateway") not in kinds
    assert violations(docs, by_digest=overlay.partition("+")[0] == "prod") == []


@pytest.mark.parametrize("overlay", [f"{o}+mtls" for o in OVERLAYS])
def test_with_mtls_every_service_and_the_edge_mount_a_certificate_of_their_own_from_one_ca(overlay):
    assert mtls_violations(manifests(overlay)) == []


def cert(docs: list[dict], name: str) -> dict:
    return next(d for d in docs if d["kind"] == "Certificate" and d["metadata"]["name"] == name)


def deployment(docs: list[dict], name: str) -> dict:
    return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)


@pytest.mark.parametrize("breakage, expected", [
    (lambda docs: cert(docs, "order-mtls")["spec"].update(uris=["spiffe://agora/service/orders"]),
     "Deployment/order/order: its certificate names 'spiffe://agora/service/orders'"),
    (lambda docs: cert(docs, "gateway-mtls")["spec"].update(uris=["spiffe://agora/service/gateway"]),
     "not an edge ID of agora"),
    (lambda docs: cert(docs, "user-mtls")["spec"]["usages"].remove("server auth"), "lacks the usage 'server auth'"),
    (lambda docs: cert(docs, "auth-mtls")["spec"]["issuerRef"].update(name="agora-ca-typo"),
     "Certificate/auth-mtls: no Issuer agora-ca-typo"),
    (lambda docs: cert(docs, "auth-mtls")["metadata"].update(namespace="default"),
     "Deployment/auth/auth: no Secret of a Certificate in its namespace"),
    (lambda docs: cert(docs, "product-mtls")["spec"]["issuerRef"].update(name="agora-selfsigned"), "several issuers"),
    (lambda docs: next(m for m in pod_spec(deployment(docs, "gateway"))["containers"][0]["volumeMounts"]
                       if m["mountPath"] == TLS_DIR).update(mountPath="/tls"),
     "Deployment/gateway/gateway: no Secret of a Certificate"),
    (lambda docs: next(p for p in pod_spec(deployment(docs, "inventory"))["containers"][0]["ports"]
                       if p["name"] == "health").update(containerPort=50049),
     "health port [50049] is not mtls.health_port (50050)"),
])
def test_the_mtls_checks_catch_a_wrong_identity_usage_issuer_namespace_mount_and_health_port(breakage, expected):
    docs = copy.deepcopy(manifests("prod+mtls"))
    breakage(docs)
    assert any(expected in v for v in mtls_violations(docs)), mtls_violations(docs)


def test_with_mtls_the_policy_wants_the_probes_on_the_health_port():
    docs = copy.deepcopy(manifests("prod+mtls"))
    pod_spec(deployment(docs, "auth"))["containers"][0]["readinessProbe"]["grpc"]["port"] = 50051
    assert "Deployment/auth/auth: readinessProbe is not a native gRPC probe on the health port" in \
        violations(docs, by_digest=True)


@pytest.mark.parametrize("breakage, expected", [
    (lambda c: c.pop("livenessProbe"), "no livenessProbe"),
    (lambda c: c["resources"].pop("limits"), "no cpu and memory limits"),
    (lambda c: c["securityContext"].update(readOnlyRootFilesystem=False), "root filesystem is not read-only"),
    (lambda c: c.update(image="ghcr.io/agora/agora:latest"), "is not pinned"),
    (lambda c: c.update(image="ghcr.io/agora/agora:0.1.0"), "is not pinned by digest"),
    (lambda c: c["env"].append({"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "r", "key": "url"}}}),
     "secret in environment variable REDIS_URL"),
    (lambda c: c["readinessProbe"].update(failureThreshold=1), "failureThreshold below 3"),
])
def test_the_policy_catches_each_kind_of_broken_container(breakage, expected):
    docs = copy.deepcopy(manifests("prod"))
    auth = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "auth")
    breakage(pod_spec(auth)["containers"][0])
    assert any(expected in v for v in violations(docs, by_digest=True)), violations(docs, by_digest=True)


@pytest.mark.parametrize("breakage, expected", [
    (lambda d: d["spec"].update(replicas=3), "sets replicas although an HPA scales it"),
    (lambda d: pod_spec(d)["topologySpreadConstraints"].pop(0), "not spread by topology.kubernetes.io/zone"),
    (lambda d: pod_spec(d)["containers"][0]["readinessProbe"].update(timeoutSeconds=2), "probe_timeout"),
])
def test_the_policy_catches_a_fixed_replica_count_a_missing_spread_and_a_short_edge_probe(breakage, expected):
    docs = copy.deepcopy(manifests("prod"))
    breakage(next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway"))
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
    assert compose["gateway"]["healthcheck"]["test"][:4] == ["CMD", "/usr/local/bin/agora", "health", "--http"]


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


PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
METRICS_PORT = 9464


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=PROMETHEUS)


def test_promtool_passes_the_scrape_config_the_rules_and_the_rules_unit_tests(tmp_path):
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "rules.yml"],
                 ["test", "rules", "rules_test.yml"]):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "rules.yml"
    broken.write_text((PROMETHEUS / "rules.yml").read_text().replace("[1m]))", "[1m])", 1))
    assert promtool("check", "rules", str(broken)).returncode != 0, "a broken expression must fail"
    # An alert that no longer fires fails the unit tests.
    (tmp_path / "rules.yml").write_text((PROMETHEUS / "rules.yml").read_text().replace(
        "agora_outbox_lag_seconds:max > 60", "agora_outbox_lag_seconds:max > 6000"))
    (tmp_path / "rules_test.yml").write_text((PROMETHEUS / "rules_test.yml").read_text())
    assert promtool("test", "rules", str(tmp_path / "rules_test.yml")).returncode != 0


def test_compose_prometheus_scrapes_every_agora_container_and_grafana_gets_the_dashboard():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    agora = next(j for j in config["scrape_configs"] if j["job_name"] == "agora")
    targets = {t: s["labels"]["service"] for s in agora["static_configs"] for t in s["targets"]}
    serving = [name for name, s in compose.items() if s.get("command", [None])[0] == "serve"]
    assert sorted(serving) == sorted(runner.ORDER)
    for name in serving:
        assert compose[name]["environment"]["AGORA_TELEMETRY__METRICS_ADDR"] == f"0.0.0.0:{METRICS_PORT}"
        assert targets.pop(f"{name}:{METRICS_PORT}") == name
    assert targets == {}, "a target that is no container"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["prometheus"]["volumes"] if v.startswith("./")}
    assert mounts["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/rules.yml"] == "./deploy/prometheus/rules.yml"
    assert config["rule_files"] == ["rules.yml"]
    grafana = {v.split(":")[1]: v.split(":")[0] for v in compose["grafana"]["volumes"]}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "agora.yml").read_text())["providers"][0]
    assert (ROOT / grafana[provider["options"]["path"]] / "agora.json").is_file()
    assert (ROOT / grafana["/etc/grafana/provisioning"]).resolve() == (GRAFANA / "provisioning").resolve()
    source = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    assert source["url"] == "http://prometheus:9090" and "9090:9090" in compose["prometheus"]["ports"]


def test_the_dashboard_reads_only_recording_rules_that_exist_and_metrics_of_the_agreed_names():
    rules = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    dashboard = json.loads((GRAFANA / "dashboards" / "agora.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    used = {name for e in exprs for name in re.findall(r"[a-z_]+:[a-z_0-9]+:[a-z_0-9]+", e)}
    assert used and used <= recorded, used - recorded
    # Plain metric names: those of docs/metrics.md's table and the agreed instrument names.
    plain = {name for e in exprs for name in re.findall(r"\b((?:agora|process|rpc|http)_[a-z_]+)\b", e)
             if not name.startswith(("agora_order_outcome", "agora_retry_outcome", "agora_rate_limit_policy"))}
    assert {"agora_outbox_backlog", "agora_events_dead_lettered_total", "process_cpu_time_seconds_total"} <= plain
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"]


@pytest.mark.parametrize("overlay", RENDERINGS)
def test_every_agora_pod_is_annotated_for_the_scrape_which_its_network_policies_allow(overlay):
    docs = manifests(overlay)
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
    scrape = yaml.safe_load((PROMETHEUS / "k8s.yml").read_text())["scrape_configs"][0]
    relabelled = {label for r in scrape["relabel_configs"] for label in r["source_labels"]}
    pods = [d for d in docs if d["kind"] == "Deployment"
            and d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") in {"service", "edge"}]
    assert len(pods) == 6
    for d in pods:
        meta = d["spec"]["template"]["metadata"]
        assert meta["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": str(METRICS_PORT),
                                       "prometheus.io/path": "/metrics"}, d["metadata"]["name"]
        for key in meta["annotations"]:
            assert "__meta_kubernetes_pod_annotation_" + re.sub(r"[./]", "_", key) in relabelled
        ports = {p["name"]: p["containerPort"] for p in pod_spec(d)["containers"][0]["ports"]}
        assert ports["metrics"] == METRICS_PORT
        allowed = [rule for p in policies if selects(p["podSelector"], meta["labels"]) for rule in p.get("ingress", [])
                   if {"protocol": "TCP", "port": METRICS_PORT} in rule.get("ports", [])]
        assert any(f.get("namespaceSelector", {}).get("matchLabels") == {"kubernetes.io/metadata.name": "monitoring"}
                   and f.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": "prometheus"}
                   for rule in allowed for f in rule["from"]), d["metadata"]["name"]
