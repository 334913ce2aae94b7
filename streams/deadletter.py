"""Dead-letter record v1 (``cadence.deadletter.v1``): a record the worker did not judge, and why.

The key and value are the original record's, as read. Headers say why and where from:

========================  =====================================================
``cadence-reason``        one of :data:`REASONS`
``cadence-field``         the field at fault (``seq``, ``sent_at_ms``, ``batch``, ...)
``cadence-detail``        a human-readable explanation, at most 1 024 bytes
``cadence-source``        ``topic:partition:offset`` of the original record
``cadence-value-bytes``   only for a value too large to keep: its size ...
``cadence-value-sha256``  ... and its digest (the value itself is left empty)
``cadence-key-bytes``     likewise for a key over :data:`MAX_KEY_BYTES` (a pseudonym
``cadence-key-sha256``    is 64): the dead letter then has no key
========================  =====================================================

librdkafka refuses values over ``message.max.bytes`` (1 000 000 by default) even when
the events topic took the record compressed, so a value over :data:`MAX_VALUE_BYTES`
is replaced by its size and digest; the original stays on the events topic for its
retention, at the source offset given.

>>> letter = dead_letter("cadence.events.v1", 3, 42, b"user", b"{", "malformed", "batch", "bad JSON")
>>> letter.headers[REASON], letter.headers[SOURCE], letter.value
(b'malformed', b'cadence.events.v1:3:42', b'{')
>>> reason_of(list(letter.headers.items()))
'malformed'
>>> big = dead_letter("t", 0, 1, None, b"x" * (MAX_VALUE_BYTES + 1), "malformed", "batch", "")
>>> big.value, big.headers[VALUE_BYTES]
(b'', b'900001')
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

# Why a record is dead-lettered (docs/runbooks.md, "CadenceDeadLetters").
REASONS = (
    "malformed",
    "schema_version",
    "key_mismatch",
    "unauthenticated",
    "absurd_timestamp",
    "sequence_conflict",
    "processing_error",
    "wrong_partition",
)

REASON = "cadence-reason"
FIELD = "cadence-field"
DETAIL = "cadence-detail"
SOURCE = "cadence-source"
VALUE_BYTES = "cadence-value-bytes"
VALUE_SHA256 = "cadence-value-sha256"
KEY_BYTES = "cadence-key-bytes"
KEY_SHA256 = "cadence-key-sha256"

MAX_VALUE_BYTES = 900_000
MAX_DETAIL_BYTES = 1024
# Keys are pseudonyms (64 bytes); a forged one of ~1 MB (compressed on the events topic)
# would make the dead letter larger than librdkafka takes, and it could never be sent.
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class DeadLetter:
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    reason: str,
    field: str,
    detail: str,
) -> DeadLetter:
    """The dead letter of the record at ``topic:partition:offset``.

    ``reason`` should be one of :data:`REASONS` (their metric series exist from the
    start); another is still written, never refused: refusing would lose the record.
    """
    headers = {
        REASON: reason.encode(),
        FIELD: field.encode(),
        # Cut at a character boundary: a detail may quote the input (non-ASCII text).
        DETAIL: detail.encode()[:MAX_DETAIL_BYTES].decode(errors="ignore").encode(),
        SOURCE: f"{topic}:{partition}:{offset}".encode(),
    }
    if len(value) > MAX_VALUE_BYTES:
        headers.update(_size_and_digest(VALUE_BYTES, VALUE_SHA256, value))
        value = b""
    if key is not None and len(key) > MAX_KEY_BYTES:
        headers.update(_size_and_digest(KEY_BYTES, KEY_SHA256, key))
        key = None
    return DeadLetter(key, value, headers)


def _size_and_digest(size_header: str, digest_header: str, data: bytes) -> dict[str, bytes]:
    """What stands in for bytes too large to send: their size and SHA-256."""
    return {
        size_header: str(len(data)).encode(),
        digest_header: hashlib.sha256(data).hexdigest().encode(),
    }


def reason_of(headers: Iterable[tuple[str, bytes | None]]) -> str | None:
    """The reason a dead letter's headers give (as a Kafka client returns them)."""
    for name, value in headers:
        if name == REASON and value is not None:
            return value.decode()
    return None
