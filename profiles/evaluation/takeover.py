"""Account takeover on real recordings: time to detection and false alarms per hour.

The figures the product is judged by are not an EER but what an operator lives
with: once someone else sits at an owner's unlocked desk, how long until the
verdict says ``impostor``; and how often the owner themself is called an
impostor per hour of work. Both come from the real :class:`UserProfile` driven
exactly as the stream worker drives it (:func:`streams.judge.judge_windows`):
one :meth:`UserProfile.assess` per closed window of ``window_s`` seconds of
event time, per session.

Protocol, per account (see ``docs/evaluation.md``, "Takeover"):

1. *Enrol*: feed the owner's enrolment segments window by window.
2. *Genuine*: feed the owner's held-out segments (each a fresh session); every
   entry of the level into ``impostor`` (and into ``suspicious`` or worse) is a
   false alarm; active time = number of windows the profile judged (it was active)
   x ``window_s``: a profile still enrolling calls no one an impostor.
3. *Takeover*, for every other person: restore the profile as it was after 2,
   then feed that person's activity in the owner's last session (an attacker at
   an unlocked desk: the rolling context still holds the owner's last presses and
   actions), with the trust set to full (timed from a trusted session). Time to detection = active seconds (windows x ``window_s``) and
   events of the attacker until the level first reads ``impostor``; censored
   (infinite) if it never does within ``max_impostor_s``.

Windows are cut like the worker's: a window opens at its first event and takes
every event of the session within ``window_s`` of it; empty stretches (pauses)
produce no window and count no time.

>>> import numpy as np
>>> [(a, b) for a, b in cut_windows(np.array([0.0, 1000.0, 6000.0, 60000.0, 60001.0]), 5000.0)]
[(0, 2), (2, 3), (3, 5)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Final, Literal

import numpy as np

from profiles.background import Background, fit_keystrokes, fit_mouse
from profiles.keystrokes import KeystrokeEvents
from profiles.mouse import MouseEvents
from profiles.trust import DEFAULT_POLICY, LEVELS, TrustPolicy
from profiles.user import Assessment, EnrollmentPolicy, UserProfile

Modality = Literal["keystrokes", "mouse", "desk"]
Events = KeystrokeEvents | MouseEvents

#: Levels at or beyond which a verdict counts as an alarm of that kind.
ALARM_LEVELS: Final = ("suspicious", "impostor")


def cut_windows(t_ms: np.ndarray, window_ms: float) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` index ranges of consecutive worker-style windows of sorted times."""
    n = int(t_ms.size)
    i = 0
    while i < n:
        j = int(np.searchsorted(t_ms, t_ms[i] + window_ms, side="left"))
        j = max(j, i + 1)
        yield i, j
        i = j


def _slice(events: Events, start: int, stop: int) -> Events:
    if isinstance(events, MouseEvents):
        return events[start:stop]
    return KeystrokeEvents(
        events.t_ms[start:stop], events.is_down[start:stop], events.key_class[start:stop]
    )


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive windows of one recording, fed under one session id."""

    session: str
    windows: tuple[Events, ...]

    @property
    def events(self) -> int:
        return sum(len(w) for w in self.windows)


def windows_of(events: Events, window_s: float) -> tuple[Events, ...]:
    """A recording cut into worker-style windows (times must be sorted)."""
    t = events.t_ms
    if t.size > 1 and np.any(np.diff(t) < 0):
        order = np.argsort(t, kind="stable")
        events = _take(events, order)
        t = events.t_ms
    return tuple(_slice(events, a, b) for a, b in cut_windows(t, window_s * 1000.0))


def _take(events: Events, order: np.ndarray) -> Events:
    if isinstance(events, MouseEvents):
        return events[order]
    return KeystrokeEvents(events.t_ms[order], events.is_down[order], events.key_class[order])


@dataclass(frozen=True, slots=True)
class Account:
    """One person: enrolment and held-out genuine segments, and what they do as an attacker."""

    name: str
    enroll: tuple[Segment, ...]
    genuine: tuple[Segment, ...]
    attack: tuple[Segment, ...]  # this person's activity when they use someone else's account


def split_by_time(
    name: str,
    recordings: Sequence[tuple[str, Events]],
    window_s: float,
    enroll_fraction: float = 0.7,
) -> Account:
    """Enrol on the first ``enroll_fraction`` of each recording's windows, hold out the rest.

    The cut is by windows, i.e. by active time, so a long pause does not move it.
    As an attacker the person uses all their recordings.
    """
    enroll: list[Segment] = []
    genuine: list[Segment] = []
    attack: list[Segment] = []
    for session, events in recordings:
        ws = windows_of(events, window_s)
        cut = int(round(len(ws) * enroll_fraction))
        if cut:
            enroll.append(Segment(session, ws[:cut]))
        if cut < len(ws):
            genuine.append(Segment(f"{session}#heldout", ws[cut:]))
        attack.append(Segment(session, ws))
    return Account(name, tuple(enroll), tuple(genuine), tuple(attack))


def split_by_session(
    name: str, recordings: Sequence[tuple[str, Events]], window_s: float, holdout: int = 1
) -> Account:
    """Enrol on all recordings but the last ``holdout`` (in the given order), which are genuine."""
    segs = [Segment(s, windows_of(e, window_s)) for s, e in recordings]
    keep = max(1, len(segs) - holdout)
    return Account(name, tuple(segs[:keep]), tuple(segs[keep:]), tuple(segs[keep:]))


def interleave(first: Segment | None, second: Segment | None) -> Segment:
    """One session of a desk: a window of each segment in turn, then the longer one's rest.

    >>> a = Segment("k", ("k1", "k2", "k3"))  # type: ignore[arg-type]
    >>> b = Segment("m", ("m1",))  # type: ignore[arg-type]
    >>> interleave(a, b)
    Segment(session='k|m', windows=('k1', 'm1', 'k2', 'k3'))
    """
    parts = [s for s in (first, second) if s is not None]
    windows = tuple(
        w for pair in zip_longest(*(s.windows for s in parts)) for w in pair if w is not None
    )
    return Segment("|".join(s.session for s in parts), windows)


def desk_account(keys: Account, mouse: Account) -> Account:
    """A *chimeric* desk: one person's typing and another's pointing under one account.

    No corpus here holds both modalities of the same people, so the fused trust is
    measured the way multimodal biometrics usually is without one: assuming a
    person's typing and pointing are independent, each desk pairs a typist with a
    pointer, and its sessions alternate their 5-s windows (one modality per window:
    never both at once, which would give the detector twice the evidence per second
    a person at work produces). Enrolment, held-out and attack segments are paired
    in order; where one modality has more, the desk goes on with that one alone.
    """
    return Account(
        f"{keys.name}+{mouse.name}",
        _pair_segments(keys.enroll, mouse.enroll),
        _pair_segments(keys.genuine, mouse.genuine),
        _pair_segments(keys.attack, mouse.attack),
    )


def _pair_segments(first: Sequence[Segment], second: Sequence[Segment]) -> tuple[Segment, ...]:
    return tuple(interleave(a, b) for a, b in zip_longest(first, second))


# -- driving a profile ---------------------------------------------------------------


@dataclass(slots=True)
class _Clock:
    """Wall time spent in ``assess`` and how many calls: the cost per window."""

    seconds: float = 0.0
    calls: int = 0


def _judge(profile: UserProfile, window: Events, session: str, clock: _Clock) -> Assessment:
    keys = window if isinstance(window, KeystrokeEvents) else None
    mouse = window if isinstance(window, MouseEvents) else None
    t0 = time.perf_counter()
    a = profile.assess(keys, mouse, session=session)
    clock.seconds += time.perf_counter() - t0
    clock.calls += 1
    return a


def _score(a: Assessment) -> float | None:
    return a.keyboard_score if a.keyboard_score is not None else a.mouse_score


def _assess(
    profile: UserProfile, window: Events, session: str, clock: _Clock
) -> tuple[str, float | None]:
    a = _judge(profile, window, session, clock)
    return a.level, _score(a)


def _rank(level: str) -> int:
    return LEVELS.index(level)


# -- results ---------------------------------------------------------------------------


@dataclass(slots=True)
class Takeover:
    owner: str
    attacker: str
    detected: bool
    seconds: float  # active attacker seconds until the first ``impostor`` verdict (inf if never)
    events: int  # attacker events until then (all of them if never)
    level_at_switch: str
    attacker_seconds: float  # active attacker time fed


@dataclass(slots=True)
class GenuineRun:
    owner: str
    windows: int
    seconds: float  # judged windows x window_s: the time an alarm could have been raised in
    entries: dict[str, int]  # level -> times the verdict entered that level or worse
    scores: list[float] = field(default_factory=list)  # calibrated scores of judged windows
    active: bool = False  # whether the profile was judging when the held-out part began
    level_at_start: str = "uncertain"  # the trust level the held-out part began at
    judged: int = 0  # windows the profile was active for (judging), those ``seconds`` counts


@dataclass(slots=True)
class TakeoverResult:
    modality: str
    window_s: float
    takeovers: list[Takeover]
    genuine: list[GenuineRun]
    bytes_per_user: list[int]
    us_per_window: float
    max_impostor_s: float
    #: Owners whose profile was still enrolling after their genuine run, when the takeovers
    #: start. Their takeovers stay in the figures (an account that cannot enrol is
    #: unprotected: the miss is real), but the owners are named, so that these misses do
    #: not read as a weak detector.
    owners_never_active: list[str] = field(default_factory=list)

    # figures ---------------------------------------------------------------

    def ttd_seconds(self) -> np.ndarray:
        return np.array([t.seconds for t in self.takeovers], dtype=np.float64)

    def ttd_events(self) -> np.ndarray:
        return np.array(
            [t.events if t.detected else np.inf for t in self.takeovers], dtype=np.float64
        )

    def genuine_hours(self) -> float:
        return sum(g.seconds for g in self.genuine) / 3600.0

    def false_alarms(self, level: str = "impostor") -> int:
        return sum(g.entries[level] for g in self.genuine)

    def figures(self) -> dict[str, float | int | str]:
        s, e = self.ttd_seconds(), self.ttd_events()
        hours = self.genuine_hours()
        fa_imp, fa_sus = self.false_alarms("impostor"), self.false_alarms("suspicious")
        scores = np.array([x for g in self.genuine for x in g.scores])
        return {
            "modality": self.modality,
            "window_s": self.window_s,
            "accounts": len(self.genuine),
            "pairs": len(self.takeovers),
            "ttd_median_s": _q(s, 0.5),
            "ttd_p90_s": _q(s, 0.9),
            "ttd_median_events": _q(e, 0.5),
            "ttd_p90_events": _q(e, 0.9),
            "detected_60s": float(np.mean(s <= 60.0)) if s.size else float("nan"),
            "detected_300s": float(np.mean(s <= 300.0)) if s.size else float("nan"),
            "detected_ever": float(np.mean(np.isfinite(s))) if s.size else float("nan"),
            "impostor_at_switch": sum(t.level_at_switch == "impostor" for t in self.takeovers),
            "owners_never_active": len(self.owners_never_active),
            "genuine_hours": hours,
            "false_alarms_impostor": fa_imp,
            "false_alarms_suspicious": fa_sus,
            "false_alarms_per_8h": fa_imp / hours * 8.0 if hours else float("nan"),
            "suspicious_per_8h": fa_sus / hours * 8.0 if hours else float("nan"),
            "genuine_score_mean": float(scores.mean()) if scores.size else float("nan"),
            "genuine_score_above_0_9": float(np.mean(scores > 0.9))
            if scores.size
            else float("nan"),
            "bytes_per_user_max": max(self.bytes_per_user, default=0),
            "us_per_window": self.us_per_window,
        }

    def summary(self) -> str:
        f = self.figures()
        return (
            f"takeover {self.modality}: TTD median {_fmt(f['ttd_median_s'])} s "
            f"(p90 {_fmt(f['ttd_p90_s'])} s; {_fmt(f['ttd_median_events'])} / "
            f"{_fmt(f['ttd_p90_events'])} events), detected <=60 s {f['detected_60s']:.0%}, "
            f"<=300 s {f['detected_300s']:.0%} of {f['pairs']} pairs; false alarms "
            f"{f['false_alarms_per_8h']:.2f} per 8 h ({f['false_alarms_impostor']} in "
            f"{f['genuine_hours']:.1f} h; suspicious {f['suspicious_per_8h']:.2f} per 8 h); "
            f"{f['bytes_per_user_max']} B/user, {f['us_per_window']:.0f} us/window"
        )


def _q(x: np.ndarray, q: float) -> float:
    # Undetected takeovers are +inf: a median past them is honestly "not detected".
    if x.size == 0:
        return float("nan")
    return float(np.quantile(np.sort(x), q, method="inverted_cdf"))


def _fmt(x: object) -> str:
    if isinstance(x, float) and not np.isfinite(x):
        return "inf"
    return f"{x:.0f}" if isinstance(x, float) else str(x)


# -- the protocol ----------------------------------------------------------------------


def _joined(windows: Sequence[Events]) -> Events:
    """Consecutive windows of one recording joined back into it."""
    first = windows[0]
    fields = (
        ("t_ms", "x", "y", "button", "state")
        if isinstance(first, MouseEvents)
        else ("t_ms", "is_down", "key_class")
    )
    return type(first)(*(np.concatenate([getattr(w, f) for w in windows]) for f in fields))


def _recordings(accounts: Sequence[Account]) -> list[Events]:
    """Each enrolment segment's windows joined back into one recording, in order."""
    return [_joined(seg.windows) for a in accounts for seg in a.enroll if seg.windows]


def enrolment_background(
    keystrokes: Sequence[Account], mouse: Sequence[Account], shipped: Background
) -> Background:
    """The population fitted on the accounts' *enrolment* segments only.

    The shipped background was fitted on whole recordings, the held-out genuine parts
    included: judged against it, the owner's held-out windows look more like people in
    general than they would on a new day. A modality not given keeps the shipped
    population (no window of it is judged).
    """
    keys = [r for r in _recordings(keystrokes) if isinstance(r, KeystrokeEvents)]
    moves = [r for r in _recordings(mouse) if isinstance(r, MouseEvents)]
    return Background(
        fit_keystrokes(keys) if keys else shipped.keystrokes,
        fit_mouse(moves) if moves else shipped.mouse,
    )


def enrolled_profile(
    account: Account,
    background: Background,
    enrollment: EnrollmentPolicy | None = None,
    trust_policy: TrustPolicy = DEFAULT_POLICY,
    clock: _Clock | None = None,
) -> UserProfile:
    """A fresh profile fed the account's enrolment segments, window by window."""
    profile = UserProfile(background, enrollment, trust_policy)
    clock = clock or _Clock()
    for seg in account.enroll:
        for w in seg.windows:
            _assess(profile, w, seg.session, clock)
    return profile


#: Called after each genuine window with (profile, run so far, the window's level, whether
#: it entered ``impostor``); returns the level the next window's entries count from (the
#: window's own, unless the callback changed the profile's trust): for measurements that
#: act on an alarm, e.g. bench/owner_confirmation.py.
AfterWindow = Callable[[UserProfile, "GenuineRun", str, bool], str]


def run_genuine(
    profile: UserProfile,
    account: Account,
    window_s: float,
    clock: _Clock | None = None,
    after_window: AfterWindow | None = None,
) -> GenuineRun:
    """Feed the held-out genuine segments; count entries into each alarm level."""
    clock = clock or _Clock()
    entries = dict.fromkeys(ALARM_LEVELS, 0)
    scores: list[float] = []
    run = GenuineRun(account.name, 0, 0.0, entries, scores, profile.enrollment == "active")
    run.level_at_start = profile.trust.level if run.active else "uncertain"
    prev = _rank(run.level_at_start)
    for seg in account.genuine:
        # Trust carries over from one session into the owner's next: a profile that ended
        # its enrolment (or the previous held-out session) flagged shows the owner
        # `impostor` from their first window on. That alarm is theirs too, so each held-out
        # session starts from no alarm.
        prev = min(prev, _rank("uncertain"))
        for w in seg.windows:
            a = _judge(profile, w, seg.session, clock)
            level, score = a.level, _score(a)
            run.windows += 1
            # Time counts where an alarm could be raised: a profile still enrolling reads
            # `uncertain` whoever types, and its windows would dilute the rate per 8 h.
            run.judged += a.judged
            if score is not None:
                scores.append(score)
            r = _rank(level)
            for alarm in ALARM_LEVELS:
                if r >= _rank(alarm) > prev:
                    entries[alarm] += 1
            if after_window is not None:
                r = _rank(after_window(profile, run, level, r >= _rank("impostor") > prev))
            prev = r
    run.seconds = run.judged * window_s
    return run


def run_takeover(
    profile: UserProfile,
    owner: Account,
    attacker: Account,
    window_s: float,
    max_impostor_s: float,
    clock: _Clock | None = None,
) -> Takeover:
    """Feed the attacker's activity into the owner's last session until ``impostor``."""
    clock = clock or _Clock()
    session = owner.genuine[-1].session if owner.genuine else owner.enroll[-1].session
    switch_level = profile.trust.level if profile.enrollment == "active" else "uncertain"
    # Detection is timed from a fully trusted session: an owner already flagged
    # (a false alarm, counted by run_genuine) would otherwise make it look instant.
    profile.trust.value = 100.0
    windows = events = 0
    for seg in attacker.attack:
        for w in seg.windows:
            if windows * window_s >= max_impostor_s:
                break
            level, _ = _assess(profile, w, session, clock)
            windows += 1
            events += len(w)
            if level == "impostor":
                return Takeover(
                    owner.name,
                    attacker.name,
                    True,
                    windows * window_s,
                    events,
                    switch_level,
                    windows * window_s,
                )
    return Takeover(
        owner.name, attacker.name, False, float("inf"), events, switch_level, windows * window_s
    )


def evaluate_takeover(
    accounts: Sequence[Account],
    background: Background,
    modality: Modality,
    window_s: float = 5.0,
    max_impostor_s: float = 600.0,
    enrollment: EnrollmentPolicy | None = None,
    trust_policy: TrustPolicy = DEFAULT_POLICY,
    progress: Callable[[Iterable[Account]], Iterable[Account]] = lambda x: x,
    background_for: Callable[[Account, Account | None], Background] | None = None,
) -> TakeoverResult:
    """Genuine runs and all (owner, attacker) takeovers over ``accounts``.

    ``background_for(owner, attacker)`` (``attacker`` None for the genuine run) judges a
    pair on another population than ``background``, e.g. one without that attacker
    (bench/takeover_attacker_left_out.py); where it differs from the genuine run's, the
    owner is enrolled and run through the genuine part again on it (not counted)."""

    def population(owner: Account, attacker: Account | None) -> Background:
        return background if background_for is None else background_for(owner, attacker)

    clock = _Clock()
    after_genuine: dict[str, tuple[Background, bytes]] = {}
    genuine: list[GenuineRun] = []
    sizes: list[int] = []
    never_active: list[str] = []
    for account in progress(accounts):
        bg = population(account, None)
        profile = enrolled_profile(account, bg, enrollment, trust_policy, clock)
        genuine.append(run_genuine(profile, account, window_s, clock))
        if profile.enrollment != "active":
            never_active.append(account.name)
        after_genuine[account.name] = (bg, profile.to_bytes())
        sizes.append(len(after_genuine[account.name][1]))
    takeovers: list[Takeover] = []
    for owner in progress(accounts):
        genuine_bg, state = after_genuine[owner.name]
        for attacker in accounts:
            if attacker.name == owner.name:
                continue
            bg = population(owner, attacker)
            if bg is genuine_bg:
                profile = UserProfile.from_bytes(state, bg, enrollment, trust_policy)
            else:
                profile = enrolled_profile(owner, bg, enrollment, trust_policy, clock)
                run_genuine(profile, owner, window_s, clock)
            takeovers.append(
                run_takeover(profile, owner, attacker, window_s, max_impostor_s, clock)
            )
    return TakeoverResult(
        modality,
        window_s,
        takeovers,
        genuine,
        sizes,
        clock.seconds / max(clock.calls, 1) * 1e6,
        max_impostor_s,
        never_active,
    )
