"""Synthetic workloads: many simulated users producing wire batches, with takeovers.

Each simulated user has a :class:`~collectors.persona.Persona` drawn from a seed and
works on one device, alternating typing and mousing. Batches are cut like the real
agent cuts them (every 250 ms of event time or 128 events, and on a session change),
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

import bisect
import hashlib
import heapq
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np

from collectors.persona import (
    KD,
    KIND_NAMES,
    KU,
    MD,
    MU,
    Device,
    Episode,
    Persona,
    mouse_episode,
    typing_episode,
)
from collectors.wire import Event, EventBatch, KeyEvent, MouseEvent

_KIND_NAMES: Final = np.array(KIND_NAMES)

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

BATCH_MAX_EVENTS: Final = 128
BATCH_MAX_AGE_MS: Final = 250.0

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
        if not sep:
            raise ValueError(f"expected USER_INDEX@SECONDS, got {text!r}")
        return cls(user_index=int(user), at_s=float(at))


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


class _DeviceStream:
    """The batches of one simulated device, generated lazily in event-time order."""

    def __init__(
        self,
        device_id: str,
        user: str,
        actors: list[_Actor],
        rng: np.random.Generator,
        until_ms: float,
        start_wall_ms: float,
    ) -> None:
        self.device_id = device_id
        self.user = user
        self.actors = actors
        self.rng = rng
        self.until_ms = until_ms
        self.device = Device.from_rng(rng)
        # Monotonic clocks count from boot: give every device its own uptime.
        self.boot_ms = float(rng.uniform(1e5, 1e9))
        self.clock_offset_ms = start_wall_ms - self.boot_ms
        self.start_wall_ms = start_wall_ms
        self.seq = 0
        self.position = (self.device.width / 2.0, self.device.height / 2.0)
        # First activity a moment after the first actor arrives, so users do not all
        # start on the same millisecond.
        self.next_start_ms = actors[0].from_ms + float(rng.uniform(0.0, 2000.0))
        self.actor_index = 0
        self.done = False
        # The buffer of generated, not yet batched events, as plain lists: batches
        # are small, and list slicing beats numpy's per-call overhead at that size.
        self._t: list[float] = []  # event time since the start, ms
        self._events: list[Event] = []
        self._sess: list[int] = []  # actor index, non-decreasing
        self._i = 0

    # -- generation --------------------------------------------------------------

    def _generate(self) -> None:
        """Append the next episode to the buffer (or mark the stream done)."""
        start = self.next_start_ms
        while (
            self.actor_index + 1 < len(self.actors)
            and start >= self.actors[self.actor_index + 1].from_ms
        ):
            self.actor_index += 1
            # A new person sits down: a short gap after the switch before they start.
            start = max(start, self.actors[self.actor_index].from_ms + self._walkup_ms())
        if start >= self.until_ms:
            self.done = True
            return
        actor = self.actors[self.actor_index]
        nxt = (
            self.actors[self.actor_index + 1].from_ms
            if self.actor_index + 1 < len(self.actors)
            else math.inf
        )
        boundary = min(nxt, self.until_ms)
        persona = actor.persona
        if self.rng.random() < persona.typing_share:
            ep = typing_episode(persona, self.rng, start, n_words=int(self.rng.geometric(1 / 10)))
        else:
            ep, self.position = mouse_episode(
                persona,
                self.device,
                self.rng,
                start,
                self.position,
                n_actions=int(self.rng.geometric(1 / 4)),
            )
        ep = _cut(ep, boundary)
        end = ep.end_ms if len(ep) else start
        self.next_start_ms = end + math.exp(persona.move_pause_mu + 0.4 + 0.6 * self.rng.normal())
        if len(ep):
            self._append(ep, self.actor_index)

    def _walkup_ms(self) -> float:
        return float(self.rng.uniform(300.0, 3000.0))

    def _append(self, ep: Episode, actor_index: int) -> None:
        if self._i > 0:
            del self._t[: self._i], self._events[: self._i], self._sess[: self._i]
            self._i = 0
        t_wire = np.round(ep.t_ms + self.boot_ms, 3).tolist()
        names = _KIND_NAMES[ep.kind].tolist()
        # An episode is all keys or all mouse (see persona), so one constructor fits.
        if int(ep.kind.max()) <= KU:
            self._events.extend(map(KeyEvent, names, t_wire, ep.a.tolist()))
        else:
            self._events.extend(
                map(
                    MouseEvent,
                    names,
                    t_wire,
                    ep.a.tolist(),
                    ep.b.tolist(),
                    ep.c.tolist(),
                    ep.d.tolist(),
                    ep.e.tolist(),
                )
            )
        self._t.extend(ep.t_ms.tolist())
        self._sess.extend([actor_index] * len(ep))

    # -- batching ----------------------------------------------------------------

    def next_batch(self) -> tuple[float, EventBatch] | None:
        """The next batch and the event time (ms) it closes at, or None at the end."""
        while True:
            t, sess, i = self._t, self._sess, self._i
            n = len(t)
            if i >= n:
                if self.done:
                    return None
                self._generate()
                continue
            open_ms = t[i]
            close_by_age = open_ms + BATCH_MAX_AGE_MS
            # The open batch is complete once something later than its cut is buffered.
            if not (
                self.done
                or n - i >= BATCH_MAX_EVENTS
                or t[-1] >= close_by_age
                or sess[-1] != sess[i]
            ):
                self._generate()
                continue
            j = min(
                bisect.bisect_left(t, close_by_age, i),
                i + BATCH_MAX_EVENTS,
                bisect.bisect_right(sess, sess[i], i),
            )
            if j - i == BATCH_MAX_EVENTS or (j < n and sess[j] != sess[i]):
                close_ms = t[j - 1]  # full, or closed by a session change
            else:
                close_ms = close_by_age
            if self.done and j == n:
                close_ms = min(close_ms, max(t[j - 1], self.until_ms))
            events = tuple(self._events[i:j])
            # Never before the last event's wall time, whatever the rounding of t_ms.
            sent_at_ms = max(self.start_wall_ms + close_ms, events[-1].t_ms + self.clock_offset_ms)
            batch = EventBatch(
                device=self.device_id,
                user=self.user,
                session=self.actors[sess[i]].session,
                seq=self.seq,
                sent_at_ms=sent_at_ms,
                clock_offset_ms=self.clock_offset_ms,
                events=events,
            )
            self.seq += 1
            self._i = j
            return close_ms, batch


def _cut(ep: Episode, boundary_ms: float) -> Episode:
    """Events before ``boundary_ms``; keys and buttons still held are released just before it.

    Used where one person's activity must end: at a takeover and at the end of a run.
    """
    if not len(ep) or ep.end_ms < boundary_ms:
        return ep
    keep = ep.t_ms < boundary_ms
    t, kind = ep.t_ms[keep], ep.kind[keep]
    a, b, c, d, e = ep.a[keep], ep.b[keep], ep.c[keep], ep.d[keep], ep.e[keep]
    extra_t: list[float] = []
    extra: list[tuple[int, int, int, int]] = []  # kind, a, b, c
    last = float(t[-1]) if t.size else boundary_ms - 1.0
    release_at = last + min(1.0, (boundary_ms - last) / 2.0)
    for cls in np.unique(a[kind == KD]).tolist():
        held = int(((kind == KD) & (a == cls)).sum() - ((kind == KU) & (a == cls)).sum())
        for _ in range(max(held, 0)):
            extra_t.append(release_at)
            extra.append((KU, cls, 0, 0))
    for button in np.unique(c[kind == MD]).tolist():
        held = int(((kind == MD) & (c == button)).sum() - ((kind == MU) & (c == button)).sum())
        if held > 0:
            x, y = (int(a[-1]), int(b[-1])) if a.size else (0, 0)
            extra_t.extend([release_at] * held)
            extra.extend([(MU, x, y, button)] * held)
    if not extra:
        return Episode(t, kind, a, b, c, d, e)
    cols = np.asarray(extra, np.int64).T
    zeros = np.zeros(len(extra), np.int64)
    return Episode(
        np.concatenate([t, np.asarray(extra_t)]),
        np.concatenate([kind, cols[0].astype(np.int8)]),
        np.concatenate([a, cols[1]]),
        np.concatenate([b, cols[2]]),
        np.concatenate([c, cols[3]]),
        np.concatenate([d, zeros]),
        np.concatenate([e, zeros]),
    )


class Workload:
    """``users`` simulated people on their devices, with optional takeovers.

    ``run`` names this run's devices and sessions: two runs with different ``run``
    values produce the same behaviour under fresh device ids, so consumers that
    deduplicate on ``(device, seq)`` do not drop the second run. ``start_wall_ms``
    (default: now) is the wall-clock time of event time 0.
    """

    def __init__(
        self,
        users: int,
        seed: int = 0,
        takeovers: Sequence[Takeover] = (),
        *,
        run: str = "",
        start_wall_ms: float | None = None,
    ) -> None:
        if users < 1:
            raise ValueError("users must be at least 1")
        for tk in takeovers:
            if not 0 <= tk.user_index < users:
                raise ValueError(f"takeover of user {tk.user_index}: only {users} users")
            if tk.impostor_user is not None and not 0 <= tk.impostor_user < users:
                raise ValueError(f"impostor user {tk.impostor_user}: only {users} users")
            if tk.at_s < 0:
                raise ValueError("takeover time must not be negative")
        self.seed = seed
        self.run = run
        self.takeovers = tuple(sorted(takeovers, key=lambda tk: (tk.user_index, tk.at_s)))
        self.start_wall_ms = time.time() * 1000.0 if start_wall_ms is None else start_wall_ms
        tag = f"sim:{seed}"
        self.users = [
            SimUser(
                index=i,
                user=_hex(f"{tag}:user-{i}"),
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
        streams: list[_DeviceStream] = []
        for u in self.users:
            actors = [_Actor(0.0, u.persona, u.session)]
            for tk, impostor, _, session in self._impostors:
                if tk.user_index == u.index and not tk.new_device:
                    actors.append(_Actor(tk.at_s * 1000.0, impostor, session))
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, u.index, 0xD5]))
            streams.append(_DeviceStream(u.device, u.user, actors, rng, until_ms, wall))
        for k, (tk, impostor, device, session) in enumerate(self._impostors):
            if tk.new_device:
                rng = np.random.default_rng(
                    np.random.SeedSequence([self.seed, tk.user_index, 0xD5, k + 1])
                )
                owner = self.users[tk.user_index]
                actors = [_Actor(tk.at_s * 1000.0, impostor, session)]
                streams.append(_DeviceStream(device, owner.user, actors, rng, until_ms, wall))
        heap: list[tuple[float, int, EventBatch]] = []
        for order, stream in enumerate(streams):
            first = stream.next_batch()
            if first is not None:
                heap.append((first[0], order, first[1]))
        heapq.heapify(heap)
        while heap:
            close_ms, order, batch = heap[0]
            nxt = streams[order].next_batch()
            if nxt is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (nxt[0], order, nxt[1]))
            yield close_ms / 1000.0, batch


def pace(
    timed: Iterable[tuple[float, T]],
    speed: float = 1.0,
    *,
    wait: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[T]:
    """Yield each item once ``t / speed`` seconds have passed since the first call.

    ``speed=math.inf`` never waits. ``wait(seconds)`` is called while waiting; pass a
    producer's ``poll`` to serve delivery reports meanwhile (it may return early).

    >>> list(pace([(0.0, "a"), (0.01, "b")], speed=10.0))
    ['a', 'b']
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    started = clock()
    for t, item in timed:
        if math.isfinite(speed):
            due = started + t / speed
            while (delay := due - clock()) > 0:
                wait(delay)
        yield item
