"""The batcher closes a batch at 128 events or 250 ms, whichever first, in order."""

from __future__ import annotations

import threading

from collectors.batcher import Batcher
from collectors.wire import KeyEvent, MouseEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _key(i: int) -> KeyEvent:
    return KeyEvent("kd", float(i), 0)


def test_closes_at_128_events() -> None:
    clock = FakeClock()
    b = Batcher(clock=clock)
    for i in range(300):
        b.add(_key(i))
    chunks = b.due()
    assert [len(c) for c in chunks] == [128, 128]
    assert [e.t_ms for c in chunks for e in c] == [float(i) for i in range(256)]
    # The 44 left over wait for their 250 ms.
    clock.now += 249.0
    assert b.due() == []
    clock.now += 1.0
    (rest,) = b.due()
    assert [e.t_ms for e in rest] == [float(i) for i in range(256, 300)]


def test_age_counts_from_first_event_and_empty_batches_are_never_made() -> None:
    clock = FakeClock()
    b = Batcher(clock=clock)
    clock.now += 10_000
    assert b.due() == []
    assert b.next_deadline_s() is None
    b.add(MouseEvent("mm", 1.0, 5, 5))
    clock.now += 100
    assert b.next_deadline_s() == 0.15
    b.add(MouseEvent("mm", 2.0, 6, 6))
    clock.now += 150
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
    b = Batcher(clock=clock)
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
    b.extend([_key(i) for i in range(5, 140)], close=True)
    assert [len(c) for c in b.due()] == [5, 128, 7]
    assert b.next_deadline_s() is None  # nothing left open to wait for
