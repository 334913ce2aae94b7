"""The verdict: what cadence says about one user window, on ``cadence.verdicts.v1``.

This module owns the record; the SOC tooling, ``cadence verdicts tail`` and the
tests import it. Records are JSON (orjson), keyed by the user pseudonym.

The verdict id is derived from the window's identity (user, device, session and
the sequence numbers of its first and last batch), so a window reprocessed after
a crash or a rebalance yields a verdict with the same id: consumers deduplicate
on ``verdict_id`` (at-least-once delivery).

>>> v = Verdict(verdict_id=verdict_id("u", "d", "s", 1, 4), user="u", device="d",
...     session="s", window_start_ms=1.7e12, window_end_ms=1.7e12 + 5000,
...     keyboard_score=0.2, mouse_score=None, trust=93.5, level="trusted",
...     reasons=(), enrollment="active", model_version="m1", emitted_at_ms=1.7e12 + 5100,
...     events=42)
>>> decode_verdict(encode_verdict(v)) == v
True
>>> decode_verdict(encode_verdict(v)[:-1] + b',"added_in_a_later_v1":true}') == v
True
>>> verdict_id("u", "d", "s", 1, 4) == verdict_id("u", "d", "s", 1, 4)
True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final

import orjson

VERDICT_SCHEMA_VERSION: Final = 1
LEVELS: Final = ("trusted", "uncertain", "suspicious", "impostor")
ENROLLMENT_STATES: Final = ("enrolling", "active")


@dataclass(frozen=True, slots=True)
class Verdict:
    """One decision about one window of one user's activity.

    Scores are calibrated so that one threshold means the same false-alarm rate
    for every user: 0 is typical of the owner, 1 is beyond anything the owner
    did during enrollment. ``None`` means the window had too little of that
    modality to judge, or the profile is still enrolling.
    """

    verdict_id: str
    user: str
    device: str
    session: str
    window_start_ms: float
    window_end_ms: float
    keyboard_score: float | None
    mouse_score: float | None
    trust: float
    level: str
    reasons: tuple[str, ...]
    enrollment: str
    model_version: str
    emitted_at_ms: float
    events: int
    v: int = VERDICT_SCHEMA_VERSION


def verdict_id(user: str, device: str, session: str, first_seq: int, last_seq: int) -> str:
    """Deterministic id of the window made of batches ``first_seq..last_seq``."""
    digest = hashlib.sha256(
        f"{user}\x1f{device}\x1f{session}\x1f{first_seq}\x1f{last_seq}".encode()
    )
    return digest.hexdigest()[:32]


def encode_verdict(verdict: Verdict) -> bytes:
    # orjson serialises a dataclass's fields in order, the same bytes as ``asdict`` gives,
    # without ``asdict``'s deep copy of every field (a tenth of the cost, per verdict).
    return orjson.dumps(verdict)


def decode_verdict(data: bytes | str) -> Verdict:
    """Parse a verdict; raises ``ValueError`` on anything that is not a v1 verdict.

    Fields a later v1 adds are ignored, as the schema promises its consumers; the
    fields this version knows are type-checked, so a consumer never formats a string
    as a trust or iterates a null as reasons.

    >>> decode_verdict(b'{"v": 1, "verdict_id": 7}')
    Traceback (most recent call last):
    ...
    ValueError: not a v1 verdict: verdict_id must be a string
    """
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != VERDICT_SCHEMA_VERSION:
        raise ValueError("not a v1 verdict")
    known: dict[str, Any] = {}
    for name, (expected, check) in _FIELD_CHECKS.items():
        if name not in obj:
            raise ValueError(f"not a v1 verdict: {name} is missing")
        if not check(obj[name]):
            raise ValueError(f"not a v1 verdict: {name} must be {expected}")
        known[name] = obj[name]
    known["reasons"] = tuple(known["reasons"])
    verdict = Verdict(**known)
    if verdict.level not in LEVELS:
        raise ValueError(f"unknown level {verdict.level!r}")
    # The schema's value rules too, not only its types: a consumer that sorts by trust or
    # groups by enrollment must not be handed 500 or "bogus" as a verdict.
    problem = _out_of_range(verdict)
    if problem:
        raise ValueError(f"not a v1 verdict: {problem}")
    return verdict


#: A verdict id as :func:`verdict_id` writes it (the schema's pattern, streams.schema).
VERDICT_ID_PATTERN: Final = "[0-9a-f]{32}"
_VERDICT_ID = re.compile(VERDICT_ID_PATTERN)


def _out_of_range(v: Verdict) -> str | None:
    if not _VERDICT_ID.fullmatch(v.verdict_id):
        return "verdict_id must be 32 lowercase hex digits"
    if v.enrollment not in ENROLLMENT_STATES:
        return f"enrollment must be one of {', '.join(ENROLLMENT_STATES)}"
    if not 0.0 <= v.trust <= 100.0:
        return "trust must be within 0..100"
    for name in ("keyboard_score", "mouse_score"):
        score = getattr(v, name)
        if score is not None and not 0.0 <= score <= 1.0:
            return f"{name} must be within 0..1 or null"
    if v.events < 0:
        return "events must not be negative"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# What a value of each annotation of Verdict's fields must be on the wire; the field list
# itself is read from the dataclass, so a field added there is checked here too.
_CHECKS: Final[dict[str, tuple[str, Callable[[Any], bool]]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "float": ("a number", _number),
    "float | None": ("a number or null", lambda v: v is None or _number(v)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "tuple[str, ...]": (
        "a list of strings",
        lambda v: isinstance(v, list) and all(isinstance(r, str) for r in v),
    ),
}
_FIELD_CHECKS: Final = {f.name: _CHECKS[str(f.type)] for f in fields(Verdict)}
