"""Validates custom resources offline against their CRDs' openAPIV3Schema, as strictly as the
API server with `kubectl apply --validate=strict`: unknown fields are errors. What JSON Schema
cannot check is left out: the CEL rules (`x-kubernetes-validations`) the API server also runs.
"""

from __future__ import annotations

import functools
import pathlib

import jsonschema
import yaml


def strict(schema: dict) -> dict:
    """The schema with unknown fields rejected wherever the CRD does not keep them."""
    out = {k: strict(v) if isinstance(v, dict) else [strict(i) if isinstance(i, dict) else i for i in v]
           if isinstance(v, list) else v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    return out


@functools.cache
def load(*paths: pathlib.Path) -> dict[tuple[str, str], dict]:
    """Every served version of every CRD in `paths`, by (apiVersion, kind); read once (callers must
    not change the schemas)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas = {}
    for crd in (d for path in paths for d in yaml.load_all(path.read_text(), Loader=loader) if d):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = strict(version["schema"]["openAPIV3Schema"])
                # The API server fills and checks these itself.
                schema["properties"]["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def errors(doc: dict, schemas: dict[tuple[str, str], dict]) -> list[str]:
    """What is wrong with `doc`; empty when its CRD accepts it."""
    schema = schemas.get((doc.get("apiVersion"), doc.get("kind")))
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    if schema is None:
        return [f"{name}: no CRD serves {doc.get('apiVersion')} {doc.get('kind')}"]
    return [f"{name}: {e.json_path}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
