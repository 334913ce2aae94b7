"""A profile's state as bytes: compact, checksummed, never a pickle.

``UserProfile.to_bytes`` / ``from_bytes`` are these two functions. The bytes are
what the worker persists in its changelog-backed table, so they rebuild a profile
exactly (every later verdict bit for bit), refuse damage (a CRC-32) and keep a
bounded size (:func:`max_state_bytes`, issue #3's 16 KB).
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import TYPE_CHECKING, Final, TypeVar

import numpy as np

from profiles.background import Background
from profiles.calibration import GenuineQuantile
from profiles.carryover import (
    MAX_MOUSE_TAIL,
    SUMMARY_PRESSES,
    max_mouse_bytes,
    max_presses_bytes,
    pack_mouse,
    pack_presses,
    unpack_mouse,
    unpack_presses,
)
from profiles.detectors.histogram_ratio import RELEVANCE, HistogramRatio
from profiles.detectors.typed_histogram_ratio import MAX_COUNT, TypedHistogramRatio
from profiles.enrollment import EnrollmentPolicy
from profiles.keystrokes import KeystrokeProfile
from profiles.keystrokes.profile import PRIOR_EVENTS
from profiles.modalities import (
    MAX_SESSION_BYTES,
    KeyboardState,
    MouseState,
    new_mouse_state,
    session_key,
)
from profiles.reasons import KEYBOARD_SUMMARY, MOUSE_SUMMARY, EnrolmentSummary, RunningSummary
from profiles.trust import DEFAULT_POLICY, TrustPolicy

if TYPE_CHECKING:
    from profiles.user import UserProfile

P = TypeVar("P", bound="UserProfile")

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
#: a record that holds one is read with its pointing enrolled again (:func:`decode_profile`).
_POOLED_MOUSE_MAGIC: Final = HistogramRatio._MAGIC

#: Largest magnitude of a score a state holds (the rolling contexts' action and
#: timing-event scores, the rings' means of them). Each is a log-likelihood ratio summed
#: over an action's 26 features (one term for a timing event), and each term is within
#: the log of the population's rarest bin (~11 with the shipped background) or of the
#: owner's smoothing (log((16 x 4 095 + 16) / 16) = 8.3): under 300 per action; the
#: bench's recordings reach 38. 1e4 leaves room for other backgrounds, and refuses
#: the finite nonsense (3e38) whose float32 mean over a context overflowed to inf.
MAX_SCORE: Final = 1e4
#: Largest magnitude of a carried time (ms): times are milliseconds of the collectors'
#: monotonic clocks or of a recording (the wire refuses wall times past 2100, 4.1e12).
#: 1e15 refuses only nonsense, and keeps every sum and difference of times (the
#: features) exact to well under a millisecond and far from overflow.
MAX_TIME_MS: Final = 1e15
#: Tolerance of the CUSUM statistic against the one its trust reads: the statistic is
#: kept exact while the trust is rounded from it (~1e-15 apart; 1e-9 is far beyond).
_TRUST_SLACK: Final = 1e-9


def max_state_bytes(background: Background, policy: EnrollmentPolicy | None = None) -> int:
    """Largest :func:`encode_profile` under ``policy``: every part at its most
    (dense keystroke counts, full rings and rolling contexts, mouse counts at
    ``MAX_MOUSE_COUNT`` (12 bits), a full pointer tail with int32 coordinates, session ids at
    ``MAX_SESSION_BYTES``, the checksum). 16 363 bytes with the default policy (issue #3:
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
        # the enrolment anchors, one part
        EnrolmentSummary.max_bytes(len(KEYBOARD_SUMMARY))
        + EnrolmentSummary.max_bytes(len(MOUSE_SUMMARY)),
    ]
    return _STATE.size + 4 * (len(parts) + 1) + sum(parts) + _CRC.size


def encode_profile(profile: UserProfile) -> bytes:
    """The whole state, exactly: :func:`decode_profile` rebuilds a profile that judges
    and learns every later window bit for bit as this one does (the worker keeps
    profiles in memory and persists these bytes; a restart must not change a verdict).
    """
    k, m = profile.keyboard, profile.mouse
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
        # the enrolment anchors; none yet (a new user) is an empty part
        k.anchor.to_bytes() + m.anchor.to_bytes() if k.anchor.n or m.anchor.n else b"",
    ]
    head = _STATE.pack(
        _MAGIC,
        profile.trust.value,
        profile.trust.statistic,
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


def decode_profile(
    cls: type[P],
    data: bytes | memoryview,
    background: Background,
    enrollment: EnrollmentPolicy | None = None,
    trust_policy: TrustPolicy = DEFAULT_POLICY,
) -> P:
    """Rebuild a profile of class ``cls`` from :func:`encode_profile` (this format or the
    previous one).

    The previous format (``CUP2``) stored some floats rounded to float32: a
    profile read from it continues from those rounded values, as it always did.

    The bytes come back from a changelog: whatever they hold, a profile is returned
    that every later window can be judged with (finite scores, the size bound kept),
    or ValueError is raised (and nothing else), so the caller can start the user over.
    """
    try:
        return _decode(cls, data, background, enrollment, trust_policy)
    except (struct.error, IndexError) as exc:
        # A part shorter than its layout says (a header cut off, a count beyond it).
        raise ValueError(f"profile state of another layout ({exc})") from exc


def _decode(
    cls: type[P],
    data: bytes | memoryview,
    background: Background,
    enrollment: EnrollmentPolicy | None,
    trust_policy: TrustPolicy,
) -> P:
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
    if offset != len(data) or n < (11 if magic == _MAGIC else 12):
        raise ValueError("profile state of another layout")
    if magic == _MAGIC and n > _CHECKSUMMED_FROM:
        # A stored state is read back from Kafka: damage anywhere must be refused
        # here, not become the profile (most flipped bits are valid numbers).
        (crc,) = _CRC.unpack(parts[-1])
        if zlib.crc32(memoryview(data)[: len(data) - _CRC.size]) != crc:
            raise ValueError("profile state damaged (checksum)")
    if magic == _MAGIC_V2:
        k_unsampled, m_unsampled = struct.unpack("<ff", parts[11])
    trust, statistic = _trust_read(trust, statistic, trust_policy)
    # Not cls(...): new, empty models (~40 us) would be replaced at once.
    profile = cls.__new__(cls)
    profile._settle(background, enrollment, trust_policy)
    profile.trust.value = trust
    if statistic is not None:
        profile.trust.statistic = statistic
    policy = profile.policy
    recent = unpack_presses(parts[2], background.keystrokes.n_classes, single=magic == _MAGIC_V2)
    if len(recent) > SUMMARY_PRESSES:
        raise ValueError("more remembered presses than are ever kept")  # never written
    profile.keyboard = KeyboardState(
        KeystrokeProfile.from_bytes(parts[0], background.keystrokes),
        recent,
        _ring(parts[1], policy.calibration_size),
        RunningSummary.from_bytes(parts[3], len(KEYBOARD_SUMMARY)),
        presses,
        k_sessions,
        last_t,
        # Written under a policy with a longer context: only the newest, which is all
        # the next scored window keeps (as the pointer tail is trimmed below).
        _newest(np.frombuffer(parts[10], dtype=np.float16), policy.keyboard_cells).copy(),
        k_unsampled,
    )
    profile.keyboard.session = session_key(parts[8].decode())
    if parts[4][:4] == _POOLED_MOUSE_MAGIC:
        # Written by cadence-profile-3, whose mouse model pooled the action types:
        # its counts cannot be split by type, so pointing enrols again while the
        # typing profile, the trust and the keyboard's calibration carry on.
        profile.mouse = new_mouse_state(background, profile.policy.calibration_size)
    else:
        profile.mouse = MouseState(
            TypedHistogramRatio.from_bytes(parts[4], population=background.mouse),
            _newest(np.frombuffer(parts[6], dtype=np.float32), policy.mouse_actions).copy(),
            unpack_mouse(parts[9], v2=magic == _MAGIC_V2)[-MAX_MOUSE_TAIL:],
            _ring(parts[5], policy.calibration_size),
            RunningSummary.from_bytes(parts[7], len(MOUSE_SUMMARY)),
            actions,
            m_sessions,
            m_unsampled,
        )
        # Before sessions were per modality (CUP2 and the first CUP3 records), both
        # modalities compared with the last session of either.
        mouse_session = parts[11] if n > 11 and magic != _MAGIC_V2 else parts[8]
        profile.mouse.session = session_key(mouse_session.decode())
    if magic == _MAGIC and n > _CHECKSUMMED_FROM + 1:
        # The enrolment anchors (since cadence-profile-6; code before it reads
        # the first 12 parts and ignores this one). A record without them (or with an
        # unusable one) has none: its profile learns as it did before anchors.
        kd, md = len(KEYBOARD_SUMMARY), len(MOUSE_SUMMARY)
        split = EnrolmentSummary.max_bytes(kd)
        if len(parts[12]) != split + EnrolmentSummary.max_bytes(md):
            # The first cadence-profile-6 records: no count per quantity.
            split = EnrolmentSummary.first_layout_bytes(kd)
        for modality, data_, d in (
            (profile.keyboard, parts[12][:split], kd),
            (profile.mouse, parts[12][split:], md),
        ):
            anchor = EnrolmentSummary.from_bytes(data_, d)
            modality.anchor = anchor if anchor.finite() else EnrolmentSummary.zeros(d)
    # The summaries only word the reasons; one spoilt by an earlier version's
    # learning (a NaN) restarts alone instead of costing the user their profile.
    for modality in (profile.keyboard, profile.mouse):
        if not modality.summary.finite():
            modality.summary = RunningSummary.zeros(modality.summary.mean.size)
    # Every profile's models are built with these; another value is damage, and a
    # tiny one (finite, > 0) still made an owner's scores infinite.
    if profile.mouse.model.relevance != RELEVANCE:
        raise ValueError("mouse histogram relevance damaged")
    if profile.keyboard.model.prior_events != PRIOR_EVENTS:
        raise ValueError("keystroke profile prior damaged")
    require_finite(profile)
    return profile


def require_finite(profile: UserProfile) -> None:
    """Reject a profile whose numbers are not all finite and plausible (damaged bytes):
    a NaN or a huge score would not fail at once but in a later window (a calibration,
    a mean overflowing to inf, a NaN time leaving an action without a peak), and again
    for each window until it rolls out; raising here lets the caller start the user
    over instead."""
    k, m = profile.keyboard, profile.mouse
    if not (math.isfinite(k.unsampled) and math.isfinite(m.unsampled)):
        raise ValueError("profile holds non-finite numbers")
    # One comparison per kind of number: a NaN compares False, so it fails too.
    scores = np.concatenate(
        (
            k.cells,  # float16, cast to float32 with the rest
            m.recent,
            k.calibration.scores[: k.calibration.filled],
            m.calibration.scores[: m.calibration.filled],
        ),
        dtype=np.float32,
    )
    if not (np.abs(scores) <= MAX_SCORE).all():
        raise ValueError("profile holds scores out of range")
    times = np.concatenate((m.tail.t_ms, k.recent.t_down_ms, (k.last_t_ms,)))
    if not (np.abs(times) <= MAX_TIME_MS).all():
        raise ValueError("profile holds event times out of range")
    # A dwell is NaN where the release was not seen; otherwise a duration.
    if (np.abs(k.recent.dwell_ms) > MAX_TIME_MS).any():
        raise ValueError("profile holds event times out of range")


def _trust_read(
    trust: float, statistic: float | None, policy: TrustPolicy
) -> tuple[float, float | None]:
    """The header's trust and CUSUM statistic as :class:`TrustScore` keeps them.

    Trust must be in 0..100 and the statistic at least 0 (NaN is refused). The statistic
    is the exact one (the trust is rounded from it); where the two disagree, or the
    statistic is beyond the ceiling, the trust is read from the statistic under
    ``policy``, clipped: the verdict's level follows the statistic and its wording the
    trust, so apart they told two stories; and a state written under another trust
    policy is read under this one rather than refused (every user would enrol again).
    """
    if not 0.0 <= trust <= 100.0:  # NaN fails too
        raise ValueError("trust out of range")
    if statistic is None:
        return trust, None  # CUP2: the statistic is the trust's
    if not 0.0 <= statistic < math.inf:
        raise ValueError("trust statistic out of range")
    statistic = min(statistic, policy.ceiling)
    scale = (100.0 - policy.suspicious) / policy.threshold
    if abs((100.0 - trust) / scale - statistic) > _TRUST_SLACK:
        trust = 100.0 - statistic * scale
    return trust, statistic


def _newest(scores: np.ndarray, size: int) -> np.ndarray:
    """The last ``size`` scores (all of them when there are fewer)."""
    return scores[max(0, scores.size - size) :]


def _ring(data: bytes, size: int) -> GenuineQuantile:
    """A calibration ring of at most ``size`` scores: a ring written under a policy that
    kept more (issue #3's bound counts the policy's) keeps its newest."""
    ring = GenuineQuantile.from_bytes(data)
    return ring.newest(size) if ring.size > size else ring
