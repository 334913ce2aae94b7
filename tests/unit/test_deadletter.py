"""The dead-letter record's headers."""

from __future__ import annotations

from streams.deadletter import DETAIL, MAX_DETAIL_BYTES, dead_letter


def test_a_long_non_ascii_detail_is_cut_at_a_character_boundary() -> None:
    # Details quote the input (an unknown event kind's repr): cut mid-character, the
    # header no longer decodes as UTF-8 for whoever reads the dead letters.
    letter = dead_letter("t", 0, 1, b"k", b"v", "malformed", "events", "'x" + "é" * 600 + "'")
    detail = letter.headers[DETAIL]
    assert len(detail) <= MAX_DETAIL_BYTES
    assert detail.decode() == "'x" + "é" * ((MAX_DETAIL_BYTES - 2) // 2)
