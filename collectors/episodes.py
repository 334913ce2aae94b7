"""Columnar stretches of events, and cutting a device's event stream into wire batches.

Both the simulator and the dataset replayers describe activity as :class:`Episode`
arrays (one entry per event, numpy) and hand a device's episodes to a
:class:`DeviceStream`, which cuts them into :class:`~collectors.wire.EventBatch`
records the way the agent does: a batch closes ``BATCH_MAX_AGE_MS`` after its first
event, at ``BATCH_MAX_EVENTS`` events (the agent's defaults; a stream can be given
others, for benchmarks), or when the session changes; ``seq`` grows by one per batch
and device.
:func:`merge_streams` interleaves many devices in close-time order.

>>> ep = Episode(np.array([0.0, 80.0, 1300.0]), np.array([KD, KU, MM], np.int8),
...              np.array([1, 1, 5]), np.array([0, 0, 7]))
>>> stream = DeviceStream("dev-1", "u" * 64, iter([(ep, "s-1")]), start_wall_ms=1.7e12,
...                       boot_ms=1000.0)
>>> [(round(t * 1000), b.seq, len(b.events)) for t, b in merge_streams([stream])]
[(1000, 0, 2), (1300, 1, 1)]
"""

from __future__ import annotations

import bisect
import functools
import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Final

import numpy as np

from collectors.batcher import MAX_AGE_MS, MAX_EVENTS
from collectors.wire import Event, EventBatch, KeyEvent, MouseEvent

# Event kind codes of the columnar arrays, in the order of ``KIND_NAMES``.
KD: Final = 0
KU: Final = 1
MM: Final = 2
MD: Final = 3
MU: Final = 4
MS: Final = 5
KIND_NAMES: Final = ("kd", "ku", "mm", "md", "mu", "ms")
_KIND_NAMES: Final = np.array(KIND_NAMES)

_new_key: Final = functools.partial(tuple.__new__, KeyEvent)
_new_mouse: Final = functools.partial(tuple.__new__, MouseEvent)

# The agent's batching (collectors/batcher.py).
BATCH_MAX_EVENTS: Final = MAX_EVENTS
BATCH_MAX_AGE_MS: Final = MAX_AGE_MS


def _no_ints() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(slots=True)
class Episode:
    """A stretch of events as parallel arrays, ordered by time.

    ``a, b`` are the key class and 0 for key events and ``x, y`` for mouse events;
    ``c`` is the button; ``d, e`` are the scroll ``dx, dy``. Empty ``c, d, e`` mean
    all zero.
    """

    t_ms: np.ndarray  # float64, on the stream's timeline
    kind: np.ndarray  # int8 codes KD..MS
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray = field(default_factory=_no_ints)
    d: np.ndarray = field(default_factory=_no_ints)
    e: np.ndarray = field(default_factory=_no_ints)

    def __post_init__(self) -> None:
        n = self.t_ms.size
        for name in ("c", "d", "e"):
            if getattr(self, name).size != n:
                setattr(self, name, np.zeros(n, np.int64))

    def __len__(self) -> int:
        return int(self.t_ms.size)

    @property
    def end_ms(self) -> float:
        return float(self.t_ms[-1]) if self.t_ms.size else 0.0

    def shifted(self, offset_ms: float) -> Episode:
        """The same events ``offset_ms`` later."""
        return Episode(self.t_ms + offset_ms, self.kind, self.a, self.b, self.c, self.d, self.e)

    def select(self, mask: np.ndarray) -> Episode:
        return Episode(
            self.t_ms[mask],
            self.kind[mask],
            self.a[mask],
            self.b[mask],
            self.c[mask],
            self.d[mask],
            self.e[mask],
        )

    @classmethod
    def sorted_from(
        cls,
        t: np.ndarray,
        kind: np.ndarray,
        a: np.ndarray,
        b: np.ndarray,
        c: np.ndarray | None = None,
        d: np.ndarray | None = None,
        e: np.ndarray | None = None,
    ) -> Episode:
        """Build from unordered columns, stably sorted by time."""
        order = np.argsort(t, kind="stable")
        zeros = np.zeros(t.size, np.int64)
        return cls(
            t[order].astype(np.float64),
            kind[order].astype(np.int8),
            a[order].astype(np.int64),
            b[order].astype(np.int64),
            (zeros if c is None else c[order]).astype(np.int64),
            (zeros if d is None else d[order]).astype(np.int64),
            (zeros if e is None else e[order]).astype(np.int64),
        )

    def events(self, t_offset_ms: float) -> list[Event]:
        """Wire events, times ``t_ms + t_offset_ms`` rounded to the microsecond."""
        if not len(self):
            return []
        t_wire = np.round(self.t_ms + t_offset_ms, 3).tolist()
        names = _KIND_NAMES[self.kind].tolist()
        is_key = self.kind <= KU
        # tuple.__new__ skips the NamedTuple constructor's Python frame: half the cost
        # of the dominant per-event step; every field is given, defaults included.
        if is_key.all():
            return list(map(_new_key, zip(names, t_wire, self.a.tolist(), repeat(0), repeat(None))))
        if not is_key.any():
            fields = zip(
                names,
                t_wire,
                self.a.tolist(),
                self.b.tolist(),
                self.c.tolist(),
                self.d.tolist(),
                self.e.tolist(),
                repeat(0),
            )
            return list(map(_new_mouse, fields))
        return [
            KeyEvent(k, t, a) if key else MouseEvent(k, t, a, b, c, d, e)
            for k, t, key, a, b, c, d, e in zip(
                names,
                t_wire,
                is_key.tolist(),
                self.a.tolist(),
                self.b.tolist(),
                self.c.tolist(),
                self.d.tolist(),
                self.e.tolist(),
                strict=True,
            )
        ]


def cut_at(ep: Episode, boundary_ms: float) -> Episode:
    """Events before ``boundary_ms``; keys and buttons still held are released just before it.

    Used where one person's activity must end: at a takeover and at the end of a run.
    """
    if not len(ep) or ep.end_ms < boundary_ms:
        return ep
    kept = ep.select(ep.t_ms < boundary_ms)
    kind, a, c = kept.kind, kept.a, kept.c
    last = kept.end_ms if len(kept) else boundary_ms - 1.0
    release_at = last + min(1.0, (boundary_ms - last) / 2.0)
    extra: list[tuple[int, int, int, int]] = []  # kind, a, b, c
    for cls in np.unique(a[kind == KD]).tolist():
        held = int(((kind == KD) & (a == cls)).sum() - ((kind == KU) & (a == cls)).sum())
        extra.extend([(KU, cls, 0, 0)] * max(held, 0))
    for button in np.unique(c[kind == MD]).tolist():
        held = int(((kind == MD) & (c == button)).sum() - ((kind == MU) & (c == button)).sum())
        # Released where the pointer last was: a key event's a, b are a class and 0.
        last_mouse = int(np.flatnonzero(kind >= MM)[-1])  # a held button implies one
        x, y = int(a[last_mouse]), int(kept.b[last_mouse])
        extra.extend([(MU, x, y, button)] * max(held, 0))
    if not extra:
        return kept
    cols = np.asarray(extra, np.int64).T
    zeros = np.zeros(len(extra), np.int64)
    return Episode(
        np.concatenate([kept.t_ms, np.full(len(extra), release_at)]),
        np.concatenate([kind, cols[0].astype(np.int8)]),
        np.concatenate([a, cols[1]]),
        np.concatenate([kept.b, cols[2]]),
        np.concatenate([c, cols[3]]),
        np.concatenate([kept.d, zeros]),
        np.concatenate([kept.e, zeros]),
    )


class DeviceStream:
    """The batches of one device, cut from ``(episode, session id)`` pairs on demand.

    Episodes must come in time order and not overlap. Wire times are
    ``boot_ms + t_ms`` (a monotonic clock counting from the device's boot) and map to
    wall-clock time ``start_wall_ms + t_ms``. ``max_events`` and ``max_age_ms`` are the
    agent's ``Batcher`` limits (default: the agent's defaults).
    """

    def __init__(
        self,
        device_id: str,
        user: str,
        episodes: Iterator[tuple[Episode, str]],
        *,
        start_wall_ms: float,
        boot_ms: float,
        max_events: int = BATCH_MAX_EVENTS,
        max_age_ms: float = BATCH_MAX_AGE_MS,
    ) -> None:
        if max_events < 1 or max_age_ms <= 0:
            raise ValueError("a batch needs max_events >= 1 and max_age_ms > 0")
        self.device_id = device_id
        self.max_events = max_events
        self.max_age_ms = max_age_ms
        self.user = user
        self.seq = 0
        self.boot_ms = boot_ms
        self.start_wall_ms = start_wall_ms
        self.clock_offset_ms = start_wall_ms - boot_ms
        self._episodes = episodes
        self._done = False
        # Generated, not yet batched events, as plain lists: batches are small, and
        # list slicing and bisect beat numpy's per-call overhead at that size.
        self._t: list[float] = []
        self._events: list[Event] = []
        self._segment: list[int] = []  # session segment number, non-decreasing
        self._session_of: dict[int, str] = {}
        self._last_session: str | None = None
        self._i = 0

    def _pull(self) -> None:
        try:
            ep, session = next(self._episodes)
        except StopIteration:
            self._done = True
            return
        if not len(ep):
            return
        if self._i > 0:
            del self._t[: self._i], self._events[: self._i], self._segment[: self._i]
            self._i = 0
        if session != self._last_session:
            self._session_of[len(self._session_of)] = session
            self._last_session = session
        self._events.extend(ep.events(self.boot_ms))
        self._t.extend(ep.t_ms.tolist())
        self._segment.extend([len(self._session_of) - 1] * len(ep))

    def next_batch(self) -> tuple[float, EventBatch] | None:
        """The next batch and the time (ms, stream timeline) it closes at; None at the end."""
        while True:
            t, seg, i = self._t, self._segment, self._i
            n = len(t)
            if i >= n:
                if self._done:
                    return None
                self._pull()
                continue
            max_events = self.max_events
            close_by_age = t[i] + self.max_age_ms
            # The open batch is complete once something past its cut is buffered.
            if not (
                self._done or n - i >= max_events or t[-1] >= close_by_age or seg[-1] != seg[i]
            ):
                self._pull()
                continue
            j = min(
                bisect.bisect_left(t, close_by_age, i),
                i + max_events,
                bisect.bisect_right(seg, seg[i], i),
            )
            if j - i == max_events or (j < n and seg[j] != seg[i]):
                close_ms = t[j - 1]  # full, or closed by a session change
            elif self._done and j == n:
                close_ms = t[j - 1]  # the end of the recording / run: shut down now
            else:
                close_ms = close_by_age
            events = tuple(self._events[i:j])
            # Never before the last event's wall time, whatever the rounding of t_ms.
            sent_at_ms = max(self.start_wall_ms + close_ms, events[-1].t_ms + self.clock_offset_ms)
            batch = EventBatch(
                device=self.device_id,
                user=self.user,
                session=self._session_of[seg[i]],
                seq=self.seq,
                sent_at_ms=sent_at_ms,
                clock_offset_ms=self.clock_offset_ms,
                events=events,
            )
            self.seq += 1
            self._i = j
            return close_ms, batch


def merge_streams(streams: Iterable[DeviceStream]) -> Iterator[tuple[float, EventBatch]]:
    """``(close time in s, batch)`` of all streams, in close-time order (ties: stream order)."""
    all_streams = list(streams)
    heap: list[tuple[float, int, EventBatch]] = []
    for order, stream in enumerate(all_streams):
        first = stream.next_batch()
        if first is not None:
            heap.append((first[0], order, first[1]))
    heapq.heapify(heap)
    while heap:
        close_ms, order, batch = heap[0]
        nxt = all_streams[order].next_batch()
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (nxt[0], order, nxt[1]))
        yield close_ms / 1000.0, batch


__all__ = [
    "BATCH_MAX_AGE_MS",
    "BATCH_MAX_EVENTS",
    "DeviceStream",
    "Episode",
    "KD",
    "KIND_NAMES",
    "KU",
    "MD",
    "MM",
    "MS",
    "MU",
    "cut_at",
    "merge_streams",
]
