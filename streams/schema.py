"""The JSON Schema of the verdict record, generated from :class:`streams.verdict.Verdict`.

SIEMs and data-contract tooling want a schema file, not a Python dataclass. The
file ``docs/schemas/verdict.v1.json`` is this module's output, committed so that
consumers can fetch it without running cadence; a test fails when the two drift
apart. Regenerate with ``python -m streams.schema > docs/schemas/verdict.v1.json``.

Versioning (see docs/soc.md): adding an optional field keeps v1, and consumers
must ignore fields they do not know (``additionalProperties`` stays open for
that reason). Removing, renaming or retyping a field, tightening an enum, or
changing what a value means is v2, published on a new topic
(``cadence.verdicts.v2``) next to v1 until every consumer has moved.

>>> schema = verdict_schema()
>>> schema["properties"]["level"]["enum"]
['trusted', 'uncertain', 'suspicious', 'impostor']
>>> schema["properties"]["keyboard_score"]["type"]
['number', 'null']
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from typing import Any, Final

from streams.verdict import (
    ENROLLMENT_STATES,
    LEVELS,
    VERDICT_ID_PATTERN,
    VERDICT_SCHEMA_VERSION,
    Verdict,
)

SCHEMA_ID: Final = "urn:cadence:schema:verdict:v1"

# What each field means for the people who triage on it; every field must have one.
DESCRIPTIONS: Final[dict[str, str]] = {
    "verdict_id": "Deterministic id of the judged window (32 hex digits); a window judged "
    "again after a crash gets the same id, so deduplicate on it (at-least-once delivery).",
    "user": "Pseudonym of the account: HMAC-SHA256 of the login under the deployment key. "
    "Only holders of that key can name the person (`cadence pseudonym LOGIN`).",
    "device": "Opaque workstation id (HMAC of the machine id under the deployment key).",
    "session": "Random id of the login session (new at login, unlock, resume after idle).",
    "window_start_ms": "Event time of the window's first input event, Unix epoch milliseconds.",
    "window_end_ms": "Event time of the window's last input event, Unix epoch milliseconds.",
    "keyboard_score": "Calibrated keystroke anomaly in [0, 1]: 0 typical of the owner, 1 beyond "
    "anything the owner did while enrolling; null if too little typing or still enrolling.",
    "mouse_score": "Calibrated mouse anomaly in [0, 1], same scale as keyboard_score; null if "
    "too little mouse activity or still enrolling.",
    "trust": "Running trust in the owner's presence, 0-100, decays with anomalous windows and "
    "recovers with typical ones.",
    "level": "Decision for this window: trusted, uncertain, suspicious (investigate) or "
    "impostor (act); always uncertain while the profile is enrolling.",
    "reasons": "Up to three human-readable features that deviate most from the owner's "
    "profile, with their z-score; empty for trusted and uncertain. Whatever the level, a "
    "window with input the OS marked as synthetic starts with 'input marked synthetic by "
    "the OS: N of M events, not learned', and one whose typing is too regular for a person "
    "(a script's timing) carries 'typing too regular for a person (...), not learned'.",
    "enrollment": "Profile state: enrolling (still learning the owner, no decision) or active.",
    "model_version": "Version of the detector and profile encoding that produced the verdict.",
    "emitted_at_ms": "Wall-clock time the worker emitted the verdict, Unix epoch milliseconds.",
    "events": "Number of raw input events in the window.",
    "v": "Record schema version; always 1 on cadence.verdicts.v1.",
}

# Field-level constraints that the dataclass types alone cannot say.
_CONSTRAINTS: Final[dict[str, dict[str, Any]]] = {
    "verdict_id": {"pattern": f"^{VERDICT_ID_PATTERN}$"},
    "keyboard_score": {"minimum": 0, "maximum": 1},
    "mouse_score": {"minimum": 0, "maximum": 1},
    "trust": {"minimum": 0, "maximum": 100},
    "level": {"enum": list(LEVELS)},
    "enrollment": {"enum": list(ENROLLMENT_STATES)},
    "events": {"minimum": 0},
    "v": {"const": VERDICT_SCHEMA_VERSION},
}

_SCALARS: Final[dict[Any, str]] = {str: "string", float: "number", int: "integer", bool: "boolean"}


def _json_type(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(annotation)
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported union {annotation!r}")
        out = _json_type(inner[0])
        if type(None) in args:
            out["type"] = [out["type"], "null"]
        return out
    if origin is tuple:
        item, ellipsis = typing.get_args(annotation)
        if ellipsis is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is supported, not {annotation!r}")
        return {"type": "array", "items": _json_type(item)}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    raise TypeError(f"no JSON Schema type for {annotation!r}")


def verdict_schema() -> dict[str, Any]:
    """Draft 2020-12 schema of one verdict record, as emitted by ``encode_verdict``."""
    hints = typing.get_type_hints(Verdict)
    properties: dict[str, Any] = {}
    for f in dataclasses.fields(Verdict):
        prop = {"description": DESCRIPTIONS[f.name], **_json_type(hints[f.name])}
        prop.update(_CONSTRAINTS.get(f.name, {}))
        properties[f.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "cadence verdict v1",
        "description": "One decision about one window of one user's activity, published as "
        "JSON on cadence.verdicts.v1, keyed by the user pseudonym. Consumers must ignore "
        "unknown fields: optional fields may be added within v1.",
        "type": "object",
        # Every current field is always present; fields added later within v1 will not be.
        "required": list(properties),
        "properties": properties,
        "additionalProperties": True,
    }


def render() -> str:
    return json.dumps(verdict_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
