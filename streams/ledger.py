"""When a user's judged windows become permanent: state written, batches acked.

A judged window leaves the worker as records (its verdict and finding, or its dead
letters) and as the user's new state in the profile table's changelog. Kafka
acknowledges them in any order, a failed record is retried later, and a crash may
come at any point. Three rules keep it from losing or repeating a window:

1. A state is written only once the records of its window, *and of every earlier
   window of the user*, are in Kafka. The state's cursor says those batches were
   judged: written before a verdict exists, a crash would make the redelivered
   batches pass for duplicates, and that verdict would never be emitted.
2. States are written in the order their windows were judged: a verdict retried
   after a later window's was delivered must not write the older state over the newer.
3. A window's batches are acked only once a state that includes the window is in
   Kafka. Acked before, Faust may commit them; after a crash the state would lack
   the window while its batches are never read again.

Kafka's acknowledgements of consecutive windows usually arrive together, so one
changelog record (the latest state) settles them all.

>>> written, acked = [], []
>>> ledger = Ledger(lambda k, v, p, done: (written.append(v), done(True)), acked.extend)
>>> first = ledger.judged("u", b"u", b"state 1", 0, ["b1", "b2"], records=1)
>>> second = ledger.judged("u", b"u", b"state 2", 0, ["b3"], records=1)
>>> second()  # the later verdict is in Kafka first: nothing may be written yet
>>> written, acked
([], [])
>>> first()
>>> written, acked
([b'state 2'], ['b1', 'b2', 'b3'])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

# persist(key, state, partition, on_done): on_done(True) once the changelog has it,
# on_done(False) if the partition moved to another worker first (see streams.outbox).
Persist = Callable[[bytes, bytes, int, Callable[[bool], None]], None]


@dataclass(slots=True)
class _Window(Generic[T]):
    key: bytes
    state: bytes
    partition: int
    tokens: list[T]
    waiting: int  # its records not yet in Kafka
    fate: str = "kept"  # "kept" | "erased" (acked, never written) | "revoked" (neither)


class Ledger(Generic[T]):
    """Per user, the judged windows whose state is not yet written, in judging order."""

    def __init__(self, persist: Persist, ack: Callable[[list[T]], None]) -> None:
        self._persist = persist
        self._ack = ack
        self._users: dict[str, deque[_Window[T]]] = {}

    def __len__(self) -> int:
        """Judged windows still queued: waiting for their records or an earlier window.

        A window whose state is being written (to the changelog) has left the queue; its
        batches are acked when the write is in Kafka.
        """
        return sum(len(q) for q in self._users.values())

    def judged(
        self, user: str, key: bytes, state: bytes, partition: int, tokens: list[T], records: int
    ) -> Callable[[], None]:
        """Record a judged window; return what each of its ``records`` calls once in Kafka.

        ``records`` may be 0 (nothing to emit): the window then waits only for the
        user's earlier windows.
        """
        window = _Window(key, state, partition, tokens, records)
        self._users.setdefault(user, deque()).append(window)

        def delivered() -> None:
            window.waiting -= 1
            if window.waiting == 0:
                self._settle(user, window)

        if records == 0:
            self._settle(user, window)
        return delivered

    def forget(self, user: str, erased: bool) -> None:
        """Drop the user's pending windows: ``erased`` (the profile was erased: ack their
        batches, write nothing) or revoked (another worker owns them now: neither)."""
        for window in self._users.pop(user, ()):
            if erased and window.waiting <= 0:
                self._ack(window.tokens)  # all in Kafka already; nothing will call again
            window.fate = "erased" if erased else "revoked"

    def _settle(self, user: str, window: _Window[T]) -> None:
        if window.fate == "erased":
            self._ack(window.tokens)
            return
        if window.fate == "revoked":
            return
        queue = self._users[user]
        done: list[_Window[T]] = []
        while queue and queue[0].waiting <= 0:
            done.append(queue.popleft())
        if not queue:
            del self._users[user]
        if not done:
            return  # an earlier window of the user still waits for Kafka
        tokens = [token for w in done for token in w.tokens]
        last = done[-1]

        def written(ok: bool) -> None:
            if ok:
                self._ack(tokens)

        self._persist(last.key, last.state, last.partition, written)
