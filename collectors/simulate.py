"""Synthetic workloads: many simulated users producing wire batches, with takeovers.

Each simulated user has a :class:`~collectors.persona.Persona` drawn from a seed and
works on one device, alternating typing and mousing. Batches are cut like the real
agent cuts them (every second of event time or 1024 events, and on a session change),
carry a per-device ``seq`` that grows by one, monotonic ``t_ms`` (device uptime) and a
``clock_offset_ms`` that maps them to wall-clock time counted from ``start_wall_ms``.

A :class:`Takeover` makes another persona (an impostor) operate under a user's account
from a given time: on the victim's device, in the victim's session (a walk-up to an
unlocked workstation) or a new one, or on a new device (stolen credentials; the owner
keeps working on their own device meanwhile). :attr:`Workload.truth` says who is
taken over from when.

Everything is a pure function of ``seed`` (and ``run``, which only renames devices
and sessions): iterating :meth:`Workload.batches` twice gives the same batches.

>>> wl = Workload(users=3, seed=1, takeovers=[Takeover(user_index=2, at_s=5.0)],
...               start_wall_ms=1.7e12)
>>> timed = list(wl.batches(until_s=10.0))
>>> all(a <= b for (a, _), (b, _) in zip(timed, timed[1:]))
True
>>> wl.truth[0].user == wl.users[2].user, wl.truth[0].at_s
(True, 5.0)
>>> from collectors.wire import decode_batch, encode_batch
>>> batch = timed[0][1]
>>> decode_batch(encode_batch(batch)) == batch
True
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from collectors.episodes import (
    BATCH_MAX_AGE_MS,
    BATCH_MAX_EVENTS,
    DeviceStream,
    Episode,
    cut_at,
    merge_streams,
)
from collectors.persona import Device, Persona, mouse_episode, typing_episode
from collectors.wire import EventBatch

__all__ = [
    "BATCH_MAX_EVENTS",
    "BATCH_MAX_AGE_MS",
    "SimUser",
    "Takeover",
    "TakeoverTruth",
    "Workload",
    "pace",
    "persona_seed",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Takeover:
    """From ``at_s`` on, an impostor operates ``user_index``'s account.

    The impostor is persona ``impostor_seed``, or the persona of another simulated user
    ``impostor_user`` (an insider), or by default a fresh persona derived from the
    workload seed. ``new_device`` puts the impostor on a device of their own (the owner
    keeps working); otherwise they take over the owner's device, in the owner's session
    unless ``new_session``.
    """

    user_index: int
    at_s: float
    impostor_seed: int | None = None
    impostor_user: int | None = None
    new_session: bool = False
    new_device: bool = False

    @classmethod
    def parse(cls, text: str) -> Takeover:
        """``USER_INDEX@SECONDS``, e.g. ``3@60`` (the CLI's ``--takeover``).

        >>> Takeover.parse("3@60.5")
        Takeover(user_index=3, at_s=60.5, impostor_seed=None, impostor_user=None, new_session=False, new_device=False)
        """
        user, sep, at = text.partition("@")
        try:
            if sep:
                return cls(user_index=int(user), at_s=float(at))
        except ValueError:
            pass
        raise ValueError(f"expected USER_INDEX@SECONDS, got {text!r}")


@dataclass(frozen=True, slots=True)
class SimUser:
    """One simulated account and its owner."""

    index: int
    user: str  # pseudonym on the wire
    persona: Persona
    device: str
    session: str


@dataclass(frozen=True, slots=True)
class TakeoverTruth:
    """Ground truth of one takeover: whose account, where, and from when."""

    user_index: int
    user: str
    device: str  # where the impostor's batches come from
    session: str
    at_s: float  # the owner's last event is before this, the impostor's first after
    at_wall_ms: float
    owner_seed: int
    impostor_seed: int


def persona_seed(seed: int, index: int) -> int:
    """The persona seed of simulated user ``index`` in a workload seeded ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class _Actor:
    """Who uses a device from ``from_ms`` on, in which session."""

    from_ms: float
    persona: Persona
    session: str


def _activity(
    actors: list[_Actor], device: Device, rng: np.random.Generator, until_ms: float
) -> Iterator[tuple[Episode, str]]:
    """A device's episodes: each actor in turn, alternating typing and mousing."""
    position = (device.width / 2.0, device.height / 2.0)
    # A moment after the first actor arrives, so users do not all start on one millisecond.
    start = actors[0].from_ms + float(rng.uniform(0.0, 2000.0))
    index = 0
    while True:
        while index + 1 < len(actors) and start >= actors[index + 1].from_ms:
            index += 1
            # A new person sits down: a short gap after the switch before they start.
            start = max(start, actors[index].from_ms + float(rng.uniform(300.0, 3000.0)))
        if start >= until_ms:
            return
        actor = actors[index]
        boundary = min(actors[index + 1].from_ms if index + 1 < len(actors) else math.inf, until_ms)
        persona = actor.persona
        if rng.random() < persona.typing_share:
            ep = typing_episode(persona, rng, start, n_words=int(rng.geometric(1 / 10)))
        else:
            n_actions = int(rng.geometric(1 / 4))
            ep, position = mouse_episode(persona, device, rng, start, position, n_actions)
        ep = cut_at(ep, boundary)
        end = ep.end_ms if len(ep) else start
        start = end + math.exp(persona.move_pause_mu + 0.4 + 0.6 * rng.normal())
        yield ep, actor.session


def _device_stream(
    device_id: str,
    user: str,
    actors: list[_Actor],
    rng: np.random.Generator,
    until_ms: float,
    start_wall_ms: float,
    batching: tuple[int, float],
) -> DeviceStream:
    device = Device.from_rng(rng)
    # Monotonic clocks count from boot: every device has its own uptime.
    boot_ms = float(rng.uniform(1e5, 1e9))
    return DeviceStream(
        device_id,
        user,
        _activity(actors, device, rng, until_ms),
        start_wall_ms=start_wall_ms,
        boot_ms=boot_ms,
        max_events=batching[0],
        max_age_ms=batching[1],
    )


class Workload:
    """``users`` simulated people on their devices, with optional takeovers.

    ``run`` names this run's devices and sessions: two runs with different ``run``
    values produce the same behaviour under fresh device ids, so consumers that
    deduplicate on ``(device, seq)`` do not drop the second run; with ``run_users`` the
    accounts are renamed too (another pseudonym per run), so a run never continues the
    profiles an earlier run left on the same topics. ``start_wall_ms``
    (default: now) is the wall-clock time of event time 0. ``batch_max_events`` and
    ``batch_max_age_ms`` are the agents' batching limits (default: the agent's).
    """

    def __init__(
        self,
        users: int,
        seed: int = 0,
        takeovers: Sequence[Takeover] = (),
        *,
        run: str = "",
        run_users: bool = False,
        start_wall_ms: float | None = None,
        batch_max_events: int = BATCH_MAX_EVENTS,
        batch_max_age_ms: float = BATCH_MAX_AGE_MS,
    ) -> None:
        if users < 1:
            raise ValueError("users must be at least 1")
        if batch_max_events < 1 or batch_max_age_ms <= 0:
            raise ValueError("a batch needs batch_max_events >= 1 and batch_max_age_ms > 0")
        for tk in takeovers:
            if not 0 <= tk.user_index < users:
                raise ValueError(f"takeover of user {tk.user_index}: only {users} users")
            if tk.impostor_user is not None and not 0 <= tk.impostor_user < users:
                raise ValueError(f"impostor user {tk.impostor_user}: only {users} users")
            if not (math.isfinite(tk.at_s) and tk.at_s >= 0):  # NaN and inf too
                raise ValueError("takeover time must be a non-negative number of seconds")
        self.seed = seed
        self.run = run
        self.batching = (batch_max_events, batch_max_age_ms)
        self.takeovers = tuple(sorted(takeovers, key=lambda tk: (tk.user_index, tk.at_s)))
        self.start_wall_ms = time.time() * 1000.0 if start_wall_ms is None else start_wall_ms
        tag = f"sim:{seed}"
        self.users = [
            SimUser(
                index=i,
                user=_hex(f"{tag}:{run}:user-{i}" if run_users else f"{tag}:user-{i}"),
                persona=Persona.from_seed(persona_seed(seed, i)),
                device="sim-dev-" + _hex(f"{tag}:{run}:device-{i}")[:24],
                session="sim-ses-" + _hex(f"{tag}:{run}:session-{i}")[:24],
            )
            for i in range(users)
        ]
        self.truth: list[TakeoverTruth] = []
        self._impostors: list[tuple[Takeover, Persona, str, str]] = []
        for k, tk in enumerate(self.takeovers):
            if tk.impostor_user is not None:
                impostor = self.users[tk.impostor_user].persona
            elif tk.impostor_seed is not None:
                impostor = Persona.from_seed(tk.impostor_seed)
            else:
                impostor = Persona.from_seed(persona_seed(seed, (1 << 20) + k))
            owner = self.users[tk.user_index]
            device = owner.device
            session = owner.session
            if tk.new_device:
                device = "sim-dev-" + _hex(f"{tag}:{run}:takeover-device-{k}")[:24]
            if tk.new_device or tk.new_session:
                session = "sim-ses-" + _hex(f"{tag}:{run}:takeover-session-{k}")[:24]
            self._impostors.append((tk, impostor, device, session))
            self.truth.append(
                TakeoverTruth(
                    user_index=tk.user_index,
                    user=owner.user,
                    device=device,
                    session=session,
                    at_s=tk.at_s,
                    at_wall_ms=self.start_wall_ms + tk.at_s * 1000.0,
                    owner_seed=owner.persona.seed,
                    impostor_seed=impostor.seed,
                )
            )

    def persona_at(self, user_index: int, t_s: float, device: str | None = None) -> Persona:
        """Whose behaviour ``user_index``'s account shows at ``t_s`` (on ``device``)."""
        owner = self.users[user_index]
        current = owner.persona
        for tk, impostor, dev, _ in self._impostors:
            if tk.user_index != user_index or t_s < tk.at_s:
                continue
            if tk.new_device:
                if device == dev:
                    return impostor
            elif device in (None, owner.device):
                current = impostor
        return current

    def batches(
        self, until_s: float = math.inf, *, start_wall_ms: float | None = None
    ) -> Iterator[tuple[float, EventBatch]]:
        """``(close time in s since start, batch)`` for every batch, in close-time order.

        The close time is when the real agent would send the batch; feed the pairs to
        :func:`pace` to send in real time. ``start_wall_ms`` overrides the workload's.
        """
        wall = self.start_wall_ms if start_wall_ms is None else start_wall_ms
        until_ms = until_s * 1000.0
        streams: list[DeviceStream] = []
        for u in self.users:
            actors = [_Actor(0.0, u.persona, u.session)]
            for tk, impostor, _, session in self._impostors:
                if tk.user_index == u.index and not tk.new_device:
                    actors.append(_Actor(tk.at_s * 1000.0, impostor, session))
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, u.index, 0xD5]))
            streams.append(
                _device_stream(u.device, u.user, actors, rng, until_ms, wall, self.batching)
            )
        for k, (tk, impostor, device, session) in enumerate(self._impostors):
            if tk.new_device:
                rng = np.random.default_rng(
                    np.random.SeedSequence([self.seed, tk.user_index, 0xD5, k + 1])
                )
                actors = [_Actor(tk.at_s * 1000.0, impostor, session)]
                owner = self.users[tk.user_index].user
                streams.append(
                    _device_stream(device, owner, actors, rng, until_ms, wall, self.batching)
                )
        return merge_streams(streams)


def pace(
    timed: Iterable[tuple[float, T]],
    speed: float = 1.0,
    *,
    wait: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    start: float | None = None,
) -> Iterator[T]:
    """Yield each item once ``t / speed`` seconds have passed since ``start``.

    ``start`` is the ``clock()`` reading of ``t = 0`` (default: the first call). Give it
    when the items' wall times were fixed before the first call, or every item goes out
    late by the time in between. ``speed=math.inf`` never waits. ``wait(seconds)`` is
    called while waiting; pass a producer's ``poll`` to serve delivery reports meanwhile
    (it may return early).

    >>> list(pace([(0.0, "a"), (0.01, "b")], speed=10.0))
    ['a', 'b']
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    started = clock() if start is None else start
    for t, item in timed:
        if math.isfinite(speed):
            due = started + t / speed
            while (delay := due - clock()) > 0:
                wait(delay)
        yield item
