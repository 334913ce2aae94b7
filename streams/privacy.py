"""Data-protection requests to the worker, and the audit records of what it did.

Only the worker may change its profile table (it caches decoded profiles and writes
the changelog), so an erasure is a request *to the worker*: ``cadence profiles forget``
writes a :class:`ForgetRequest` to ``cadence.control.v1``, keyed by the pseudonym.
That topic has as many partitions as the events topic and is written with the
collectors' partitioner, so a user's request lands on the same partition number as
the user's events and Faust assigns both to the same worker, the one holding the
profile. The worker deletes it (tombstone in the changelog), drops its cached state
and open window, and publishes an audit record to ``cadence.audit.v1``.

>>> r = ForgetRequest(user="ab" * 32, request_id="r1", requested_by="dpo", requested_at_ms=1.0)
>>> decode_request(encode_request(r)) == r
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson

CONTROL_VERSION: Final = 1
AUDIT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class ForgetRequest:
    """Erase everything the worker holds about ``user`` (a pseudonym)."""

    user: str
    request_id: str
    requested_by: str
    requested_at_ms: float
    op: str = "forget"
    v: int = CONTROL_VERSION


def encode_request(request: ForgetRequest) -> bytes:
    return orjson.dumps(asdict(request))


def decode_request(data: bytes) -> ForgetRequest:
    """Parse a control record; ``ValueError`` for anything this worker does not understand."""
    try:
        obj: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict) or obj.get("v") != CONTROL_VERSION or obj.get("op") != "forget":
        raise ValueError("not a v1 forget request")
    try:
        request = ForgetRequest(**obj)
    except TypeError as exc:
        raise ValueError(f"not a v1 forget request: {exc}") from None
    if not isinstance(request.user, str) or not request.user:
        raise ValueError("forget request without a user")
    return request


def audit_record(
    request: ForgetRequest, *, had_profile: bool, partition: int, worker: str, done_at_ms: float
) -> bytes:
    """What the audit topic keeps about an erasure: who asked, when, and what was done."""
    return orjson.dumps(
        {
            "v": AUDIT_VERSION,
            "event": "profile_forgotten",
            "user": request.user,
            "request_id": request.request_id,
            "requested_by": request.requested_by,
            "requested_at_ms": request.requested_at_ms,
            "done_at_ms": done_at_ms,
            "had_profile": had_profile,
            "changelog_partition": partition,
            "worker": worker,
        }
    )
