"""One person's behavioural profile: both modalities, enrollment, calibration, trust.

The stream processor hands a :class:`UserProfile` each closed window of that
user's activity (key events and pointer events, a few seconds' worth) and gets
back an :class:`Assessment`. The profile keeps, per modality, a short rolling
memory of recent evidence, so that a verdict every few seconds still rests on
enough typing (the scores of the last ``keyboard_cells`` timing events) and
enough pointer actions (the scores of the last ``mouse_actions`` actions). Each
event or action is scored once, when it arrives and before the profile learns
it, so every score a verdict or the calibration rests on is out-of-sample.

Life cycle of a modality:

1. ``enrolling``: every window is learned; once the model has some data, each
   window is also scored *before* it is learned, and that honest score feeds
   the calibration (the owner's own score distribution).
2. ``active`` once it has learned enough units, over enough sessions and has
   calibration scores. Now windows are judged: each brings evidence against the
   owner (the surprise of its score under the owner's own scores,
   :meth:`GenuineQuantile.evidence`) into a CUSUM read as trust
   (:mod:`profiles.trust`). A window is learned only if it looks like the owner
   (calibrated score under the gate) and the verdict still reads trusted, so an
   impostor cannot teach the profile to accept them, while a slow drift of the
   owner's own behaviour is still followed. The calibration ring then keeps one
   score per context of fresh evidence, so it spans several sessions.

Serialised state is compact bytes (no pickle, :mod:`profiles.profile_bytes`): a few KB
per user.

>>> import numpy as np
>>> from profiles.mouse import MouseEvents
>>> from profiles.keystrokes import KeystrokeEvents
>>> p = UserProfile(Background.default(), EnrollmentPolicy(min_presses=20, min_actions=2,
...     min_sessions=1, min_calibration=2))
>>> t = np.arange(40) * 150.0
>>> keys = KeystrokeEvents(t_ms=np.sort(np.r_[t, t + 90.0]), is_down=np.tile([True, False], 40),
...     key_class=np.repeat(np.arange(40) % 6, 2).astype(np.int8))
>>> a = p.assess(keys, None, session="s1")
>>> a.enrollment, a.keyboard_score is None
('enrolling', True)
>>> UserProfile.from_bytes(p.to_bytes(), Background.default()).presses_learned == p.presses_learned
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar, cast

import numpy as np

from profiles.background import Background
from profiles.calibration import GenuineQuantile
from profiles.carryover import (
    MAX_MOUSE_TAIL,
    SUMMARY_PRESSES,
    PointerWindow,
    TypingWindow,
    concat_mouse,
    concat_presses,
    finished_prefix,
    no_mouse,
    no_presses,
    rebase,
    typed_windows,
)
from profiles.enrollment import EnrollmentPolicy
from profiles.keystrokes import (
    N_CLASSES,
    KeystrokeEvents,
    KeystrokePresses,
    KeystrokeProfile,
    KeystrokeWindow,
    pair_presses_many,
)
from profiles.keystrokes.binning import N_BINS
from profiles.modalities import KeyboardState, new_mouse_state, session_key
from profiles.mouse import MouseEvents, extract_many
from profiles.profile_bytes import decode_profile, encode_profile
from profiles.reasons import (
    KEYBOARD_SUMMARY,
    MOUSE_SUMMARY,
    EnrolmentSummary,
    deviations,
    explain,
    keyboard_summary,
    mouse_summary,
)
from profiles.trust import DEFAULT_POLICY, TrustPolicy, TrustScore

MODEL_VERSION: Final = "cadence-profile-6"
#: Enrolment windows an anchor needs before it bounds learning (the ``min_calibration``
#: of the shipped policy): a spread from fewer would be mostly noise.
ANCHOR_MIN_WINDOWS: Final = 16
#: Below this variance a quantity did not vary while enrolling (float32 rounding of a
#: constant): :func:`within_anchor` leaves it out.
ANCHOR_MIN_VAR: Final = 1e-9

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True, slots=True)
class Assessment:
    """What one window says about the person at the keyboard."""

    keyboard_score: float | None  # calibrated, 0 typical .. 1 beyond the owner's range
    mouse_score: float | None
    trust: float
    level: str
    reasons: tuple[str, ...]
    enrollment: str
    learned: bool
    keyboard_raw: float | None = None
    mouse_raw: float | None = None
    #: An active modality judged the window: its level is the trust level, not the
    #: ``uncertain`` of a profile still enrolling (also true of the window whose new
    #: session made a modality active, which has no score yet).
    judged: bool = False


class UserProfile:
    """Profile of one account owner; see the module docstring for its life cycle."""

    def __init__(
        self,
        background: Background,
        enrollment: EnrollmentPolicy | None = None,
        trust_policy: TrustPolicy = DEFAULT_POLICY,
    ) -> None:
        self._settle(background, enrollment, trust_policy)
        size = self.policy.calibration_size
        self.keyboard = KeyboardState(
            KeystrokeProfile(background.keystrokes), no_presses(), GenuineQuantile(size)
        )
        self.mouse = new_mouse_state(background, size)

    def _settle(
        self, background: Background, enrollment: EnrollmentPolicy | None, trust_policy: TrustPolicy
    ) -> None:
        """Everything but the two modalities (``from_bytes`` builds those from the bytes)."""
        self.background = background
        self.policy = enrollment or EnrollmentPolicy()
        self.trust = TrustScore(policy=trust_policy)

    # -- state ---------------------------------------------------------------

    @property
    def presses_learned(self) -> int:
        return self.keyboard.presses

    def keyboard_active(self) -> bool:
        p, k = self.policy, self.keyboard
        return (
            k.presses >= p.min_presses
            and k.sessions >= p.min_sessions
            and len(k.calibration) >= p.min_calibration
        )

    def mouse_active(self) -> bool:
        p, m = self.policy, self.mouse
        return (
            m.actions >= p.min_actions
            and m.sessions >= p.min_sessions
            and len(m.calibration) >= p.min_calibration
        )

    @property
    def enrollment(self) -> str:
        return "active" if self.keyboard_active() or self.mouse_active() else "enrolling"

    # -- the one entry point --------------------------------------------------

    def assess(
        self,
        keys: KeystrokeEvents | None,
        mouse: MouseEvents | None,
        session: str = "",
        learn: bool = True,
    ) -> Assessment:
        """Judge one window of the owner's account, then learn from it if it is trusted
        (and ``learn``: the caller may know the input is not a person's, e.g. synthetic)."""
        return assess_many([(self, keys, mouse, session, learn)])[0]

    def _assess(
        self,
        typing: TypingWindow | None,
        typed: tuple[KeystrokeWindow, np.ndarray] | None,
        pointer: PointerWindow | None,
        actions: np.ndarray | None,
        learn: bool = True,
    ) -> Assessment:
        reasons: list[str] = []
        scored: list[tuple[str, str, float]] = []
        kb_context, ms_context = self.keyboard.cells, self.mouse.recent
        kb = self._keyboard_evidence(typing, typed)
        ms = self._mouse_evidence(pointer, actions)
        kb_cal = ms_cal = None
        kb_active, ms_active = self.keyboard_active(), self.mouse_active()
        if kb is not None and kb[0] is not None and kb_active:
            kb_cal = self.keyboard.calibration.calibrate(kb[0])
            evidence = self.keyboard.calibration.evidence(kb[0])
            self.trust.update(evidence, kb[1].size / self.policy.keyboard_cells)
            reasons += deviations("keyboard", KEYBOARD_SUMMARY, self.keyboard.summary.z(kb[2]))
            scored.append(("keyboard", "typing rhythm", kb_cal))
        if ms is not None and ms[0] is not None and ms_active:
            ms_cal = self.mouse.calibration.calibrate(ms[0])
            evidence = self.mouse.calibration.evidence(ms[0])
            self.trust.update(evidence, ms[1].shape[0] / self.policy.mouse_actions)
            reasons += deviations("mouse", MOUSE_SUMMARY, self.mouse.summary.z(ms[2]))
            scored.append(("mouse", "pointer movements", ms_cal))
        learned = learn and self._learn(kb, kb_cal, kb_active, ms, ms_cal, ms_active)
        if not learn:
            # Nor later: an unfinished action or the last press carried into the next
            # window would be learned with it; and the window's scores leave the rolling
            # contexts, whose mean the owner's next windows put in the calibration ring
            # (an injected window would widen what counts as the owner).
            self.mouse.tail = no_mouse()
            self.keyboard.recent = no_presses()
            if typing is not None and typing.new_session:
                kb_context = np.zeros(0, np.float16)
            if pointer is not None and pointer.new_session:
                ms_context = np.zeros(0, np.float32)
            self.keyboard.cells, self.mouse.recent = kb_context, ms_context
        level = self.trust.level if (kb_active or ms_active) else "uncertain"
        return Assessment(
            keyboard_score=kb_cal,
            mouse_score=ms_cal,
            trust=round(self.trust.value, 2),
            level=level,
            reasons=explain(level, scored, reasons, self.trust.value),
            enrollment=self.enrollment,
            learned=learned,
            keyboard_raw=None if kb is None else kb[0],
            mouse_raw=None if ms is None else ms[0],
            judged=kb_active or ms_active,
        )

    # -- evidence per modality ------------------------------------------------

    def _typing_window(self, fresh: KeystrokePresses | None, session: str) -> TypingWindow | None:
        """The window's presses after the remembered ones; depends on the events only,
        never on scores, so many windows' flights and cells can be computed together."""
        if fresh is None or len(fresh) == 0:
            return None
        k = self.keyboard
        # Sessions are per modality: a session whose first window only points is still
        # a new session for the keyboard when its typing starts (and vice versa).
        new_session = session != k.session
        if new_session:
            k.session = session
            k.recent = no_presses()
        recent = concat_presses(k.recent, k.last_t_ms, fresh)
        k.last_t_ms = float(recent.t_down_ms[-1])
        k.recent = rebase(recent[max(0, len(recent) - SUMMARY_PRESSES) :])
        return TypingWindow(recent, len(fresh), new_session)

    def _keyboard_evidence(
        self, typing: TypingWindow | None, typed: tuple[KeystrokeWindow, np.ndarray] | None
    ) -> tuple[float | None, np.ndarray, np.ndarray, int] | None:
        """(raw score or None while too little data, cells of new presses, summary, new presses)."""
        if typing is None or typed is None:
            return None
        k = self.keyboard
        if typing.new_session:
            k.cells = np.zeros(0, np.float16)
            k.sessions += 1
        window, new_cells = typed
        summary = keyboard_summary(window)
        raw: float | None = None
        if k.presses > 0 and new_cells.size:
            scores = k.model.cell_scores(new_cells).astype(np.float16)
            k.cells = np.concatenate((k.cells, scores))[-self.policy.keyboard_cells :]
            if k.cells.size >= self.policy.min_keyboard_cells:
                raw = float(np.add.reduce(k.cells, dtype=np.float64) / k.cells.size)
        return (raw, new_cells, summary, typing.fresh)

    def _pointer_window(self, mouse: MouseEvents | None, session: str) -> PointerWindow | None:
        """The window's finished pointer events, to extract actions from; the rest is
        carried to the next window. Depends on the events only, never on scores, so
        the actions of many windows can be extracted together (:func:`assess_many`)."""
        if mouse is None or len(mouse) == 0:
            return None
        m = self.mouse
        new_session = session != m.session
        if new_session:
            m.session = session
            m.tail = no_mouse()
        events = concat_mouse(m.tail, mouse)
        # An action still in progress at the window's end is finished by the next
        # window: score only what ends at a release or a pause, carry the rest.
        cut = finished_prefix(events)
        if len(events) - cut > MAX_MOUSE_TAIL:
            cut = len(events)
        m.tail = events[cut:]
        return PointerWindow(events[:cut], new_session)

    def _mouse_evidence(
        self, pointer: PointerWindow | None, actions: np.ndarray | None
    ) -> tuple[float | None, np.ndarray, np.ndarray] | None:
        """(raw score or None while too little data, finished actions as the model's
        bins (one row each), summary)."""
        if pointer is None:
            return None
        m = self.mouse
        if pointer.new_session:
            m.recent = np.zeros(0, np.float32)
            m.sessions += 1
        if actions is None or actions.shape[0] == 0:
            return None
        bins = m.model.bins(actions)  # scored now, learned by _learn
        raw: float | None = None
        if m.actions >= self.policy.min_mouse_actions:
            scores = m.model.score_bins(bins).astype(np.float32)
            m.recent = np.concatenate((m.recent, scores))[-self.policy.mouse_actions :]
            if m.recent.size >= self.policy.min_mouse_actions:
                raw = _mean32(m.recent)
        summary = mouse_summary(actions)
        return (raw, bins, summary)

    def _learn(
        self,
        kb: tuple[float | None, np.ndarray, np.ndarray, int] | None,
        kb_cal: float | None,
        kb_active: bool,
        ms: tuple[float | None, np.ndarray, np.ndarray] | None,
        ms_cal: float | None,
        ms_active: bool,
    ) -> bool:
        p = self.policy
        trusted_enough = self.trust.value >= p.learn_min_trust
        # An enrolling modality learns whatever it sees, unless an active one says the
        # owner is not there: an impostor the keyboard caught must not enrol their own
        # pointing as the owner's (nor the other way round).
        owner_present = trusted_enough and all(
            cal is None or cal <= p.learn_gate
            for cal, active in ((kb_cal, kb_active), (ms_cal, ms_active))
            if active
        )
        enrolling_learns = owner_present or not (kb_active or ms_active)
        learned = False
        if kb is not None:
            raw, cells, summary, _ = kb
            if not kb_active and enrolling_learns:
                self.keyboard.anchor.learn(summary)
            if (not kb_active and enrolling_learns) or (
                kb_active
                and kb_cal is not None
                and kb_cal <= p.learn_gate
                and trusted_enough
                and within_anchor(self.keyboard.anchor, summary, p.anchor_z)
            ):
                self._learn_typing(raw, cells, summary, kb_active)
                learned = True
        if ms is not None:
            raw, actions, summary = ms  # actions: one row of model bins each
            if not ms_active and enrolling_learns:
                self.mouse.anchor.learn(summary)
            if (not ms_active and enrolling_learns) or (
                ms_active
                and ms_cal is not None
                and ms_cal <= p.learn_gate
                and trusted_enough
                and within_anchor(self.mouse.anchor, summary, p.anchor_z)
            ):
                self._learn_pointing(raw, actions, summary, ms_active)
                learned = True
        return learned

    def _learn_typing(
        self, raw: float | None, cells: np.ndarray, summary: np.ndarray, active: bool
    ) -> None:
        """Learn a window's typing once the gate let it through: model, summary, and every
        ``stride`` contexts the context score into the calibration ring."""
        p, k = self.policy, self.keyboard
        k.unsampled += cells.size / p.keyboard_cells
        stride = (
            p.calibration_stride
            if active
            else p.enrolling_stride(p.min_presses, p.keyboard_cells // 3)
        )
        if raw is not None and k.unsampled >= stride:
            k.calibration.learn_one(raw)
            k.unsampled = 0.0
        k.model.learn_cells(cells)
        k.presses += _count_presses(cells)
        k.summary.learn(summary)

    def _learn_pointing(
        self, raw: float | None, actions: np.ndarray, summary: np.ndarray, active: bool
    ) -> None:
        """As :meth:`_learn_typing`, for a window's finished pointer actions (model bins)."""
        p, m = self.policy, self.mouse
        m.unsampled += actions.shape[0] / p.mouse_actions
        stride = (
            p.calibration_stride if active else p.enrolling_stride(p.min_actions, p.mouse_actions)
        )
        if raw is not None and m.unsampled >= stride:
            m.calibration.learn_one(raw)
            m.unsampled = 0.0
        m.model.learn_bins(actions)
        m.actions += actions.shape[0]
        m.summary.learn(summary)

    # -- bytes ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state, exactly (:func:`profiles.profile_bytes.encode_profile`)."""
        return encode_profile(self)

    @classmethod
    def from_bytes(
        cls,
        data: bytes | memoryview,
        background: Background,
        enrollment: EnrollmentPolicy | None = None,
        trust_policy: TrustPolicy = DEFAULT_POLICY,
    ) -> UserProfile:
        """Rebuild a profile from :meth:`to_bytes` (this format or the previous one)."""
        return decode_profile(cls, data, background, enrollment, trust_policy)


#: One window to judge: profile, keys, pointer events, session and, optionally, whether
#: the profile may learn from it (default: yes, if trusted).
WindowToJudge = (
    tuple[UserProfile, KeystrokeEvents | None, MouseEvents | None, str]
    | tuple[UserProfile, KeystrokeEvents | None, MouseEvents | None, str, bool]
)


def assess_many(windows: Sequence[WindowToJudge]) -> list[Assessment]:
    """``[p.assess(keys, mouse, session) for p, keys, mouse, session in windows]``, bit
    for bit, with the key presses of all windows paired, and their pointer actions
    extracted, in one pass each.

    Pairing a window's keys or extracting its actions is mostly numpy's per-call
    overhead, paid here once for all the windows (the worker judges the windows of many users together). A
    profile may appear once: its next window depends on this one's outcome. If a
    window fails, the profiles of the others may be half updated: the caller must
    drop them all (the worker decodes them again from their stored bytes).

    >>> bg = Background.default()
    >>> t = np.arange(0.0, 1000.0, 20.0)
    >>> ev = MouseEvents(t, (t // 4).astype(np.int32), np.zeros(t.size, np.int32),
    ...     np.zeros(t.size, np.int8), np.zeros(t.size, np.int8))
    >>> a, b = UserProfile(bg), UserProfile(bg)
    >>> assess_many([(a, None, ev, "s"), (b, None, ev, "s")]) == [
    ...     UserProfile(bg).assess(None, ev, "s")] * 2
    True
    """
    if len({id(w[0]) for w in windows}) < len(windows):
        raise ValueError("a profile may appear once: its windows are judged one call each")
    sessions = [session_key(w[3]) for w in windows]
    # First what depends on the events only (carried tails, remembered presses), per
    # profile; then the features of all windows at once; then each profile scores.
    pointers = [w[0]._pointer_window(w[2], s) for w, s in zip(windows, sessions, strict=True)]
    actions = _where_present(
        [w.events if w is not None and len(w.events) else None for w in pointers], extract_many
    )
    presses = _where_present(
        [w[1] if w[1] is not None and len(w[1]) else None for w in windows],
        pair_presses_many,
    )
    typing = [w[0]._typing_window(p, s) for w, p, s in zip(windows, presses, sessions, strict=True)]
    typed = _where_present(typing, typed_windows)
    return [
        w[0]._assess(t, tw, pointer, a, w[4] if len(w) > 4 else True)
        for w, t, tw, pointer, a in zip(windows, typing, typed, pointers, actions, strict=True)
    ]


def within_anchor(anchor: EnrolmentSummary, summary: np.ndarray, z: float) -> bool:
    """Whether a window's summary is within ``z`` of the owner's enrolment windows in
    every quantity (a missing one counts as within); a quantity seen in fewer than
    :data:`ANCHOR_MIN_WINDOWS` enrolment windows is not checked (nor is any, in a
    profile stored before anchors).

    A quantity that never varied while enrolling (an owner who did not erase once) has
    no spread to measure a change by: it is not checked, or the first window with an
    erase would never be learned, nor any after it."""
    checked = (anchor.counts >= ANCHOR_MIN_WINDOWS) & (anchor.var > ANCHOR_MIN_VAR)
    return bool((np.abs(anchor.z(summary))[checked] <= z).all())


def _where_present(
    values: list[_In | None], compute: Callable[[list[_In]], list[_Out]]
) -> list[_Out | None]:
    """``compute`` over the values that are not None, each result in its value's place."""
    at = [i for i, v in enumerate(values) if v is not None]
    out: list[_Out | None] = [None] * len(values)
    for i, result in zip(at, compute([cast(_In, values[i]) for i in at]), strict=True):
        out[i] = result
    return out


def _mean32(x: np.ndarray) -> float:
    """``np.mean`` of a float32 array (summed and divided in float32, as numpy does),
    without the Python-level wrapper that costs more than the sum of 20 numbers."""
    return float(np.float32(np.add.reduce(x) / x.size))


def _count_presses(cells: np.ndarray) -> int:
    # Dwell cells (kinds below the class count) are one per timed press.
    return int(np.count_nonzero(cells < N_CLASSES * N_BINS))
