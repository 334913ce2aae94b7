"""Send timed batches through a :class:`~collectors.delivery.BatchSender`, paced or flat out.

Shared by ``cadence simulate`` and ``cadence replay``: the same delivery path as the
real agent (spool, idempotent producer, key = user pseudonym), with two additions a
generator needs and an agent does not:

* pacing: a batch goes out when its close time, divided by ``speed``, has passed;
* backpressure: a generator can outrun the broker, and the spool drops its oldest
  batches when full, so sending pauses (serving delivery reports) while more than
  ``max_pending`` batches are unacknowledged.

>>> class Fake:
...     pending = 0
...     def send(self, batch): self.last = batch
...     def poll(self, timeout=0): pass
>>> from collectors.simulate import Workload
>>> stats = publish(Workload(users=2, seed=0, start_wall_ms=1.7e12).batches(2.0), Fake(),
...                 speed=float("inf"))
>>> stats.batches > 0 and stats.events > stats.batches
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from collectors.simulate import pace
from collectors.wire import MAX_SEND_AGE_MS, EventBatch

DAY_MS = 86_400_000.0


class Sender(Protocol):
    """The part of :class:`~collectors.delivery.BatchSender` publishing needs."""

    @property
    def pending(self) -> int: ...

    def send(self, batch: EventBatch) -> None: ...

    def poll(self, timeout: float = 0) -> None: ...


@dataclass
class PublishStats:
    batches: int = 0
    events: int = 0
    elapsed_s: float = 0.0
    last_t_s: float = 0.0  # close time of the last batch sent, on the workload's clock

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0


def publish(
    timed: Iterable[tuple[float, EventBatch]],
    sender: Sender,
    *,
    speed: float = 1.0,
    max_pending: int = 20_000,
    progress: Callable[[PublishStats], None] | None = None,
    progress_every_s: float = 5.0,
) -> PublishStats:
    """Send every batch of ``timed``; returns counts (the caller flushes the sender)."""
    stats = PublishStats()
    started = time.monotonic()
    next_report = started + progress_every_s
    close_times: list[float] = []

    def remember(items: Iterable[tuple[float, EventBatch]]) -> Iterable[tuple[float, EventBatch]]:
        for t, batch in items:
            close_times.append(t)
            yield t, batch

    for batch in pace(remember(timed), speed, wait=lambda s: sender.poll(min(s, 0.1))):
        while sender.pending >= max_pending:
            sender.poll(0.05)
        sender.send(batch)
        stats.batches += 1
        stats.events += len(batch.events)
        stats.last_t_s = close_times.pop()
        now = time.monotonic()
        if progress is not None and now >= next_report:
            stats.elapsed_s = now - started
            progress(stats)
            next_report = now + progress_every_s
    stats.elapsed_s = time.monotonic() - started
    return stats


def start_ending_now(length_s: float, speed: float, now_ms: float | None = None) -> float:
    """Wall time (ms) of event time 0 for a run of ``length_s`` paced at ``speed``.

    Faster than real time, a run started now would stamp its batches in the future (the
    worker dead-letters those sent more than 5 minutes ahead): it is placed so that it
    *ends* now. In real time or slower it starts now and stays behind the clock.

    A run placed to start more than 30 days ago (``MAX_SEND_AGE_MS``: a replay of the
    free-text recordings with their idle gaps kept spans weeks) raises ``ValueError``:
    the worker dead-letters batches sent that long before they arrive.

    >>> start_ending_now(600.0, 4.0, now_ms=1_000_000.0)
    550000.0
    >>> start_ending_now(600.0, float("inf"), now_ms=1_000_000.0), start_ending_now(60.0, 1.0, 5.0)
    (400000.0, 5.0)
    >>> start_ending_now(float("inf"), 1.0, now_ms=5.0)  # until Ctrl-C, in real time
    5.0
    >>> start_ending_now(44 * 86400.0, float("inf"), now_ms=1.8e12)
    Traceback (most recent call last):
    ...
    ValueError: placed to end now, the run would start 44.0 days ago: the worker dead-letters batches sent more than 30 days before they arrive (absurd_timestamp)
    """
    now_ms = time.time() * 1000.0 if now_ms is None else now_ms
    if speed <= 1.0:
        # Not now - length x 0: an endless run (inf x 0) would stamp every batch NaN.
        return now_ms
    behind_ms = length_s * 1000.0 * (1.0 - 1.0 / speed)
    if not behind_ms <= MAX_SEND_AGE_MS:
        raise ValueError(
            f"placed to end now, the run would start {behind_ms / DAY_MS:.1f} days ago: the "
            f"worker dead-letters batches sent more than {MAX_SEND_AGE_MS / DAY_MS:.0f} days "
            "before they arrive (absurd_timestamp)"
        )
    return now_ms - behind_ms


__all__ = ["PublishStats", "Sender", "publish", "start_ending_now"]
