"""Per-user windows of raw events, with per-device sequence tracking.

A window gathers the batches of one user session (one device, one session id)
until its events span ``window_ms`` of event time; then it closes and is judged.
The closing rule depends only on the batches themselves, so after a crash the
redelivered batches close into the same windows and yield the same verdict ids.

Sequence numbers come from the collector, one counter per device. Within a
session a number at or below the last one seen is a duplicate (a redelivery) and
is dropped; a jump is a gap (batches lost upstream) and is reported. A device
whose counter restarts (agent reinstalled) shows up with a new session and a
lower number, in a batch closed after the device's latest one: that is accepted
and counted as a reset, not dropped forever. A lower number of another session
closed no later than the device's latest batch is a redelivery from an earlier
session (the counter runs on across logins and unlocks): a duplicate.

The last number seen is the open window's, else that of the device's latest
*closed* window, judged or not: the worker judges closed windows in groups, later,
and a batch arriving in between (a collector's resend) must be checked against the
window it follows, not the older cursor of the state.

A redelivery carries the same events. A number seen before with *other* events
(a cloned agent, a virtual desktop restored from a snapshot, a forged record) is a
``conflict``: the worker dead-letters it rather than passing it off as a
duplicate. Each batch is known by the digest of its shape (:func:`shape_digest`:
events, first and last event time): kept for every batch of an open window or of a
closed one not yet judged, and for the last batch of a judged one (in the cursor), so
a conflict is recognised against those. An older number is recognised by when its batch was closed: a redelivery is
the same record, closed (``sent_at_ms``) no later than the batches numbered after it,
while a batch closed well after the session's latest accepted one
(``MAX_CLOCK_STEP_BACK_MS``) cannot have come before it. Any other older number is
taken for a duplicate.

>>> w = Windower(window_ms=5000)
>>> cursors: dict[str, Cursor] = {}
>>> def batch(seq, t0, sent=1.7e12):
...     return EventBatch(device="d", user="u", session="s", seq=seq, sent_at_ms=sent,
...         clock_offset_ms=1.7e12 - 1e6, events=(KeyEvent("kd", t0, 1), KeyEvent("ku", t0 + 80, 1)))
>>> [c.reason for c in w.add(batch(1, 0.0), cursors, token=1).closed]
[]
>>> w.add(batch(1, 0.0), cursors, token=2).status
'duplicate'
>>> w.add(batch(1, 500.0), cursors, token=2).status
'conflict'
>>> w.add(batch(0, 500.0, sent=1.7e12 + 3_600_000), cursors, token=2).status  # an hour later
'conflict'
>>> out = w.add(batch(3, 6000.0), cursors, token=3)
>>> out.status, out.gap, [(c.first_seq, c.last_seq, c.tokens) for c in out.closed]
('accepted', 1, [(1, 3, [1, 3])])
>>> w.add(batch(3, 6000.0), cursors, token=4).status  # its window closed, not judged yet
'duplicate'
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Generic, TypeVar, cast

from collectors.wire import EventBatch, KeyEvent, MouseEvent

T = TypeVar("T")

_SHAPE = struct.Struct("<qdd")


def shape_digest(events: int, first_ms: float, last_ms: float) -> int:
    """What tells a redelivered batch from another one under the same number: a CRC-32
    of its number of events and its first and last event time. The windower reads the
    times anyway; one int per batch (~30 bytes, a tuple was ~140) is what every open
    window keeps, and the same value after a restart, so the cursor can store it.

    >>> shape_digest(25, 1000.0, 1999.5) == shape_digest(25, 1000.0, 1999.5)
    True
    >>> shape_digest(25, 1000.0, 1999.5) == shape_digest(25, 1000.0, 2000.5)
    False
    """
    return zlib.crc32(_SHAPE.pack(events, first_ms, last_ms))


MAX_CURSORS_PER_USER = 8
# A batch under an already used number is new, not a redelivery, when it was closed
# this long after the latest batch accepted in its session: batches are closed in
# number order, so only the desk's wall clock stepping back while the agent runs
# could make a redelivery look that late (NTP slews; steps of a minute are rare).
MAX_CLOCK_STEP_BACK_MS = 60_000.0
# Events one window may hold before it is closed whatever its span: a person produces
# ~20-200 events a second, so a 5 s window holds at most ~1 000; four full batches
# (``MAX_EVENTS_PER_BATCH``) of one instant are not behaviour anyone can produce.
MAX_WINDOW_EVENTS = 16_384
# Batches one window may hold: a collector closes a batch every second or so (~5 a
# window), but empty batches add no span and no events, and each holds its record
# unacked (and with it the partition's commits) until the window closes.
MAX_WINDOW_BATCHES = 1_024
# Events all open windows of a worker may hold together (~170 bytes each in memory, raw
# records included): each window is bounded, but not how many users send. Made-up user
# keys from one collector credential, each filling a window, would otherwise grow the
# worker until it is killed, and its replacement, reading the same records, with it.
# 10 000 people typing hold ~0.6 M; above the bound the largest windows close early.
MAX_OPEN_EVENTS = 1_000_000

# ``t_ms`` is field 1 of both KeyEvent and MouseEvent; itemgetter reads it without a
# Python-level call per event.
_T_MS = itemgetter(1)
assert KeyEvent._fields[1] == MouseEvent._fields[1] == "t_ms"


@dataclass(slots=True)
class Cursor:
    """The last batch of a device accepted into a closed window of this user."""

    session: str
    last_seq: int
    last_shape: int | None = None  # its shape_digest; None: written before they were kept
    # The latest sent_at_ms accepted in ``session``; None: written before it was kept.
    last_sent_ms: float | None = None


@dataclass(slots=True)
class Window(Generic[T]):
    """Events of one user session between two closings; ``tokens`` are acked on close."""

    user: str
    device: str
    session: str
    first_seq: int
    last_seq: int
    clock_offset_ms: float
    start_ms: float = float("inf")
    end_ms: float = float("-inf")
    key_events: list[KeyEvent] = field(default_factory=list)
    mouse_events: list[MouseEvent] = field(default_factory=list)
    tokens: list[T] = field(default_factory=list)
    shapes: dict[int, int] = field(default_factory=dict)  # seq -> shape_digest
    last_sent_ms: float = float("-inf")  # the latest sent_at_ms of its batches
    gaps: int = 0
    reason: str = ""
    # Wall-clock times of its first and last event, each through its own batch's offset:
    # the offset moves within a session (an NTP step; a suspend, which stops the
    # monotonic clock the events are timed on).
    wall_start_ms: float = float("inf")
    wall_end_ms: float = float("-inf")

    @property
    def events(self) -> int:
        return len(self.key_events) + len(self.mouse_events)


@dataclass(slots=True)
class AddResult(Generic[T]):
    status: str  # "accepted" | "duplicate" | "conflict" | "empty"
    closed: list[Window[T]] = field(default_factory=list)
    gap: int = 0
    reset: bool = False


class Windower(Generic[T]):
    """Open windows of the users one worker owns (in memory; closed ones are persisted)."""

    def __init__(
        self,
        window_ms: float = 5000.0,
        idle_gap_ms: float = 60_000.0,
        max_events: int = MAX_WINDOW_EVENTS,
        max_batches: int = MAX_WINDOW_BATCHES,
        max_open_events: int = MAX_OPEN_EVENTS,
    ) -> None:
        self.window_ms = window_ms
        self.idle_gap_ms = idle_gap_ms
        self.max_events = max_events
        self.max_batches = max_batches
        self.max_open_events = max_open_events
        self.open: dict[str, Window[T]] = {}
        self.open_events = 0  # events in all open windows
        # Per user and device, the latest window closed and not yet judged (see
        # :meth:`judged`): until then the persisted cursor is behind it.
        self.closing: dict[str, dict[str, Window[T]]] = {}

    def add(self, batch: EventBatch, cursors: dict[str, Cursor], token: T) -> AddResult[T]:
        """Take one batch of ``batch.user``; ``cursors`` is that user's persisted state."""
        result: AddResult[T] = AddResult("accepted")
        window = self.open.get(batch.user)
        same_window = window is not None and (window.device, window.session) == (
            batch.device,
            batch.session,
        )
        cursor = cursors.get(batch.device)
        recent = window if same_window else None
        closing = self.closing.get(batch.user)
        if closing and batch.device in closing:
            closed = closing[batch.device]
            cursor = _advanced(cursor, closed)  # what judging it will persist
            if closed.session == batch.session and recent is None:
                recent = closed
        same_session = same_window or (cursor is not None and cursor.session == batch.session)
        last: int | None = None
        if window is not None and same_window:
            last = window.last_seq
        elif cursor is not None:
            last = cursor.last_seq
        events = batch.events
        # One pass over the times, in C: this runs for every batch a worker consumes.
        times = list(map(_T_MS, events))
        t_first = min(times) if times else 0.0
        t_last = max(times) if times else 0.0
        shape = shape_digest(len(times), t_first, t_last)
        if last is not None and batch.seq <= last:
            if same_session:
                seen = _shape_seen(recent, cursor, batch)
                if seen is None:
                    reused = _closed_after_latest(recent, cursor, batch)
                else:
                    reused = seen != shape
                result.status = "conflict" if reused else "duplicate"
                return result
            if _closed_before_latest(window, cursor, batch):
                result.status = "duplicate"  # redelivered from an earlier session
                return result
            result.reset = True  # the device's counter restarted: a new agent install
        elif last is not None and batch.seq > last + 1 and same_session:
            result.gap = batch.seq - last - 1
        if window is not None and not same_window:
            result.closed.append(self._close(batch.user, "session_change"))
            window = None
        if not events:
            # A heartbeat carries no behaviour; it still moves the cursor via the window.
            result.status = "empty"
        if (
            window is not None
            and times
            and window.events
            and t_first - window.end_ms > self.idle_gap_ms
        ):
            result.closed.append(self._close(batch.user, "idle_gap"))
            window = None
        if window is None:
            window = Window(
                user=batch.user,
                device=batch.device,
                session=batch.session,
                first_seq=batch.seq,
                last_seq=batch.seq,
                clock_offset_ms=batch.clock_offset_ms,
            )
            self.open[batch.user] = window
        window.last_seq = batch.seq
        window.shapes[batch.seq] = shape
        if batch.sent_at_ms > window.last_sent_ms:
            window.last_sent_ms = batch.sent_at_ms
        window.gaps += result.gap
        window.tokens.append(token)
        # Batches are cut per episode, so most hold one modality: count the key events
        # in C (``map(type)``, no Python call per event) and split only a mixed batch.
        keys = list(map(type, events)).count(KeyEvent)
        if keys == len(events):
            window.key_events.extend(cast("tuple[KeyEvent, ...]", events))
        elif not keys:
            window.mouse_events.extend(cast("tuple[MouseEvent, ...]", events))
        else:
            window.key_events.extend([ev for ev in events if isinstance(ev, KeyEvent)])
            window.mouse_events.extend([ev for ev in events if isinstance(ev, MouseEvent)])
        self.open_events += len(events)
        if times:
            window.start_ms = min(window.start_ms, t_first)
            window.end_ms = max(window.end_ms, t_last)
            offset = batch.clock_offset_ms
            window.wall_start_ms = min(window.wall_start_ms, t_first + offset)
            window.wall_end_ms = max(window.wall_end_ms, t_last + offset)
        if window.end_ms - window.start_ms >= self.window_ms:
            result.closed.append(self._close(batch.user, "span"))
        elif window.events >= self.max_events or len(window.tokens) >= self.max_batches:
            # Event times that never span a window (a flood, a stuck clock, empty
            # batches) would otherwise hold every batch, unacked, until memory runs out.
            result.closed.append(self._close(batch.user, "size"))
        if self.open_events > self.max_open_events:
            result.closed += self._relieve()
        return result

    def _relieve(self) -> list[Window[T]]:
        """Close the largest open windows until they hold 3/4 of the bound together.

        The largest first: a flood's windows are full, people's hold a few hundred events.
        Closed by memory, not by their own events, such a window may group its batches
        differently after a crash (another verdict id), as an idle flush does.
        """
        target = self.max_open_events * 3 // 4
        closed: list[Window[T]] = []
        for user in sorted(self.open, key=lambda u: self.open[u].events, reverse=True):
            if self.open_events <= target:
                break
            closed.append(self._close(user, "memory"))
        return closed

    def flush(self, user: str, reason: str = "flush") -> Window[T] | None:
        """Close the user's open window now (idle user, shutdown), if there is one."""
        if user not in self.open:
            return None
        return self._close(user, reason)

    def drop(self, users: set[str]) -> list[Window[T]]:
        """Forget open windows (partitions revoked): their batches will be redelivered."""
        for user in users:
            self.closing.pop(user, None)
        dropped = [self.open.pop(u) for u in list(self.open) if u in users]
        self.open_events -= sum(w.events for w in dropped)
        return dropped

    def judged(self, window: Window[T]) -> None:
        """``window`` is judged and its cursor advanced: the state has caught up with it."""
        closing = self.closing.get(window.user)
        if closing and closing.get(window.device) is window:
            del closing[window.device]
            if not closing:
                del self.closing[window.user]

    def _close(self, user: str, reason: str) -> Window[T]:
        window = self.open.pop(user)
        self.open_events -= window.events
        self.closing.setdefault(user, {})[window.device] = window
        window.reason = reason
        window.key_events.sort(key=_T_MS)
        window.mouse_events.sort(key=_T_MS)
        return window


def advance(cursors: dict[str, Cursor], window: Window[T]) -> None:
    """Record a closed window in the user's cursors, keeping the most recent devices."""
    cursors[window.device] = _advanced(cursors.pop(window.device, None), window)
    while len(cursors) > MAX_CURSORS_PER_USER:
        cursors.pop(next(iter(cursors)))


def _advanced(previous: Cursor | None, window: Window[T]) -> Cursor:
    """The device's cursor once ``window`` (closed after ``previous``) is recorded."""
    latest = window.last_sent_ms
    if previous is not None and previous.session == window.session:
        latest = max(latest, previous.last_sent_ms or latest)
    return Cursor(
        window.session,
        window.last_seq,
        window.shapes.get(window.last_seq),
        # Whole milliseconds, as the state stores them: the same cursor after a restart.
        math.floor(latest) if latest > float("-inf") else None,
    )


def _shape_seen(window: Window[T] | None, cursor: Cursor | None, batch: EventBatch) -> int | None:
    """The shape of the batch accepted earlier under ``batch``'s number, where still known."""
    if window is not None and batch.seq in window.shapes:
        return window.shapes[batch.seq]
    if cursor is not None and (cursor.session, cursor.last_seq) == (batch.session, batch.seq):
        return cursor.last_shape
    return None


def _closed_after_latest(
    window: Window[T] | None, cursor: Cursor | None, batch: EventBatch
) -> bool:
    """Whether ``batch`` was closed too long after its session's latest accepted batch to
    be a redelivery of an earlier number."""
    latest = window.last_sent_ms if window is not None else float("-inf")
    if cursor is not None and cursor.session == batch.session and cursor.last_sent_ms is not None:
        latest = max(latest, cursor.last_sent_ms)
    # Nothing known (a state written before these times were kept): a duplicate, as before.
    return latest > float("-inf") and batch.sent_at_ms > latest + MAX_CLOCK_STEP_BACK_MS


def _closed_before_latest(
    window: Window[T] | None, cursor: Cursor | None, batch: EventBatch
) -> bool:
    """Whether ``batch``, a lower number of another session, was closed no later than the
    device's latest batch: a redelivery, as batches are closed in number order; a
    reinstalled agent's restarted counter closes its batches after."""
    latest = float("-inf")
    if cursor is not None and cursor.last_sent_ms is not None:
        latest = cursor.last_sent_ms
    if window is not None and window.device == batch.device:
        latest = max(latest, window.last_sent_ms)
    # Whole milliseconds: the cursor stores the latest time rounded down.
    return math.floor(batch.sent_at_ms) <= latest
