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

Serialised state is compact bytes (no pickle): a few KB per user.

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

import hashlib
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    max_mouse_bytes,
    max_presses_bytes,
    no_mouse,
    no_presses,
    pack_mouse,
    pack_presses,
    rebase,
    typed_windows,
    unpack_mouse,
    unpack_presses,
)
from profiles.detectors.histogram_ratio import HistogramRatio
from profiles.detectors.typed_histogram_ratio import MAX_COUNT, TypedHistogramRatio
from profiles.keystrokes import (
    N_CLASSES,
    KeystrokeEvents,
    KeystrokePresses,
    KeystrokeProfile,
    KeystrokeWindow,
    pair_presses_many,
)
from profiles.keystrokes.binning import N_BINS
from profiles.mouse import MouseEvents, extract_many
from profiles.reasons import (
    KEYBOARD_SUMMARY,
    MOUSE_SUMMARY,
    RunningSummary,
    deviations,
    explain,
    keyboard_summary,
    mouse_summary,
)
from profiles.trust import DEFAULT_POLICY, TrustPolicy, TrustScore

MODEL_VERSION: Final = "cadence-profile-4"

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True, slots=True)
class EnrollmentPolicy:
    """How much of the owner a modality must have seen before it judges anyone."""

    min_presses: int = 1500
    min_actions: int = 300
    min_sessions: int = 2
    min_calibration: int = 16
    keyboard_cells: int = 300  # timing events a keyboard score rests on (~100 presses)
    min_keyboard_cells: int = 120
    mouse_actions: int = 20  # rolling context a mouse score rests on
    min_mouse_actions: int = 5
    learn_gate: float = 0.95  # calibrated score above which an active profile does not learn
    # Learn only while the verdict reads trusted: evidence against the owner that has
    # built up (an impostor at the upper edge of the owner's range) stops teaching.
    learn_min_trust: float = 70.0
    # Genuine scores the calibration ring keeps, per modality.
    calibration_size: int = 512
    # Fresh evidence (in contexts) between two scores the ring keeps. Consecutive
    # windows share most of their context, so keeping every window filled the ring
    # with near-copies: 512 windows were ~75 independent contexts, under an hour of
    # pointing from one session, and another day's session fell outside that range.
    # One score per context makes the entries ~independent and lets the ring span
    # several sessions (512 contexts: ~4 h of typing, ~10 h of pointing). While a
    # modality enrols, the ring must reach ``min_calibration`` entries within half
    # of the minimum evidence (the first windows cannot be scored yet, and the
    # last must not wait for the ring): 1500 presses = 15 contexts -> stride 0.47;
    # the demo's 200 presses -> 0.0625.
    calibration_stride: float = 1.0

    def enrolling_stride(self, min_units: int, per_context: int) -> float:
        """Ring stride while a modality enrols (see ``calibration_stride``).

        >>> EnrollmentPolicy().enrolling_stride(1500, 100)
        0.46875
        """
        contexts = min_units / per_context
        return min(self.calibration_stride, contexts / 2.0 / self.min_calibration)


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


@dataclass(slots=True)
class _Keyboard:
    model: KeystrokeProfile
    recent: KeystrokePresses  # last presses, times relative to the newest
    calibration: GenuineQuantile = field(default_factory=GenuineQuantile)
    summary: RunningSummary = field(
        default_factory=lambda: RunningSummary.zeros(len(KEYBOARD_SUMMARY))
    )
    presses: int = 0
    sessions: int = 0
    last_t_ms: float = 0.0  # time of the newest remembered press (``recent`` is relative to it)
    cells: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float16))  # recent scores
    unsampled: float = 0.0  # fresh evidence (contexts) learned since the ring's last entry
    session: str = ""  # the session of the last window with presses


@dataclass(slots=True)
class _Mouse:
    model: TypedHistogramRatio
    recent: np.ndarray  # float32 scores of the last actions
    tail: MouseEvents  # events after the last finished action, carried to the next window
    calibration: GenuineQuantile = field(default_factory=GenuineQuantile)
    summary: RunningSummary = field(
        default_factory=lambda: RunningSummary.zeros(len(MOUSE_SUMMARY))
    )
    actions: int = 0
    sessions: int = 0
    unsampled: float = 0.0
    session: str = ""  # the session of the last window with pointer events


def _new_mouse(background: Background, calibration_size: int) -> _Mouse:
    return _Mouse(
        TypedHistogramRatio(background.mouse),
        np.zeros(0, np.float32),
        no_mouse(),
        GenuineQuantile(calibration_size),
    )


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
        self.keyboard = _Keyboard(
            KeystrokeProfile(background.keystrokes), no_presses(), GenuineQuantile(size)
        )
        self.mouse = _new_mouse(background, size)

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
            # window would be learned with it.
            self.mouse.tail = no_mouse()
            self.keyboard.recent = no_presses()
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
            if (not kb_active and enrolling_learns) or (
                kb_active and kb_cal is not None and kb_cal <= p.learn_gate and trusted_enough
            ):
                k = self.keyboard
                k.unsampled += cells.size / p.keyboard_cells
                stride = (
                    p.calibration_stride
                    if kb_active
                    else p.enrolling_stride(p.min_presses, p.keyboard_cells // 3)
                )
                if raw is not None and k.unsampled >= stride:
                    k.calibration.learn_one(raw)
                    k.unsampled = 0.0
                self.keyboard.model.learn_cells(cells)
                self.keyboard.presses += _count_presses(cells)
                self.keyboard.summary.learn(summary)
                learned = True
        if ms is not None:
            raw, actions, summary = ms  # actions: one row of model bins each
            if (not ms_active and enrolling_learns) or (
                ms_active and ms_cal is not None and ms_cal <= p.learn_gate and trusted_enough
            ):
                m = self.mouse
                m.unsampled += actions.shape[0] / p.mouse_actions
                stride = (
                    p.calibration_stride
                    if ms_active
                    else p.enrolling_stride(p.min_actions, p.mouse_actions)
                )
                if raw is not None and m.unsampled >= stride:
                    m.calibration.learn_one(raw)
                    m.unsampled = 0.0
                self.mouse.model.learn_bins(actions)
                self.mouse.actions += actions.shape[0]
                self.mouse.summary.learn(summary)
                learned = True
        return learned

    # -- bytes ------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The whole state, exactly: ``from_bytes`` rebuilds a profile that judges and
        learns every later window bit for bit as this one does (the worker keeps
        profiles in memory and persists these bytes; a restart must not change a verdict).
        """
        k, m = self.keyboard, self.mouse
        parts = [
            k.model.to_bytes(),
            k.calibration.to_bytes(),
            pack_presses(k.recent),
            k.summary.to_bytes(),
            m.model.to_bytes(),
            m.calibration.to_bytes(),
            m.recent.astype(np.float32).tobytes(),
            m.summary.to_bytes(),
            k.session.encode(),
            pack_mouse(m.tail),
            k.cells.astype(np.float16).tobytes(),
            m.session.encode(),
        ]
        head = _STATE.pack(
            _MAGIC,
            self.trust.value,
            self.trust.statistic,
            k.last_t_ms,
            k.presses,
            k.sessions,
            m.actions,
            m.sessions,
            k.unsampled,
            m.unsampled,
            len(parts) + 1,
        )
        # One join: concatenating each size with its part copied every part once more.
        sized = [struct.pack("<I", len(x)) for x in parts]
        body = b"".join(
            [head, *(b for pair in zip(sized, parts, strict=True) for b in pair), _CRC_SIZE]
        )
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(
        cls,
        data: bytes | memoryview,
        background: Background,
        enrollment: EnrollmentPolicy | None = None,
        trust_policy: TrustPolicy = DEFAULT_POLICY,
    ) -> UserProfile:
        """Rebuild a profile from :meth:`to_bytes` (this format or the previous one).

        The previous format (``CUP2``) stored some floats rounded to float32: a
        profile read from it continues from those rounded values, as it always did.
        """
        magic = bytes(data[:4])
        statistic: float | None
        if magic == _MAGIC:
            head = _STATE.unpack_from(data)
            trust, statistic, last_t, presses, k_sessions, actions, m_sessions = head[1:8]
            k_unsampled, m_unsampled, n = head[8:]
            offset = _STATE.size
        elif magic == _MAGIC_V2:
            head = _STATE_V2.unpack_from(data)
            trust, last_t, presses, k_sessions, actions, m_sessions, n = head[1:]
            statistic, offset = None, _STATE_V2.size
        else:
            raise ValueError("not a cadence user profile of a known format")
        parts: list[bytes] = []
        for _ in range(n):
            (size,) = struct.unpack_from("<I", data, offset)
            if offset + 4 + size > len(data):
                raise ValueError("profile state truncated")
            parts.append(bytes(data[offset + 4 : offset + 4 + size]))
            offset += 4 + size
        if offset != len(data) or n < 11:
            raise ValueError("profile state of another layout")
        if magic == _MAGIC and n > _CHECKSUMMED_FROM:
            # A stored state is read back from Kafka: damage anywhere must be refused
            # here, not become the profile (most flipped bits are valid numbers).
            (crc,) = _CRC.unpack(parts[-1])
            if zlib.crc32(memoryview(data)[: len(data) - _CRC.size]) != crc:
                raise ValueError("profile state damaged (checksum)")
        if magic == _MAGIC_V2:
            k_unsampled, m_unsampled = struct.unpack("<ff", parts[11])
        # Not cls(...): new, empty models (~40 us) would be replaced at once.
        profile = cls.__new__(cls)
        profile._settle(background, enrollment, trust_policy)
        profile.trust.value = trust
        if statistic is not None:
            profile.trust.statistic = statistic
        profile.keyboard = _Keyboard(
            KeystrokeProfile.from_bytes(parts[0], background.keystrokes),
            unpack_presses(parts[2], background.keystrokes.n_classes, single=magic == _MAGIC_V2),
            GenuineQuantile.from_bytes(parts[1]),
            RunningSummary.from_bytes(parts[3], len(KEYBOARD_SUMMARY)),
            presses,
            k_sessions,
            last_t,
            np.frombuffer(parts[10], dtype=np.float16).copy(),
            k_unsampled,
        )
        profile.keyboard.session = _session_key(parts[8].decode())
        if parts[4][:4] == _POOLED_MOUSE_MAGIC:
            # Written by cadence-profile-3, whose mouse model pooled the action types:
            # its counts cannot be split by type, so pointing enrols again while the
            # typing profile, the trust and the keyboard's calibration carry on.
            profile.mouse = _new_mouse(background, profile.policy.calibration_size)
        else:
            profile.mouse = _Mouse(
                TypedHistogramRatio.from_bytes(parts[4], population=background.mouse),
                np.frombuffer(parts[6], dtype=np.float32).copy(),
                unpack_mouse(parts[9], v2=magic == _MAGIC_V2)[-MAX_MOUSE_TAIL:],
                GenuineQuantile.from_bytes(parts[5]),
                RunningSummary.from_bytes(parts[7], len(MOUSE_SUMMARY)),
                actions,
                m_sessions,
                m_unsampled,
            )
            # Before sessions were per modality (CUP2 and the first CUP3 records), both
            # modalities compared with the last session of either.
            mouse_session = parts[11] if n > 11 and magic != _MAGIC_V2 else parts[8]
            profile.mouse.session = _session_key(mouse_session.decode())
        # The summaries only word the reasons; one spoilt by an earlier version's
        # learning (a NaN) restarts alone instead of costing the user their profile.
        for modality in (profile.keyboard, profile.mouse):
            if not modality.summary.finite():
                modality.summary = RunningSummary.zeros(modality.summary.mean.size)
        _require_finite(profile)
        return profile


def _require_finite(profile: UserProfile) -> None:
    """Reject a profile whose numbers are not all finite (damaged bytes): a NaN would
    not fail at once but in a later window's calibration, and again for each window
    until it rolls out; raising here lets the caller start the user over instead."""
    k, m = profile.keyboard, profile.mouse
    arrays = (
        np.array([profile.trust.value, profile.trust.statistic, k.unsampled, m.unsampled]),
        k.cells,
        m.recent,
        k.calibration.scores[: k.calibration.filled],
        m.calibration.scores[: m.calibration.filled],
    )
    if not all(bool(np.isfinite(a).all()) for a in arrays):
        raise ValueError("profile holds non-finite numbers")


#: State format: ``CUP3`` stores every value as the profile holds it (trust, its CUSUM
#: statistic and the times of the carried presses and pointer events in float64; the
#: rest is float32, float16 or integers in memory too). Since 2026-12-06 its last part
#: is a CRC-32 of everything before it: code that predates it reads the first 12 parts
#: and ignores the rest, so a rollback keeps the profiles; records without it (11 or 12
#: parts) are still read. ``CUP2`` (floats rounded to float32) is still read.
_MAGIC: Final = b"CUP3"
_CRC: Final = struct.Struct("<I")
_CRC_SIZE: Final = struct.pack("<I", _CRC.size)
_CHECKSUMMED_FROM: Final = 12  # parts before the CRC part
# magic, trust, CUSUM statistic, last press time, presses, keyboard sessions, actions,
# mouse sessions, keyboard and mouse evidence since the last ring entry, parts; then
# each part behind its uint32 size
_STATE: Final = struct.Struct("<4sdddIIIIddB")
_MAGIC_V2: Final = b"CUP2"
_STATE_V2: Final = struct.Struct("<4sfdIIIIB")


#: Largest count of a mouse histogram bin: 12 bits in the state (a type's counts are
#: halved beyond it, ~4 000 actions of one type in one bin, weeks of pointing).
MAX_MOUSE_COUNT: Final = MAX_COUNT
#: The mouse model of ``cadence-profile-3`` (one histogram pooled over action types);
#: a record that holds one is read with its pointing enrolled again (``from_bytes``).
_POOLED_MOUSE_MAGIC: Final = HistogramRatio._MAGIC
#: Longest session id stored as it is (UTF-8 bytes); a longer one is kept as a digest
#: (33 characters). The collectors' ids are 32 hex characters. 48, not 64 as up to
#: cadence-profile-3: the per-type mouse counts took the bytes (``max_state_bytes``).
MAX_SESSION_BYTES: Final = 48


def max_state_bytes(background: Background, policy: EnrollmentPolicy | None = None) -> int:
    """Largest :meth:`UserProfile.to_bytes` under ``policy``: every part at its most
    (dense keystroke counts, full rings and rolling contexts, mouse counts at
    ``MAX_MOUSE_COUNT`` (12 bits), a full pointer tail with int32 coordinates, session ids at
    ``MAX_SESSION_BYTES``, the checksum). 16 353 bytes with the default policy (issue #3:
    <= 16 KB);
    ``tests/unit/test_profile_state.py`` builds that profile and checks it."""
    p = policy or EnrollmentPolicy()
    ring = GenuineQuantile.max_bytes(p.calibration_size)
    parts = [
        KeystrokeProfile.max_bytes(background.keystrokes.n_classes),
        ring,
        max_presses_bytes(),
        RunningSummary.max_bytes(len(KEYBOARD_SUMMARY)),
        TypedHistogramRatio(background.mouse).max_bytes(),
        ring,
        4 * p.mouse_actions,  # float32 action scores
        RunningSummary.max_bytes(len(MOUSE_SUMMARY)),
        MAX_SESSION_BYTES,
        max_mouse_bytes(),
        2 * p.keyboard_cells,  # float16 cell scores
        MAX_SESSION_BYTES,
    ]
    return _STATE.size + 4 * (len(parts) + 1) + sum(parts) + _CRC.size


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
    sessions = [_session_key(w[3]) for w in windows]
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


def _where_present(
    values: list[_In | None], compute: Callable[[list[_In]], list[_Out]]
) -> list[_Out | None]:
    """``compute`` over the values that are not None, each result in its value's place."""
    at = [i for i, v in enumerate(values) if v is not None]
    out: list[_Out | None] = [None] * len(values)
    for i, result in zip(at, compute([cast(_In, values[i]) for i in at]), strict=True):
        out[i] = result
    return out


def _session_key(session: str) -> str:
    """The session as the profile keeps it: only equality with the next window's
    session matters, so an id longer than ``MAX_SESSION_BYTES`` is kept as a digest
    (32 hex characters) and the state stays bounded whatever the wire carries."""
    raw = session.encode()
    if len(raw) <= MAX_SESSION_BYTES:
        return session
    return "#" + hashlib.blake2b(raw, digest_size=16).hexdigest()


def _mean32(x: np.ndarray) -> float:
    """``np.mean`` of a float32 array (summed and divided in float32, as numpy does),
    without the Python-level wrapper that costs more than the sum of 20 numbers."""
    return float(np.float32(np.add.reduce(x) / x.size))


def _count_presses(cells: np.ndarray) -> int:
    # Dwell cells (kinds below the class count) are one per timed press.
    return int(np.count_nonzero(cells < N_CLASSES * N_BINS))
