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
from profiles.user import UserProfile
from streams.judge import judge_windows, load_profile
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
    together: int = 1  # windows judged in the same call (this one included)
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
        self.closed: list[Window[T]] = []  # closed, not judged yet
        self.idle: set[str] = set()  # users whose decoded profile goes once judged

    def state_of(self, user: str) -> UserState:
        state = self.states.get(user)
        if state is None:
            state = self.load(user) or UserState()
            self.states[user] = state
        return state

    def add(self, batch: EventBatch, token: T) -> tuple[AddResult[T], list[Judged[T]]]:
        """Add a batch and judge the windows it closes."""
        result = self.close(batch, token)
        return result, self.judge_closed()

    def close(self, batch: EventBatch, token: T) -> AddResult[T]:
        """Add a batch; the windows it closes wait for :meth:`judge_closed`, so that the
        windows of many users are judged together (a fraction of the cost each)."""
        state = self.state_of(batch.user)
        result = self.windower.add(batch, state.cursors, token=token)
        self.closed.extend(result.closed)
        return result

    def flush(self, user: str, reason: str = "idle_flush") -> list[Judged[T]]:
        """Close the user's open window and judge every closed window."""
        self.close_open(user, reason)
        return self.judge_closed()

    def close_open(self, user: str, reason: str = "idle_flush") -> None:
        """Close the user's open window now; the user is idle, so their decoded profile
        (~25 KB, against a few KB of bytes) is dropped once it is judged, and decoded
        again when they return."""
        window = self.windower.flush(user, reason)
        if window is not None:
            self.closed.append(window)
        self.idle.add(user)

    def judge_closed(self) -> list[Judged[T]]:
        """Judge the closed windows, in order; each call to the profiles holds at most
        one window per user (a user's next window depends on this one's outcome)."""
        judged: list[Judged[T]] = []
        while self.closed:
            now: list[Window[T]] = []
            later: list[Window[T]] = []
            users: set[str] = set()
            for w in self.closed:
                (later if w.user in users else now).append(w)
                users.add(w.user)
            self.closed = later
            judged += self.judge_many(now)
        for user in self.idle:
            state = self.states.get(user)
            if state is not None:
                state.decoded = None
        self.idle.clear()
        return judged

    def judge_many(self, windows: list[Window[T]]) -> list[Judged[T]]:
        """Judge windows of distinct users together; alone if one of them fails."""
        states = [self.state_of(w.user) for w in windows]
        for window, state in zip(windows, states, strict=True):
            advance(state.cursors, window)
            self.windower.judged(window)
            state.windows += 1
        # A window of heartbeats only (empty batches) has no behaviour and no event
        # time: it is not judged (no verdict), but the cursor it moved is persisted.
        judged = [
            Judged(w, None, s, state_bytes=_record(s))
            for w, s in zip(windows, states, strict=True)
            if not w.events
        ]
        full = [(w, s) for w, s in zip(windows, states, strict=True) if w.events]
        if full:
            judged += self._judge([w for w, _ in full], [s for _, s in full])
        return judged

    def _judge(self, windows: list[Window[T]], states: list[UserState]) -> list[Judged[T]]:
        started = time.process_time()
        try:
            loaded = [_profile(state) for state in states]
            profiles = [profile for profile, _ in loaded]
            verdicts = judge_windows(windows, profiles, now_ms=self.clock_ms)
            data = [profile.to_bytes() for profile in profiles]
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which dead-letters
            # The profiles may be half updated: the next window starts again from the
            # bytes last persisted, as a restarted worker would. In a group, any of them
            # may be: each window is judged again, alone, so a failure stays with its own.
            for state in states:
                state.decoded = None
            if len(windows) > 1:
                return [
                    j for w, s in zip(windows, states, strict=True) for j in self._judge([w], [s])
                ]
            return [Judged(windows[0], None, states[0], exc, state_bytes=_record(states[0]))]
        cpu_seconds = (time.process_time() - started) / len(windows)
        judged: list[Judged[T]] = []
        for window, state, (profile, reset), verdict, state_profile in zip(
            windows, states, loaded, verdicts, data, strict=True
        ):
            state.decoded, state.profile = profile, state_profile
            record = _record(state)
            judged.append(
                Judged(
                    window,
                    verdict,
                    state,
                    cpu_seconds=cpu_seconds,
                    profile_reset=reset,
                    together=len(windows),
                    state_bytes=record,
                )
            )
        return judged

    def forget(self, users: Iterable[str]) -> list[Window[T]]:
        """Drop the users' unjudged windows (returned), cached states and profiles."""
        users = set(users)
        dropped = self.windower.drop(users)
        dropped += [w for w in self.closed if w.user in users]
        self.closed = [w for w in self.closed if w.user not in users]
        for user in users:
            self.states.pop(user, None)
            self.idle.discard(user)
        return dropped


def _record(state: UserState) -> bytes:
    """The state's record, for the caller to persist; the state's profile refers into it."""
    record = state.to_bytes()
    state.share_profile(record)
    return record


def _profile(state: UserState) -> tuple[UserProfile, bool]:
    """The user's profile, decoded from its bytes if not in memory; whether it was reset."""
    if state.decoded is not None:
        return state.decoded, False
    return load_profile(state.profile)


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
        for flushed in pipeline.flush(user):
            if flushed.verdict is not None:
                yield flushed.verdict
