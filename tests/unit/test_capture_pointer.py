"""The X11 RECORD pointer parser, fed synthetic replies (no X server needed)."""

from __future__ import annotations

import struct
from typing import Any

from collectors.capture import _REPLY_HEADER, Capture, XRecordInput
from collectors.wire import FLAG_INJECTED, Event, MouseEvent


def _event(code: int, detail: int, x: int, y: int) -> bytes:
    ev = bytearray(32)
    ev[0], ev[1] = code, detail
    struct.pack_into("=hh", ev, 20, x, y)
    return bytes(ev)


def _reply(*events: bytes, category: int = 0) -> bytes:
    data = b"".join(events)
    return _REPLY_HEADER.pack(1, category, 0, len(data) // 4) + bytes(24) + data


class _Sock:
    """Hands out the given chunks, then end-of-file."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def recv(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def setblocking(self, flag: bool) -> None:
        pass


def _pointer(out: list[Event], chunks: list[bytes]) -> XRecordInput:
    cap = Capture(out.append)
    p = XRecordInput.__new__(XRecordInput)  # skip the X connections
    p._on_move, p._on_click, p._on_scroll = cap.on_move, cap.on_click, cap.on_scroll
    sock: Any = _Sock(chunks)
    p._sock = sock
    return p


def test_replies_become_wire_events_even_when_split_across_reads() -> None:
    start = _reply(category=4)  # StartOfData: ignored
    body = _reply(
        _event(6, 0, 10, 20),  # move
        _event(4, 1, 10, 20),  # left down
        _event(5, 1, 10, 20),  # left up
        _event(4, 3, 11, 21),  # right down
        _event(4, 4, 11, 21),  # wheel up: a scroll, its release is not a click
        _event(5, 4, 11, 21),
        _event(4, 7, -5, 3),  # wheel right
        _event(4 | 0x80, 2, 12, 22),  # a SendEvent (synthetic) middle-button press
    )
    end = _reply(category=5)  # EndOfData: the reader returns
    stream = start + body + end
    out: list[Event] = []
    p = _pointer(out, [stream[:40], stream[40:100], stream[100:]])
    p._read()
    kinds = [(e.kind, e.x, e.y) for e in out if isinstance(e, MouseEvent)]
    assert kinds[:4] == [("mm", 10, 20), ("md", 10, 20), ("mu", 10, 20), ("md", 11, 21)]
    md_right = out[3]
    assert isinstance(md_right, MouseEvent) and md_right.button == 2  # X 3 = right = wire 2
    scrolls = [(e.dx, e.dy) for e in out if isinstance(e, MouseEvent) and e.kind == "ms"]
    assert scrolls == [(0, 1), (1, 0)]
    last = out[-1]
    assert isinstance(last, MouseEvent) and (last.kind, last.button) == ("md", 3)
    assert last.flags == FLAG_INJECTED and all(e.flags == 0 for e in out[:-1])
    assert len(out) == 7


def test_reader_stops_when_the_server_goes_away() -> None:
    out: list[Event] = []
    _pointer(out, [_reply(_event(6, 0, 1, 2))[:50]])._read()  # torn reply, then EOF
    assert out == []
