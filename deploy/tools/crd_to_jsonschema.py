#!/usr/bin/env python3
"""Turn CustomResourceDefinition YAMLs into kubeconform JSON schemas, offline.

    crd_to_jsonschema.py OUT_DIR CRD.yaml [CRD.yaml ...]

writes ``OUT_DIR/{group}/{kind}_{version}.json`` for every served version, for
``-schema-location 'OUT_DIR/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'``.

The schemas are made *strict* the way the API server behaves: it prunes fields a
structural schema does not declare, so a misspelt field silently does nothing in
a cluster. Here every object that declares ``properties`` and neither
``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields`` rejects
unknown fields, so the typo fails the check instead. ``metadata`` gets the real
ObjectMeta schema when one is given (``--object-meta`` a standalone Kubernetes
schema file that contains it), because CRDs only say ``type: object`` there.

Needs PyYAML (the project's dev environment has it).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _strict(node: Any) -> Any:
    """OpenAPI v3 (Kubernetes dialect) -> JSON Schema with unknown fields rejected."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") or key in ("allOf", "anyOf", "oneOf"):
            out[key] = _strict(value)
        else:
            out[key] = value
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def convert(
    crd: dict[str, Any], object_meta: dict[str, Any] | None
) -> dict[tuple[str, str, str], dict[str, Any]]:
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = version.get("schema", {}).get("openAPIV3Schema")
        if schema is None:
            raise ValueError(f"{kind} {version['name']} has no openAPIV3Schema")
        root = _strict(copy.deepcopy(schema))
        props = root.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        if object_meta is not None:
            props["metadata"] = {"$ref": f"#/$defs/{OBJECT_META}"}
            root["$defs"] = object_meta
        root["additionalProperties"] = False
        root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out[(group, kind.lower(), version["name"])] = root
    return out


def _object_meta(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    defs = json.loads(path.read_text())["$defs"]
    # ObjectMeta's own closure: OwnerReference, ManagedFieldsEntry, Time, ...
    keep = {name: d for name, d in defs.items() if name.startswith("io.k8s.apimachinery.")}
    if OBJECT_META not in keep:
        raise SystemExit(f"{path} does not contain {OBJECT_META}")
    return keep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("crds", type=Path, nargs="+")
    parser.add_argument("--object-meta", type=Path, help="standalone k8s schema with ObjectMeta")
    args = parser.parse_args(argv)
    meta = _object_meta(args.object_meta)
    written = 0
    for path in args.crds:
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for (group, kind, version), schema in convert(doc, meta).items():
                target = args.out_dir / group / f"{kind}_{version}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, indent=1, sort_keys=True))
                print(f"  {group}/{version} {kind} <- {path.name}")
                written += 1
    if not written:
        print("no CustomResourceDefinition found", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
