#!/usr/bin/env python3
"""Kubernetes JSON schemas for kubeconform, built offline from the ``kubernetes-validate`` wheel.

kubeconform fetches its schemas from GitHub, which deploy-check cannot reach. The
PyPI package ``kubernetes-validate`` ships the same OpenAPI-derived schemas for
many Kubernetes versions, but in a "local" layout whose ``$ref``s point at
``https://kubernetes.io/api/_definitions.json``: kubeconform would try to fetch
that URL. This script rewrites each top-level kind into a standalone file (refs
made document-local, only the definitions it reaches copied in), in kubeconform's
``{version}-standalone-strict/{kind}{-group-version}.json`` layout.

    k8s_jsonschema.py WHEEL OUT_DIR 1.31.0 1.35.0

Standard library only: it runs before (and without) the project's virtualenv.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

PREFIX = "kubernetes_validate/kubernetes-json-schema"
REF = re.compile(
    r"^(?:/api/_definitions\.json|https://kubernetes\.io/api/_definitions\.json)?#/\$defs/(.+)$"
)


def _localise(node: Any, reached: set[str]) -> Any:
    """Copy of ``node`` with every definitions ref made local; collect the names."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                match = REF.match(value)
                if not match:
                    raise ValueError(f"unexpected $ref {value}")
                reached.add(match.group(1))
                out[key] = f"#/$defs/{match.group(1)}"
            else:
                out[key] = _localise(value, reached)
        return out
    if isinstance(node, list):
        return [_localise(item, reached) for item in node]
    return node


def standalone(kind_schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    reached: set[str] = set()
    root = _localise(kind_schema, reached)
    root.pop("$id", None)  # an https $id would make the validator resolve refs remotely
    closure: dict[str, Any] = {}
    pending = list(reached)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        found: set[str] = set()
        closure[name] = _localise(defs[name], found)
        pending.extend(found - closure.keys())
    root["$defs"] = dict(sorted(closure.items()))
    return root


def build(wheel: Path, out_dir: Path, version: str) -> int:
    src = f"{PREFIX}/v{version}-local-strict/"
    dest = out_dir / f"v{version}-standalone-strict"
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith(src) and n.endswith(".json")]
        if not names:
            raise SystemExit(f"{wheel.name} has no schemas for Kubernetes {version}")
        defs = json.loads(zf.read(src + "_definitions.json"))["$defs"]
        for name in names:
            base = name[len(src) :]
            if base.startswith("_") or base == "all.json":
                continue
            schema = json.loads(zf.read(name))
            # Only API kinds (with a group-version-kind) can appear in a manifest.
            if "x-kubernetes-group-version-kind" not in schema:
                continue
            (dest / base).write_text(json.dumps(standalone(schema, defs), separators=(",", ":")))
            count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, out_dir = Path(argv[0]), Path(argv[1])
    for version in argv[2:]:
        print(f"kubernetes {version}: {build(wheel, out_dir, version)} kinds -> {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
