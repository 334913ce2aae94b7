"""The dead-letter record's headers."""

from __future__ import annotations

import hashlib

from streams.deadletter import (
    DETAIL,
    KEY_BYTES,
    KEY_SHA256,
    MAX_DETAIL_BYTES,
    MAX_KEY_BYTES,
    dead_letter,
)


def test_a_long_non_ascii_detail_is_cut_at_a_character_boundary() -> None:
    # Details quote the input (an unknown event kind's repr): cut mid-character, the
    # header no longer decodes as UTF-8 for whoever reads the dead letters.
    letter = dead_letter("t", 0, 1, b"k", b"v", "malformed", "events", "'x" + "é" * 600 + "'")
    detail = letter.headers[DETAIL]
    assert len(detail) <= MAX_DETAIL_BYTES
    assert detail.decode() == "'x" + "é" * ((MAX_DETAIL_BYTES - 2) // 2)


def test_a_key_too_large_to_send_is_replaced_by_its_size_and_digest() -> None:
    # A forged record with a ~1 MB key (compressed on the events topic) made a dead letter
    # librdkafka refuses: the agent's fallback failed too and the record stalled its
    # partition. The source offset still points at the original.
    key = b"k" * (MAX_KEY_BYTES + 1)
    letter = dead_letter("t", 0, 1, key, b"v", "key_mismatch", "user", "")
    assert letter.key is None
    assert letter.headers[KEY_BYTES] == str(len(key)).encode()
    assert letter.headers[KEY_SHA256] == hashlib.sha256(key).hexdigest().encode()
    assert dead_letter("t", 0, 1, b"u" * 64, b"v", "malformed", "v", "").key == b"u" * 64
