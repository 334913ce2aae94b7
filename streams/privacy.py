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

import re
import zlib
from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson

CONTROL_VERSION: Final = 1
AUDIT_VERSION: Final = 1
#: A user pseudonym as the collectors write it (HMAC-SHA256, lowercase hex): a request
#: naming anything else would put a login, or a typo, in the audit log for 400 days.
PSEUDONYM: Final = re.compile(r"[0-9a-f]{64}")


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
    if not isinstance(request.user, str) or not PSEUDONYM.fullmatch(request.user):
        raise ValueError("forget request whose user is not a pseudonym (64 hex digits)")
    return request


def user_partition(user: str, partitions: int) -> int:
    """The partition of ``user``'s events: the collectors' client (librdkafka) keys them
    by pseudonym with its default partitioner, CRC-32 of the key modulo the count.

    >>> user_partition("ab" * 32, 12) == zlib.crc32(b"ab" * 32) % 12
    True
    """
    return zlib.crc32(user.encode()) % partitions


def misdirected(
    request: ForgetRequest, key: bytes | None, partition: int, partitions: int
) -> tuple[str, str] | None:
    """Why a decoded request must not be carried out here: ``(reason, detail)``, or None.

    The tombstone is written to the request's partition, which is the user's profile
    partition only if the request was keyed by the user and partitioned as the events
    were (another client's partitioner, e.g. Java's murmur2, puts it elsewhere): then
    the profile would survive in its own partition while the audit said it was erased.

    >>> r = ForgetRequest(user="ab" * 32, request_id="r", requested_by="dpo", requested_at_ms=1.0)
    >>> misdirected(r, r.user.encode(), user_partition(r.user, 6), 6) is None
    True
    >>> misdirected(r, b"someone else", user_partition(r.user, 6), 6)[0]
    'key_mismatch'
    """
    if key != request.user.encode():
        return "key_mismatch", "record key is not the request's user pseudonym"
    wrong = misplaced(request.user, partition, partitions, "the request")
    if wrong is not None:
        return "wrong_partition", f"{wrong} (use `cadence profiles forget`)"
    return None


def misplaced(user: str, partition: int, partitions: int, what: str) -> str | None:
    """Why ``what`` (a batch, a request) of ``user`` on ``partition`` is not on the user's
    partition, which holds their events and profile; None if it is.

    >>> misplaced("ab" * 32, user_partition("ab" * 32, 6), 6, "this batch") is None
    True
    """
    expected = user_partition(user, partitions)
    if partition == expected:
        return None
    return (
        f"the user's events and profile are on partition {expected}, {what} on "
        f"{partition}: not written with the collectors' partitioner"
    )


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
