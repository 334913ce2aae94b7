"""The worker's logic without Kafka: batches in, judged windows out.

:class:`Pipeline` is what the Faust agent runs for every batch, and what the
offline tools run over recordings; the two therefore produce the same verdicts
for the same batches (the consistency test holds them to it). The Faust side
only adds I/O: reading the table, writing the changelog, sending verdicts and
acking offsets.

>>> from collectors.simulate import Workload
>>> verdicts = list(replay(b for _, b in Workload(users=2, seed=1).batches(until_s=30)))
>>> len(verdicts) > 4 and {v.enrollment for v in verdicts} == {"enrolling"}
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from collectors.wire import EventBatch
from streams.judge import judge_window, load_profile
from streams.state import UserState
from streams.verdict import Verdict
from streams.windows import AddResult, Window, Windower, advance

T = TypeVar("T")


@dataclass(slots=True)
class Judged(Generic[T]):
    """A closed window, its verdict (None if judging failed) and the user's new state."""

    window: Window[T]
    verdict: Verdict | None
    state: UserState
    error: Exception | None = None
    cpu_seconds: float = 0.0
    profile_reset: bool = False
    # The user's state right after this window, serialised now: a later window of the same
    # user (closed by the same batch) mutates ``state`` before this one is persisted.
    state_bytes: bytes = b""


class Pipeline(Generic[T]):
    """Windows and profiles of the users one worker owns.

    ``load`` returns the stored state of a user (``None`` if there is none); the
    pipeline keeps decoded states and profiles in memory and returns each new state,
    serialised, with its window for the caller to persist. Serialisation is exact
    (:meth:`UserProfile.to_bytes`), so a worker restored from those bytes judges the
    next windows as this one would have.
    """

    def __init__(
        self,
        load: Callable[[str], UserState | None],
        window_ms: float = 5000.0,
        clock_ms: Callable[[], float] | None = None,
    ) -> None:
        self.load = load
        self.windower: Windower[T] = Windower(window_ms=window_ms)
        self.states: dict[str, UserState] = {}
        self.clock_ms = clock_ms

    def state_of(self, user: str) -> UserState:
        state = self.states.get(user)
        if state is None:
            state = self.load(user) or UserState()
            self.states[user] = state
        return state

    def add(self, batch: EventBatch, token: T) -> tuple[AddResult[T], list[Judged[T]]]:
        state = self.state_of(batch.user)
        result = self.windower.add(batch, state.cursors, token=token)
        return result, [self.judge(w) for w in result.closed]

    def flush(self, user: str, reason: str = "idle_flush") -> Judged[T] | None:
        """Judge the user's open window now; the user is idle, so their decoded profile
        (~25 KB, against a few KB of bytes) is dropped and decoded again when they return."""
        window = self.windower.flush(user, reason)
        judged = None if window is None else self.judge(window)
        state = self.states.get(user)
        if state is not None:
            state.decoded = None
        return judged

    def judge(self, window: Window[T]) -> Judged[T]:
        state = self.state_of(window.user)
        advance(state.cursors, window)
        state.windows += 1
        started = time.process_time()
        reset = False
        try:
            profile = state.decoded
            if profile is None:
                profile, reset = load_profile(state.profile)
            verdict = judge_window(window, profile, now_ms=self.clock_ms)
            data = profile.to_bytes()
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which dead-letters
            # The profile may be half updated: the next window starts again from the
            # bytes last persisted, as a restarted worker would.
            state.decoded = None
            return Judged(window, None, state, exc, state_bytes=state.to_bytes())
        state.decoded, state.profile = profile, data
        return Judged(
            window,
            verdict,
            state,
            cpu_seconds=time.process_time() - started,
            profile_reset=reset,
            state_bytes=state.to_bytes(),
        )

    def forget(self, users: Iterable[str]) -> None:
        """Drop open windows and cached states and profiles (partitions revoked)."""
        users = set(users)
        self.windower.drop(users)
        for user in users:
            self.states.pop(user, None)


def replay(batches: Iterable[EventBatch], window_ms: float = 5000.0) -> Iterator[Verdict]:
    """Verdicts for a stream of batches, judged in-process exactly as a worker would.

    Open windows are flushed at the end, as a worker's idle flush would.
    """
    pipeline: Pipeline[None] = Pipeline(lambda user: None, window_ms=window_ms)
    for batch in batches:
        for judged in pipeline.add(batch, None)[1]:
            if judged.verdict is not None:
                yield judged.verdict
    for user in list(pipeline.windower.open):
        flushed = pipeline.flush(user)
        if flushed is not None and flushed.verdict is not None:
            yield flushed.verdict
