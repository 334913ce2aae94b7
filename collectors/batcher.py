"""Cut the stream of captured events into batches: every second, or at 1024 events.

A batch is one Kafka record, and most of the worker's CPU is paid per record
(docs/performance.md, "Batch age"), while a verdict is made per 5 s window: a batch
age of 1 s costs up to a second of verdict latency and cuts the records per event
about threefold against 250 ms. ``MAX_EVENTS`` is high enough that the age closes
batches even under a 1000 Hz pointer; a full batch (35-90 bytes per event on the
wire) stays far below ``collectors.wire.MAX_EVENTS_PER_BATCH`` and the events
topic's 1 MiB record limit. What the age costs on the desk: docs/collectors.md.

The capture threads call :meth:`Batcher.add` (one event) or :meth:`Batcher.extend`
(a burst, one lock round for all of it); the agent's thread collects closed chunks
with :meth:`Batcher.due`. Keeping the Kafka side off the listener threads
matters: a slow callback delays the user's input on some platforms (Windows hooks).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from collectors.identity import monotonic_ms
from collectors.wire import Event

MAX_EVENTS = 1024
MAX_AGE_MS = 1000.0


class Batcher:
    def __init__(
        self,
        max_events: int = MAX_EVENTS,
        max_age_ms: float = MAX_AGE_MS,
        clock: Callable[[], float] = monotonic_ms,
    ) -> None:
        self.max_events = max_events
        self.max_age_ms = max_age_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._current: list[Event] = []
        self._opened_ms = 0.0
        self._closed: list[tuple[Event, ...]] = []
        self._full = threading.Event()

    def add(self, event: Event) -> None:
        """Append one event (thread-safe); closes the batch at ``max_events``."""
        with self._lock:
            if not self._current:
                self._opened_ms = self._clock()
            self._current.append(event)
            if len(self._current) >= self.max_events:
                self._closed.append(tuple(self._current))
                self._current = []
                self._full.set()

    def extend(self, events: list[Event], *, close: bool = False) -> None:
        """Append a burst of events in order (thread-safe); closes batches at ``max_events``.

        ``close``: the burst ends the open batch (a reader that gathers a batch age of
        input per burst; waiting out the age again would only add latency).
        """
        if not events:
            return
        with self._lock:
            current = self._current
            if not current:
                self._opened_ms = self._clock()
            room = self.max_events - len(current)
            if len(events) < room and not close:
                current.extend(events)
                return
            current.extend(events[:room])
            self._closed.append(tuple(current))
            rest = events[room:]
            while len(rest) >= self.max_events:
                self._closed.append(tuple(rest[: self.max_events]))
                rest = rest[self.max_events :]
            if rest and close:
                self._closed.append(tuple(rest))
                rest = []
            self._current = rest
            if rest:
                self._opened_ms = self._clock()
            self._full.set()

    def due(self, now_ms: float | None = None) -> list[tuple[Event, ...]]:
        """Closed batches, oldest first; also closes the open one once it is old enough."""
        now = self._clock() if now_ms is None else now_ms
        with self._lock:
            if self._current and now - self._opened_ms >= self.max_age_ms:
                self._closed.append(tuple(self._current))
                self._current = []
            out, self._closed = self._closed, []
            self._full.clear()
        return out

    def drain(self) -> list[tuple[Event, ...]]:
        """Everything, the open batch included: for shutdown."""
        with self._lock:
            if self._current:
                self._closed.append(tuple(self._current))
                self._current = []
            out, self._closed = self._closed, []
        return out

    def wait(self, timeout: float) -> None:
        """Sleep until a batch fills up or ``timeout`` seconds pass."""
        self._full.wait(timeout)

    def next_deadline_s(self, now_ms: float | None = None) -> float | None:
        """Seconds until the open batch is due, None when none is open."""
        with self._lock:
            if not self._current:
                return None
            now = self._clock() if now_ms is None else now_ms
            return max(0.0, (self._opened_ms + self.max_age_ms - now) / 1000.0)
