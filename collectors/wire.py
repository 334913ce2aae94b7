"""The raw-event batch: the one record collectors put on ``cadence.events.v1``.

This module is the wire contract. It depends on nothing but orjson so that every
reader (stream workers, replayers, tests) imports this one definition.

A batch is a JSON object, keyed on the topic by the user pseudonym::

    {
      "v": 1,                      # schema version
      "device": "dev-3f2a...",     # device id (opaque, stable per workstation)
      "user": "5d41402abc4b...",   # HMAC-SHA256 pseudonym of the login, hex
      "session": "9b2c...",        # changes on login, unlock and resume after idle
      "seq": 1042,                 # per-device sequence number, +1 per batch
      "sent_at_ms": 1763900000000.0,   # wall clock when the batch was closed
      "clock_offset_ms": 1763899000000.0,  # wall = event t_ms + clock_offset_ms
      "key_identity": false,       # true only in the audited key-identity mode
      "events": [ ... ]
    }

Event times ``t_ms`` are milliseconds on the workstation's monotonic clock, so they
never jump when the wall clock is adjusted; ``clock_offset_ms`` maps them to
wall-clock time once per batch. Under X11 they are the X server's own event
timestamps (whole milliseconds) mapped onto that clock; elsewhere the clock read in
the input callback (sub-millisecond digits). Intervals are precise to 1 ms either
way (docs/collectors.md, "Timing contract"). Each event is a
compact array whose first element says what it is:

==========  ====================================================  ==========================
kind        layout                                                meaning
==========  ====================================================  ==========================
``kd``      ``["kd", t_ms, key_class, flags]``                    key down
``ku``      ``["ku", t_ms, key_class, flags]``                    key up
``mm``      ``["mm", t_ms, x, y, flags]``                         pointer moved
``md``      ``["md", t_ms, x, y, button, flags]``                 button down
``mu``      ``["mu", t_ms, x, y, button, flags]``                 button up
``ms``      ``["ms", t_ms, x, y, dx, dy, flags]``                 scroll
==========  ====================================================  ==========================

``key_class`` is a code of :mod:`collectors.keyclass` — never the key. ``button``
is 1 left, 2 right, 3 middle, 0 other. ``flags`` bit 0 marks input the operating
system reported as injected (synthetic). In key-identity mode only, key events
carry a fifth element: a keyed hash of the key (hex), never the character.

>>> batch = EventBatch(device="dev-1", user="u" * 64, session="s-1", seq=7,
...     sent_at_ms=1.7e12, clock_offset_ms=1.7e12 - 5000.0,
...     events=(KeyEvent("kd", 10.0, 1), KeyEvent("ku", 95.5, 1),
...             MouseEvent("mm", 120.0, 300, 200)))
>>> decode_batch(encode_batch(batch)) == batch
True
>>> decode_batch(b'{"v": 2}')
Traceback (most recent call last):
  ...
collectors.wire.UnsupportedSchemaVersion: v: schema version 2 is not supported (this reader knows 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import orjson

from collectors.keyclass import N_CLASSES

SCHEMA_VERSION: Final = 1
EVENTS_TOPIC: Final = "cadence.events.v1"

# Bounds that keep one bad or hostile record from costing a worker more than a
# normal batch would; a real collector closes a batch at 128 events / 250 ms.
MAX_EVENTS_PER_BATCH: Final = 4096
MAX_ID_LENGTH: Final = 128
MAX_BATCH_SPAN_MS: Final = 10 * 60 * 1000.0
# Wall-clock sanity: 2015-01-01 .. 2100-01-01 in epoch milliseconds.
MIN_WALL_MS: Final = 1_420_070_400_000.0
MAX_WALL_MS: Final = 4_102_444_800_000.0
# clock_offset_ms is the wall-clock time at which the monotonic clock read 0 (wall =
# t_ms + offset, t_ms >= 0), i.e. the machine's boot, later if it slept: itself a wall
# time, so it gets the wall-clock bounds. The upper one is also implied by the events
# (t_ms >= 0 and wall <= MAX_WALL_MS); checking it on every batch covers batches with no
# events, whose offset a consumer may still apply to later events. With both bounds, any
# event t_ms a valid batch carries (0 <= t_ms <= MAX_WALL_MS - MIN_WALL_MS) mapped with
# any valid offset lands within a century of the window, never at -1e300.
MIN_CLOCK_OFFSET_MS: Final = MIN_WALL_MS
MAX_CLOCK_OFFSET_MS: Final = MAX_WALL_MS
MAX_COORDINATE: Final = 1 << 20
# How far a batch's sent_at_ms may be from the broker's receive time: the worker
# dead-letters a batch sent more than a clock's skew ahead, or older than a spool keeps
# batches through an outage (``absurd_timestamp``). A generator that places a run in the
# past (collectors.publish.start_ending_now) must stay within them too.
MAX_FUTURE_SKEW_MS: Final = 5 * 60 * 1000.0
MAX_SEND_AGE_MS: Final = 30 * 24 * 3600 * 1000.0
KEY_HASH_LENGTH: Final = 64

FLAG_INJECTED: Final = 1

KEY_KINDS: Final = frozenset({"kd", "ku"})
MOUSE_KINDS: Final = frozenset({"mm", "md", "mu", "ms"})


class KeyEvent(NamedTuple):
    """A key going down (``kd``) or up (``ku``), reduced to its class."""

    kind: str
    t_ms: float
    key_class: int
    flags: int = 0
    key_hash: str | None = None

    @property
    def injected(self) -> bool:
        return bool(self.flags & FLAG_INJECTED)


class MouseEvent(NamedTuple):
    """A pointer move, button down/up or scroll at screen position (x, y)."""

    kind: str
    t_ms: float
    x: int
    y: int
    button: int = 0
    dx: int = 0
    dy: int = 0
    flags: int = 0

    @property
    def injected(self) -> bool:
        return bool(self.flags & FLAG_INJECTED)


Event = KeyEvent | MouseEvent


@dataclass(frozen=True, slots=True)
class EventBatch:
    """One batch of input events from one device, for one user session."""

    device: str
    user: str
    session: str
    seq: int
    sent_at_ms: float
    clock_offset_ms: float
    events: tuple[Event, ...] = field(default_factory=tuple)
    key_identity: bool = False
    v: int = SCHEMA_VERSION

    @property
    def idempotency_key(self) -> str:
        """Identifies this batch across redeliveries: device and sequence number."""
        return f"{self.device}:{self.seq}"


class WireError(ValueError):
    """A record that is not a valid batch; ``field`` names where, ``reason`` why."""

    def __init__(self, field_path: str, reason: str) -> None:
        super().__init__(f"{field_path}: {reason}")
        self.field = field_path
        self.reason = reason


class UnsupportedSchemaVersion(WireError):
    """A batch of a schema version this reader does not know."""


def encode_batch(batch: EventBatch) -> bytes:
    """Serialise a batch to its wire bytes (UTF-8 JSON)."""
    events: list[list[Any]] = []
    for ev in batch.events:
        if isinstance(ev, KeyEvent):
            row: list[Any] = [ev.kind, ev.t_ms, ev.key_class, ev.flags]
            if ev.key_hash is not None:
                row.append(ev.key_hash)
        elif ev.kind == "mm":
            row = [ev.kind, ev.t_ms, ev.x, ev.y, ev.flags]
        elif ev.kind == "ms":
            row = [ev.kind, ev.t_ms, ev.x, ev.y, ev.dx, ev.dy, ev.flags]
        else:
            row = [ev.kind, ev.t_ms, ev.x, ev.y, ev.button, ev.flags]
        events.append(row)
    return orjson.dumps(
        {
            "v": batch.v,
            "device": batch.device,
            "user": batch.user,
            "session": batch.session,
            "seq": batch.seq,
            "sent_at_ms": batch.sent_at_ms,
            "clock_offset_ms": batch.clock_offset_ms,
            "key_identity": batch.key_identity,
            "events": events,
        }
    )


def decode_batch(data: bytes | bytearray | memoryview | str) -> EventBatch:
    """Parse and validate wire bytes; raise :class:`WireError` naming the bad field."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError("$", f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise WireError("$", f"expected an object, got {type(obj).__name__}")
    version = obj.get("v")
    # type() first: True == 1 and 1.0 == 1, and neither is a schema version.
    if type(version) is not int or version != SCHEMA_VERSION:
        if not isinstance(version, int) or isinstance(version, bool):
            raise WireError("v", f"missing or not an integer ({version!r})")
        raise UnsupportedSchemaVersion(
            "v", f"schema version {version} is not supported (this reader knows {SCHEMA_VERSION})"
        )
    device = _identifier(obj, "device")
    user = _identifier(obj, "user")
    session = _identifier(obj, "session")
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise WireError("seq", f"must be a non-negative integer, got {seq!r}")
    sent_at_ms = _number("sent_at_ms", obj.get("sent_at_ms"))
    if not MIN_WALL_MS <= sent_at_ms <= MAX_WALL_MS:
        raise WireError("sent_at_ms", f"absurd wall-clock time {sent_at_ms!r}")
    clock_offset_ms = _number("clock_offset_ms", obj.get("clock_offset_ms"))
    if not MIN_CLOCK_OFFSET_MS <= clock_offset_ms <= MAX_CLOCK_OFFSET_MS:
        raise WireError("clock_offset_ms", f"absurd clock offset {clock_offset_ms!r}")
    key_identity = obj.get("key_identity", False)
    if not isinstance(key_identity, bool):
        raise WireError("key_identity", "must be true or false")
    raw_events = obj.get("events")
    if not isinstance(raw_events, list):
        raise WireError("events", "must be a list")
    if len(raw_events) > MAX_EVENTS_PER_BATCH:
        raise WireError("events", f"{len(raw_events)} events exceed {MAX_EVENTS_PER_BATCH}")
    events = tuple(
        _plain_event(row, key_identity, clock_offset_ms)
        or _event(i, row, key_identity, clock_offset_ms)
        for i, row in enumerate(raw_events)
    )
    if events:
        times = [ev[1] for ev in events]
        first = min(times)
        last = max(times)
        if last - first > MAX_BATCH_SPAN_MS:
            raise WireError("events", f"span {last - first:.0f} ms is absurd for one batch")
        if last + clock_offset_ms > sent_at_ms + MAX_BATCH_SPAN_MS:
            raise WireError("events", "events are later than the batch was sent")
    return EventBatch(
        device=device,
        user=user,
        session=session,
        seq=seq,
        sent_at_ms=sent_at_ms,
        clock_offset_ms=clock_offset_ms,
        events=events,
        key_identity=key_identity,
    )


def is_identifier(value: object) -> bool:
    """What the wire accepts as a device, user or session id.

    >>> is_identifier("dev-1"), is_identifier(""), is_identifier("x" * 129)
    (True, False, False)
    """
    # Bytes, not characters: the worker's state keeps ids (cursors), and 128 characters
    # of four UTF-8 bytes each made a user's record 4x what the bound was meant to allow.
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and len(value.encode("utf-8", "surrogatepass")) <= MAX_ID_LENGTH
        and value.isprintable()
    )


def _identifier(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value:
        raise WireError(name, "must be a non-empty string")
    if not is_identifier(value):
        raise WireError(name, f"must be printable and at most {MAX_ID_LENGTH} bytes (UTF-8)")
    return value


def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(path, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise WireError(path, "must be finite")
    return number


def _int_field(path: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WireError(path, f"must be an integer in [{low}, {high}], got {value!r}")
    return value


_ARITY: Final = {"kd": 4, "ku": 4, "mm": 5, "md": 6, "mu": 6, "ms": 7}
# A named tuple's own __new__ is a Python function; tuple's is not (half the cost).
_new: Final = tuple.__new__


def _plain_event(row: Any, key_identity: bool, clock_offset_ms: float) -> Event | None:
    """The event of a row that is valid in every respect, else None (then :func:`_event`).

    Every event of every record is decoded, and nearly every row is valid: for the rows
    it takes (key rows without a hash, pointer moves, presses and releases, every field
    in bounds) this returns exactly the event :func:`_event` would, without building
    any error text. Anything else (a bool, a bound crossed, a scroll, a key hash) is
    left to :func:`_event`, which names the fault or accepts the row. ``type(v) is
    int`` keeps out bools, as ``_int_field``'s check does.
    """
    if type(row) is not list:
        return None
    n = len(row)
    if n < 4:
        return None
    kind, t_ms = row[0], row[1]
    if type(t_ms) is not float:
        if type(t_ms) is not int:
            return None
        t_ms = float(t_ms)
    if t_ms < 0.0 or not MIN_WALL_MS <= t_ms + clock_offset_ms <= MAX_WALL_MS:
        return None
    if kind == "mm":
        if n == 5:
            x, y, flags = row[2], row[3], row[4]
            if (
                type(x) is int
                and type(y) is int
                and type(flags) is int
                and -MAX_COORDINATE <= x <= MAX_COORDINATE
                and -MAX_COORDINATE <= y <= MAX_COORDINATE
                and 0 <= flags <= 255
            ):
                return _new(MouseEvent, ("mm", t_ms, x, y, 0, 0, 0, flags))
        return None
    if kind == "kd" or kind == "ku":
        if n == 4 and not key_identity:
            key_class, flags = row[2], row[3]
            if (
                type(key_class) is int
                and type(flags) is int
                and 0 <= key_class < N_CLASSES
                and 0 <= flags <= 255
            ):
                return _new(KeyEvent, (kind, t_ms, key_class, flags, None))
        return None
    if kind == "md" or kind == "mu":
        if n == 6:
            x, y, button, flags = row[2], row[3], row[4], row[5]
            if (
                type(x) is int
                and type(y) is int
                and type(button) is int
                and type(flags) is int
                and -MAX_COORDINATE <= x <= MAX_COORDINATE
                and -MAX_COORDINATE <= y <= MAX_COORDINATE
                and 0 <= button <= 3
                and 0 <= flags <= 255
            ):
                return _new(MouseEvent, (kind, t_ms, x, y, button, 0, 0, flags))
        return None
    return None


def _event(i: int, row: Any, key_identity: bool, clock_offset_ms: float) -> Event:
    path = f"events[{i}]"
    if not isinstance(row, list) or not row:
        raise WireError(path, "must be a non-empty array")
    kind = row[0]
    if not isinstance(kind, str) or kind not in _ARITY:
        raise WireError(f"{path}[0]", f"unknown event kind {kind!r}")
    arity = _ARITY[kind]
    has_hash = key_identity and kind in KEY_KINDS
    if len(row) != arity + (1 if has_hash else 0):
        expected = arity + (1 if has_hash else 0)
        raise WireError(path, f"{kind} event needs {expected} elements, got {len(row)}")
    t_ms = _number(f"{path}[1]", row[1])
    if t_ms < 0:
        raise WireError(f"{path}[1]", "t_ms must not be negative")
    wall = t_ms + clock_offset_ms
    if not MIN_WALL_MS <= wall <= MAX_WALL_MS:
        raise WireError(f"{path}[1]", f"absurd time: t_ms + clock_offset_ms = {wall!r}")
    if kind in KEY_KINDS:
        key_class = _int_field(f"{path}[2]", row[2], 0, N_CLASSES - 1)
        flags = _int_field(f"{path}[3]", row[3], 0, 255)
        key_hash = None
        if has_hash:
            key_hash = row[4]
            if (
                not isinstance(key_hash, str)
                or len(key_hash) != KEY_HASH_LENGTH
                or any(c not in "0123456789abcdef" for c in key_hash)
            ):
                raise WireError(f"{path}[4]", "key hash must be 64 lowercase hex digits")
        return KeyEvent(kind, t_ms, key_class, flags, key_hash)
    x = _int_field(f"{path}[2]", row[2], -MAX_COORDINATE, MAX_COORDINATE)
    y = _int_field(f"{path}[3]", row[3], -MAX_COORDINATE, MAX_COORDINATE)
    if kind == "mm":
        return MouseEvent(kind, t_ms, x, y, flags=_int_field(f"{path}[4]", row[4], 0, 255))
    if kind == "ms":
        dx = _int_field(f"{path}[4]", row[4], -MAX_COORDINATE, MAX_COORDINATE)
        dy = _int_field(f"{path}[5]", row[5], -MAX_COORDINATE, MAX_COORDINATE)
        flags = _int_field(f"{path}[6]", row[6], 0, 255)
        return MouseEvent(kind, t_ms, x, y, dx=dx, dy=dy, flags=flags)
    button = _int_field(f"{path}[4]", row[4], 0, 3)
    return MouseEvent(
        kind, t_ms, x, y, button=button, flags=_int_field(f"{path}[5]", row[5], 0, 255)
    )
