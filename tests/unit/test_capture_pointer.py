"""The X11 RECORD reader and its clock mapping, fed synthetic replies (no X server needed)."""

from __future__ import annotations

import enum
import struct
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from collectors.capture import _REPLY_HEADER, Capture, ServerClock, XRecordInput
from collectors.keyclass import CLASS_CODES
from collectors.wire import FLAG_INJECTED, Event, KeyEvent, MouseEvent

MS = 1_000_000  # ns


def _event(code: int, detail: int, x: int, y: int, time_ms: int = 0, state: int = 0) -> bytes:
    ev = bytearray(32)
    ev[0], ev[1] = code, detail
    struct.pack_into("=I", ev, 4, time_ms & 0xFFFFFFFF)
    struct.pack_into("=hh", ev, 20, x, y)
    struct.pack_into("=H", ev, 28, state)
    return bytes(ev)


def _reply(*events: bytes, category: int = 0) -> bytes:
    data = b"".join(events)
    return _REPLY_HEADER.pack(1, category, 0, len(data) // 4) + bytes(24) + data


END = _reply(category=5)  # EndOfData: the reader returns


class _Sock:
    """Hands out the given chunks, then end-of-file."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def recv(self, n: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return 0  # registered with poll(), never polled: recv never says "would block"


class FakeKey(enum.Enum):  # stands in for pynput.keyboard.Key
    space = 1


class FakeKeyCode:  # stands in for pynput.keyboard.KeyCode
    def __init__(self, char: str) -> None:
        self.char = char


class _Clock:
    """Monotonic ns handed to the reader, advanced by the test between reads."""

    def __init__(self, ms: float) -> None:
        self.ns = int(ms * MS)

    def __call__(self) -> int:
        return self.ns


def _reader(
    out: list[Event], chunks: list[bytes], now_ms: float = 0.0, hasher: Any = None
) -> XRecordInput:
    cap = Capture(out.append, hasher)
    p = XRecordInput.__new__(XRecordInput)  # skip the X connections
    p._init_parser(out.extend, cap.key_event, 0.0)
    p._now_ns = _Clock(now_ms)
    sock: Any = _Sock(chunks)
    p._sock = sock
    keys = {38: FakeKeyCode("a"), 65: FakeKey.space}
    p._to_key = lambda display, ev: keys.get(ev.detail)
    p._control = None
    return p


def test_replies_become_wire_events_even_when_split_across_reads() -> None:
    start = _reply(category=4)  # StartOfData: ignored
    body = _reply(
        _event(6, 0, 10, 20, 100),  # move
        _event(4, 1, 10, 20, 101),  # left down
        _event(5, 1, 10, 20, 102),  # left up
        _event(4, 3, 11, 21, 103),  # right down
        _event(4, 4, 11, 21, 104),  # wheel up: a scroll, its release is not a click
        _event(5, 4, 11, 21, 104),
        _event(4, 7, -5, 3, 105),  # wheel right
        _event(4 | 0x80, 2, 12, 22, 106),  # a SendEvent (synthetic) middle-button press
    )
    stream = start + body + END
    out: list[Event] = []
    p = _reader(out, [stream[:40], stream[40:100], stream[100:]], now_ms=107.0)
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
    # Same clock as ours (Xvfb/Xorg): t_ms is the server's millisecond itself.
    assert [e.t_ms for e in out] == [100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0]


def test_reader_stops_when_the_server_goes_away() -> None:
    out: list[Event] = []
    _reader(out, [_reply(_event(6, 0, 1, 2))[:50]])._read()  # torn reply, then EOF
    assert out == []


def test_keys_are_reduced_inside_the_parse_and_timed_by_the_server() -> None:
    body = _reply(
        _event(2, 38, 0, 0, 5000),  # 'a' down
        _event(6, 0, 1, 1, 5020),
        _event(6, 0, 2, 2, 5020),  # same server millisecond: dropped
        _event(6, 0, 3, 3, 5021),
        _event(3, 38, 0, 0, 5087),  # 'a' up: dwell 87 ms
        _event(2, 65, 0, 0, 5150),  # space down: flight 63 ms
        _event(3, 65, 0, 0, 5201),
        _event(2, 250, 0, 0, 5300),  # a key code without a key: class "other"
    )
    out: list[Event] = []
    p = _reader(out, [body, END], now_ms=5302.5)
    p._read()
    keys = [e for e in out if isinstance(e, KeyEvent)]
    assert [(k.kind, k.key_class) for k in keys] == [
        ("kd", CLASS_CODES["L_home"]),
        ("ku", CLASS_CODES["L_home"]),
        ("kd", CLASS_CODES["space"]),
        ("ku", CLASS_CODES["space"]),
        ("kd", CLASS_CODES["other"]),
    ]
    assert keys[1].t_ms - keys[0].t_ms == 87.0 and keys[2].t_ms - keys[1].t_ms == 63.0
    assert [e.t_ms for e in out if e.kind == "mm"] == [5020.0, 5021.0]
    assert all(k.key_hash is None for k in keys)
    assert "'a'" not in repr(out) and "FakeKey" not in repr(out)


def test_a_key_pynput_cannot_translate_is_kept_as_unknown_and_capture_goes_on() -> None:
    # Only IndexError was caught: any other failure of pynput's translation ended the
    # reader thread (all capture) and logged a traceback that could hold the key.
    body = _reply(
        _event(2, 38, 0, 0, 5000),
        _event(3, 38, 0, 0, 5080),
        _event(6, 0, 1, 1, 5100),
    )
    out: list[Event] = []
    p = _reader(out, [body, END], now_ms=5101.0)

    def broken(display: Any, ev: Any) -> Any:
        raise KeyError("'a'")

    p._to_key = broken
    p._read()
    assert [(e.kind, getattr(e, "key_class", None)) for e in out] == [
        ("kd", CLASS_CODES["other"]),
        ("ku", CLASS_CODES["other"]),
        ("mm", None),
    ]


def test_key_identity_mode_hashes_in_the_parse() -> None:
    out: list[Event] = []
    _reader(out, [_reply(_event(2, 38, 0, 0, 10), _event(2, 65, 0, 0, 20)), END], 30.0, str)._read()
    assert [e.key_hash for e in out if isinstance(e, KeyEvent)] == ["'a'", "Key.space"]


def test_server_time_on_another_clock_maps_by_the_smallest_delay_seen() -> None:
    # Server clock 1_000_000 ms ahead of ours: not the same clock, so estimated.
    out: list[Event] = []
    p = _reader(out, [], now_ms=2000.0)
    clock = p._now_ns
    assert isinstance(clock, _Clock)
    sock: Any = p._sock
    sock.chunks = [_reply(_event(6, 0, 1, 1, 1_001_990))]  # read 10 ms late
    p._read()
    assert p.clock.offset == -999_990.0 and not p.clock.same_clock
    assert out[-1].t_ms == 2000.0
    clock.ns = 2100 * MS
    sock.chunks = [_reply(_event(6, 0, 2, 2, 1_002_098), _event(6, 0, 3, 3, 1_002_099))]
    p._read()  # newest read 1 ms late: offset lowered by 9 ms
    assert p.clock.offset == -999_999.0
    assert [e.t_ms for e in out[1:]] == [2099.0, 2100.0]


def test_wrap_of_the_32_bit_server_time_is_invisible() -> None:
    out: list[Event] = []
    # Our monotonic clock past 2**32 ms (a machine up for 50 days): the same clock, wrapped.
    now = float((1 << 32) + 7)
    body = _reply(_event(6, 0, 1, 1, (1 << 32) - 3), _event(6, 0, 2, 2, 2)) + END
    p = _reader(out, [body], now_ms=now)
    p._read()
    assert p.clock.same_clock
    assert [e.t_ms for e in out] == [now - 10, now - 5]


def test_server_clock_raises_only_on_sustained_evidence() -> None:
    c = ServerClock()
    c.observe(1_000.0, 50_000)  # not our clock: offset -49_000
    assert c.offset == -49_000.0
    # A few late reads (a stalled reader) never move it...
    for i in range(10):
        c.observe(1_100.0 + i * 1000, 50_000 + 90 + i * 1000)
    c.observe(12_000.0, 61_000 - 200)
    assert c.offset == -49_000.0
    # ...a server clock that runs slow moves it, once a window is full of such reads.
    for i in range(40):
        c.observe(12_100.0 + i * 300, 61_000 + i * 300 - 50)
    c.observe(24_100.0, 73_000 - 50)
    assert c.offset == pytest.approx(-48_850.0)


def test_server_clock_raises_with_one_read_per_second_bursts() -> None:
    """The agent reads once per 1 s burst: at most 10 reads per 10 s window."""
    c = ServerClock(read_interval_s=1.0)
    c.observe(1_000.0, 50_000)
    assert c.offset == -49_000.0
    for i in range(1, 31):  # a server clock 50 ms slow, read once a second
        c.observe(1_000.0 + i * 1000, 50_000 + i * 1000 - 50)
    assert c.offset == pytest.approx(-48_950.0)
    # Read rarely (a key or two a minute), the same evidence is not enough.
    sparse = ServerClock(read_interval_s=1.0)
    sparse.observe(1_000.0, 50_000)
    for i in range(1, 31):
        sparse.observe(1_000.0 + i * 5000, 50_000 + i * 5000 - 50)
    assert sparse.offset == -49_000.0


def test_server_clock_unwraps_next_to_its_estimate() -> None:
    c = ServerClock()
    c.observe(10.0, (1 << 32) - 100_000)  # 100 s "behind" ours: another clock
    assert not c.same_clock
    assert c.unwrap(3, 20.0) == (1 << 32) + 3  # wrapped since
    assert c.unwrap((1 << 32) - 10, 20.0) == (1 << 32) - 10


def test_on_the_servers_own_clock_sparse_input_never_moves_the_mapping() -> None:
    # Xorg stamps events with our CLOCK_MONOTONIC: t_ms must be the server's ms, always.
    # The agent's reader sleeps one burst age (1 s) after input wakes it, so a wheel step
    # or a click every 2 s is read ~900 ms after it happened, read after read: that was
    # taken for a slow server clock, and every later event placed ~900 ms late.
    c = ServerClock(read_interval_s=1.0)
    c.observe(10_000.0, 9_995)
    assert c.same_clock and c.offset == 0.0
    for i in range(1, 12):
        event_ms = 10_000 + 2000 * i
        c.observe(event_ms + 900.0, event_ms)
    assert c.same_clock and c.offset == 0.0, c.offset


def test_on_the_servers_own_clock_times_stay_its_milliseconds_after_sparse_input() -> None:
    out: list[Event] = []
    p = _reader(out, [], now_ms=10_000.0)
    p.clock = ServerClock(read_interval_s=1.0)  # the agent's 1 s bursts
    clock: Any = p._now_ns
    sock: Any = p._sock
    sock.chunks = [_reply(_event(6, 0, 1, 1, 9_995))]
    p._read()
    for i in range(1, 12):  # a scroll step (wheel button 5) every 2 s, read 900 ms later
        event_ms = 10_000 + 2000 * i
        clock.ns = (event_ms + 900) * MS
        sock.chunks = [_reply(_event(4, 5, 1, 1, event_ms))]
        p._read()
    # Typing starts: two keys 120 ms apart, read 5 ms after the second. Before, the offset
    # fell back to the smallest late read (5 ms), not to 0, and dwell times were clamped.
    clock.ns = 40_000 * MS
    sock.chunks = [_reply(_event(2, 38, 1, 1, 39_875), _event(2, 38, 1, 1, 39_995))]
    p._read()
    server_ms = [9_995] + [10_000 + 2000 * i for i in range(1, 12)] + [39_875, 39_995]
    assert [e.t_ms for e in out] == [float(s) for s in server_ms]


class _FakeListener:  # pynput's keyboard listener, for its key-code translation
    _event_to_key = None


class _FakeDisplay:
    """The calls XRecordInput makes while it builds its RECORD context; records the ranges."""

    ranges: list[dict[str, Any]] = []

    def __init__(self) -> None:
        self.display = SimpleNamespace(get_extension_major=lambda name: 146, socket=None)

    def has_extension(self, name: str) -> bool:
        return True

    def record_create_context(self, flags: int, clients: Any, ranges: Any) -> int:
        _FakeDisplay.ranges = ranges
        return 1

    def sync(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("pointer", "last"), [(True, 6), (False, 3)])
def test_without_the_pointer_the_server_is_asked_for_key_events_only(
    monkeypatch: pytest.MonkeyPatch, pointer: bool, last: int
) -> None:
    # Device events 2-3 are KeyPress/KeyRelease; 4-6 ButtonPress, ButtonRelease,
    # MotionNotify: with a range ending at 3 the server never sends the pointer's.
    import Xlib.display

    pynput = SimpleNamespace(keyboard=SimpleNamespace(Listener=_FakeListener))
    monkeypatch.setitem(sys.modules, "pynput", pynput)
    monkeypatch.setattr(Xlib.display, "Display", _FakeDisplay)
    XRecordInput(lambda events: None, Capture(lambda e: None).key_event, pointer=pointer)
    ((spec,),) = [_FakeDisplay.ranges]
    assert spec["device_events"] == (2, last)
    assert spec["delivered_events"] == (0, 0)  # nothing but device events either way


@pytest.mark.parametrize("pointer", [True, False])
def test_the_agent_built_without_the_pointer_says_so_in_its_gauge(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, pointer: bool
) -> None:
    from collectors.agent import AgentConfig, build_agent
    from collectors.metrics import CollectorMetrics

    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY", "0123456789abcdef0123456789abcdef")
    monkeypatch.delenv("CADENCE_USER_KEY_FILE", raising=False)
    metrics = CollectorMetrics()
    config = AgentConfig(
        bootstrap="127.0.0.1:1", state_dir=tmp_path, memory_spool=True, login="t", pointer=pointer
    )
    agent, capture = build_agent(config, metrics)
    try:
        assert metrics.pointer_enabled._value.get() == (1 if pointer else 0)
        assert capture._pointer is pointer
    finally:
        agent.sender.close(0)
