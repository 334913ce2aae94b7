"""The batcher closes a batch at MAX_EVENTS events or MAX_AGE_MS, whichever first, in order."""

from __future__ import annotations

import threading

from collectors.batcher import MAX_AGE_MS, MAX_EVENTS, Batcher
from collectors.wire import MAX_EVENTS_PER_BATCH, KeyEvent, MouseEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key(i: int) -> KeyEvent:
    return KeyEvent("kd", float(i), 0)


def test_the_defaults_fit_the_wire() -> None:
    assert 1 <= MAX_EVENTS <= MAX_EVENTS_PER_BATCH
    assert 0 < MAX_AGE_MS <= 1000.0  # a verdict per 5 s window: at most a second late


def test_closes_at_max_events() -> None:
    clock = FakeClock()
    b = Batcher(clock=clock)
    n = 2 * MAX_EVENTS + 44
    for i in range(n):
        b.add(_key(i))
    chunks = b.due()
    assert [len(c) for c in chunks] == [MAX_EVENTS, MAX_EVENTS]
    assert [e.t_ms for c in chunks for e in c] == [float(i) for i in range(2 * MAX_EVENTS)]
    # The 44 left over wait for their batch age.
    clock.now += MAX_AGE_MS - 1.0
    assert b.due() == []
    clock.now += 1.0
    (rest,) = b.due()
    assert [e.t_ms for e in rest] == [float(i) for i in range(2 * MAX_EVENTS, n)]


def test_age_counts_from_first_event_and_empty_batches_are_never_made() -> None:
    clock = FakeClock()
    b = Batcher(clock=clock)
    clock.now += 10_000
    assert b.due() == []
    assert b.next_deadline_s() is None
    b.add(MouseEvent("mm", 1.0, 5, 5))
    clock.now += 100
    assert b.next_deadline_s() == (MAX_AGE_MS - 100) / 1000.0
    b.add(MouseEvent("mm", 2.0, 6, 6))
    clock.now += MAX_AGE_MS - 101
    assert b.due() == []
    clock.now += 1
    (chunk,) = b.due()
    assert len(chunk) == 2


def test_drain_returns_the_open_batch() -> None:
    b = Batcher(clock=FakeClock())
    b.add(_key(1))
    assert b.drain() == [(_key(1),)]
    assert b.drain() == []


def test_full_batch_wakes_waiter() -> None:
    b = Batcher(max_events=4, clock=FakeClock())
    woke = threading.Event()

    def waiter() -> None:
        b.wait(5.0)
        woke.set()

    t = threading.Thread(target=waiter)
    t.start()
    for i in range(4):
        b.add(_key(i))
    t.join(2.0)
    assert woke.is_set()


def test_concurrent_adders_lose_nothing() -> None:
    b = Batcher(clock=FakeClock())

    def adder(base: int) -> None:
        for i in range(1000):
            b.add(_key(base + i))

    threads = [threading.Thread(target=adder, args=(k * 10_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = [e for c in b.drain() for e in c]
    assert len(events) == 4000 and len({e.t_ms for e in events}) == 4000


def test_a_burst_fills_batches_in_order_and_keeps_the_rest_open() -> None:
    clock = FakeClock()
    b = Batcher(max_events=128, max_age_ms=250.0, clock=clock)
    b.add(_key(0))
    b.extend([_key(i) for i in range(1, 300)])
    b.extend([])
    chunks = b.due()
    assert [len(c) for c in chunks] == [128, 128]
    assert [e.t_ms for c in chunks for e in c] == [float(i) for i in range(256)]
    # The rest of the burst opened a new batch: its age counts from the burst.
    clock.now += 100.0
    b.extend([_key(300)])
    clock.now += 150.0
    (rest,) = b.due()
    assert [e.t_ms for e in rest] == [float(i) for i in range(256, 301)]
    b.extend([_key(i) for i in range(301, 320)])
    (last,) = b.drain()
    assert len(last) == 19


def test_a_closing_burst_is_a_batch_of_its_own() -> None:
    b = Batcher(clock=FakeClock())
    b.extend([_key(i) for i in range(5)], close=True)
    b.extend([_key(i) for i in range(5, MAX_EVENTS + 12)], close=True)
    assert [len(c) for c in b.due()] == [5, MAX_EVENTS, 7]
    assert b.next_deadline_s() is None  # nothing left open to wait for
