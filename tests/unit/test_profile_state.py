"""A profile's bytes are its whole state: restoring them never changes a later verdict.

The worker keeps profiles in memory and persists ``to_bytes()`` after every window; after
a crash it restores them from those bytes. Both must judge every later window alike.
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collectors.simulate import Takeover, Workload
from profiles.background import Background
from profiles.carryover import MAX_MOUSE_TAIL
from profiles.detectors.histogram_ratio import HistogramRatio
from profiles.keystrokes import KeystrokeEvents, KeystrokePresses
from profiles.modalities import MAX_SESSION_BYTES
from profiles.mouse import MouseEvents, extract, extract_many
from profiles.profile_bytes import MAX_MOUSE_COUNT, max_state_bytes
from profiles.reasons import MOUSE_SUMMARY
from profiles.trust import TrustPolicy
from profiles.user import EnrollmentPolicy, UserProfile, assess_many
from streams.judge import keystroke_events, mouse_events
from streams.windows import Cursor, Windower

# The demo's short enrolment: profiles turn active within a few simulated minutes.
POLICY = EnrollmentPolicy(min_presses=200, min_actions=40, min_sessions=1)
Window = tuple[KeystrokeEvents | None, MouseEvents | None, str]


@cache
def simulated_windows() -> dict[str, list[Window]]:
    """Per user, the windows a worker would judge: the demo's people, one taken over."""
    workload = Workload(users=5, seed=7, takeovers=[Takeover(user_index=4, at_s=150.0)])
    windower: Windower[None] = Windower(window_ms=5000.0)
    cursors: dict[str, dict[str, Cursor]] = defaultdict(dict)
    out: dict[str, list[Window]] = defaultdict(list)
    for _, batch in workload.batches(until_s=480.0):
        for w in windower.add(batch, cursors[batch.user], token=None).closed:
            keys = keystroke_events(w.key_events) if w.key_events else None
            mouse = mouse_events(w.mouse_events) if w.mouse_events else None
            out[w.user].append((keys, mouse, w.session))
    return dict(out)


def test_a_profile_restored_after_any_window_judges_the_next_ones_exactly() -> None:
    bg = Background.default()
    levels: set[str] = set()
    both_active = 0
    for windows in simulated_windows().values():
        kept = UserProfile(bg, POLICY)  # never serialised, as in a worker that keeps running
        restored = UserProfile(bg, POLICY)  # rebuilt from its bytes before every window
        for keys, mouse, session in windows:
            restored = UserProfile.from_bytes(restored.to_bytes(), bg, POLICY)
            a = kept.assess(keys, mouse, session=session)
            b = restored.assess(keys, mouse, session=session)
            assert a == b
            assert kept.to_bytes() == restored.to_bytes()
            levels.add(a.level)
        both_active += kept.keyboard_active() and kept.mouse_active()
    # What is compared is not a profile at rest: both modalities judge, and the trust
    # moved all the way (the taken-over account), so learning was also gated.
    assert both_active and {"trusted", "impostor"} <= levels


def test_windows_judged_together_are_judged_as_one_by_one() -> None:
    # The worker judges the windows of many users in one call; window i of every
    # simulated user goes into call i here, with both modalities judging by the end.
    bg = Background.default()
    streams = list(simulated_windows().values())
    alone = [UserProfile(bg, POLICY) for _ in streams]
    together = [UserProfile(bg, POLICY) for _ in streams]
    judged = 0
    for i in range(max(len(s) for s in streams)):
        live = [j for j, s in enumerate(streams) if i < len(s)]
        batch = [(together[j], *streams[j][i]) for j in live]
        for j, b in zip(live, assess_many(batch), strict=True):
            keys, mouse, session = streams[j][i]
            assert b == alone[j].assess(keys, mouse, session=session)
            assert together[j].to_bytes() == alone[j].to_bytes()
            judged += b.keyboard_score is not None and b.mouse_score is not None
    assert judged > 0


def test_a_profile_appears_once_per_call() -> None:
    p = UserProfile(Background.default(), POLICY)
    with pytest.raises(ValueError, match="once"):
        assess_many([(p, None, None, "s"), (p, None, None, "s")])


def test_state_stays_small() -> None:
    bg = Background.default()
    sizes = []
    for windows in simulated_windows().values():
        p = UserProfile(bg, POLICY)
        for keys, mouse, session in windows:
            p.assess(keys, mouse, session=session)
            sizes.append(len(p.to_bytes()))
    assert max(sizes) <= 16 * 1024
    # A user who never typed or pointed stores neither model nor ring.
    assert len(UserProfile(bg).to_bytes()) < 300


def _tail_before_2026_12_06(window: Any, fresh: int) -> Any:
    """The keystroke tail as the code that wrote profile-cup2.npz cut it: the remembered
    press's dwell included (scored a second time; profiles.carryover.window_tail no longer
    does), so the expected values below are that code's."""
    from profiles.keystrokes.windows import KeystrokeWindow

    start = max(0, window.n_presses - fresh - 1)
    if start == 0:
        return window
    return KeystrokeWindow(
        window.presses[start:],
        window.dd_ms[start:],
        window.ud_ms[start:],
        window.pair_code[start:],
        int(np.count_nonzero(np.isnan(window.dd_ms[start:]))),
        window.n_classes,
    )


def test_a_profile_stored_by_the_previous_format_types_as_before_and_enrols_its_pointing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Written by the code of cadence-profile-3 / format CUP2: a profile, the window that
    # followed, and what that code's profile restored from these bytes made of it. Its
    # mouse model pooled the action types (cadence-profile-4 counts per type), so the
    # keyboard and the trust judge as before and the pointing enrols again.
    monkeypatch.setattr("profiles.carryover.window_tail", _tail_before_2026_12_06)
    f = np.load(Path(__file__).parent / "data" / "profile-cup2.npz", allow_pickle=False)
    data = f["profile"].tobytes()
    assert data[:4] == b"CUP2"
    bg = Background.default()
    policy = EnrollmentPolicy(
        min_presses=200, min_actions=40, min_sessions=0, min_calibration=8, calibration_size=32
    )
    p = UserProfile.from_bytes(data, bg, policy)
    keys = KeystrokeEvents(f["k_t"], f["k_down"], f["k_class"])
    mouse = MouseEvents(f["m_t"], f["m_x"], f["m_y"], f["m_button"], f["m_state"])
    a = p.assess(keys, mouse, session=str(f["session"]))
    got = [a.keyboard_score, a.trust, a.keyboard_raw]
    expected = f["expected"].tolist()
    assert got == [expected[0], expected[2], expected[3]]
    assert expected[1] is not None and a.mouse_score is a.mouse_raw is None
    assert (a.level, a.learned) == (str(f["level"]), bool(f["learned"]))
    assert p.mouse.actions > 0 and not p.mouse_active()
    # Written again, it is the current format and reads back to the same state.
    again = p.to_bytes()
    assert again[:4] == b"CUP3" and UserProfile.from_bytes(again, bg, policy).to_bytes() == again


@cache
def judged_state() -> bytes:
    """The state of a simulated user after all their windows: models, rings, presses."""
    p = UserProfile(Background.default(), POLICY)
    for keys, mouse, session in next(iter(simulated_windows().values())):
        p.assess(keys, mouse, session=session)
    assert p.keyboard.recent.key_class.size and p.keyboard.calibration.filled
    return p.to_bytes()


def as_cup3(state: bytes) -> bytes:
    """The same state as written before its checksum part existed (12 parts; nor the
    enrolment anchors, the part before the checksum)."""
    offset, _ = parts_of(state)[12]
    record = bytearray(state[: offset - 4])  # the anchors and the checksum part
    record[_STATE_SIZE - 1] = 12
    return bytes(record)


def without_anchors(state: bytes) -> bytes:
    """The same state as written before the enrolment anchors (12 parts and the checksum)."""
    record = bytearray(as_cup3(state)) + _CRC_SIZE
    record[_STATE_SIZE - 1] = 13
    return bytes(record + struct.pack("<I", zlib.crc32(record)))


def parts_of(record: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each part of a CUP3 record."""
    n, offset, out = record[_STATE_SIZE - 1], _STATE_SIZE, []
    for _ in range(n):
        (size,) = struct.unpack_from("<I", record, offset)
        out.append((offset + 4, size))
        offset += 4 + size
    return out


_STATE_SIZE = struct.calcsize("<4sdddIIIIddB")
_CRC_SIZE = struct.pack("<I", 4)  # the size of the checksum part


def test_a_record_of_the_previous_format_without_checksum_is_read() -> None:
    state = judged_state()
    bg = Background.default()
    # Everything but the enrolment anchors, which it never had (they bound nothing).
    again = UserProfile.from_bytes(as_cup3(state), bg, POLICY)
    assert again.keyboard.anchor.n == again.mouse.anchor.n == 0
    assert again.to_bytes() == UserProfile.from_bytes(without_anchors(state), bg, POLICY).to_bytes()
    assert as_cup3(again.to_bytes()) == as_cup3(state)


def test_a_record_from_before_the_anchors_is_read_without_them() -> None:
    state, bg = judged_state(), Background.default()
    p = UserProfile.from_bytes(state, bg, POLICY)
    assert p.keyboard.anchor.n > 0 and p.mouse.anchor.n > 0
    old = UserProfile.from_bytes(without_anchors(state), bg, POLICY)
    assert old.keyboard.anchor.n == old.mouse.anchor.n == 0
    assert as_cup3(old.to_bytes()) == as_cup3(state)


def test_code_that_predates_the_checksum_reads_the_same_parts() -> None:
    # It reads the first 12 parts and ignores the rest: a rollback during a rolling
    # update keeps every profile (a new magic would have re-enrolled them all).
    state = judged_state()
    legacy = as_cup3(state)
    assert state[:4] == legacy[:4] == b"CUP3"
    assert [state[o : o + n] for o, n in parts_of(state)[:12]] == [
        legacy[o : o + n] for o, n in parts_of(legacy)
    ]


def test_damaged_truncated_or_padded_state_is_refused() -> None:
    # Read back from Kafka: most flipped bits are valid numbers, which would otherwise
    # silently become the profile.
    state, bg = judged_state(), Background.default()
    # ValueError and nothing else (not struct.error, IndexError): what a reader is told
    # to expect of damaged bytes.
    for bit in range(0, 8 * len(state), 37):
        damaged = bytearray(state)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ValueError):
            UserProfile.from_bytes(bytes(damaged), bg, POLICY)
    for record in (state, as_cup3(state)):
        for cut in (*range(1, 80), len(record) // 2, len(record) - 8):
            with pytest.raises(ValueError):
                UserProfile.from_bytes(record[:-cut], bg, POLICY)
    for record in (state + bytes(1024), as_cup3(state) + bytes(3)):
        with pytest.raises(ValueError):
            UserProfile.from_bytes(record, bg, POLICY)


def _patched(record: bytes, part: int, at: int, value: bytes) -> bytes:
    offset, _ = parts_of(record)[part]
    return record[: offset + at] + value + record[offset + at + len(value) :]


def _head(record: bytes, at: int, value: float) -> bytes:
    """``record`` with the float64 of its header at byte ``at`` replaced (trust at 4,
    the CUSUM statistic at 12, the time of the last press at 20)."""
    return record[:at] + struct.pack("<d", value) + record[at + 8 :]


_NAN = struct.pack("<d", float("nan"))


@pytest.mark.parametrize(
    "damage",
    [
        # the keyboard ring's next slot beyond its size (header: size, filled, next)
        lambda r: _patched(r, 1, 4, struct.pack("<H", 0xFFFF)),
        # the mouse ring of size 0
        lambda r: _patched(r, 5, 0, struct.pack("<H", 0)),
        # a remembered press of a class that does not exist
        lambda r: (
            r[: parts_of(r)[2][0] + parts_of(r)[2][1] - 1]
            + bytes([72])
            + r[parts_of(r)[2][0] + parts_of(r)[2][1] :]
        ),
        # a NaN time in the carried pointer tail (header: events, width; then times)
        lambda r: _patched(r, 9, 5 + 8 * 5, _NAN),
        # a NaN time, an infinite dwell of a remembered press (times, dwells, classes)
        lambda r: _patched(r, 2, 8 * 3, _NAN),
        lambda r: _patched(r, 2, 8 * 32 + 8 * 3, struct.pack("<d", float("inf"))),
        # the time of the newest remembered press
        lambda r: _head(r, 20, float("nan")),
        # the mouse model's relevance (magic, dtype code, ndim, length, then the float64)
        lambda r: _patched(r, 4, 10, _NAN),
        lambda r: _patched(r, 4, 10, struct.pack("<d", 0.0)),
        lambda r: _patched(r, 4, 10, struct.pack("<d", -16.0)),
        lambda r: _patched(r, 4, 10, struct.pack("<d", 1e-320)),  # > 0, scores still inf
        # finite nonsense whose float32 mean overflows: a context score, a ring score,
        # a typing cell score
        lambda r: _patched(r, 6, 0, struct.pack("<f", 3e38)),
        lambda r: _patched(r, 5, 8, struct.pack("<f", 3e38)),
        lambda r: _patched(r, 10, 0, np.float16(6e4).tobytes()),
        # a CUSUM statistic below its range, a trust that is not a number
        lambda r: _head(r, 12, -1.0),
        lambda r: _head(r, 12, float("nan")),
        lambda r: _head(r, 4, float("nan")),
        # a ring not yet full whose next slot is not after its last score
        lambda r: _patched(r, 1, 4, struct.pack("<I", 2)),
        # an array dtype code beyond the codec's table
        lambda r: _patched(r, 4, 4, bytes([200])),
        # pointer tail coordinates of one byte (read as four at offsets made for one)
        lambda r: _patched(r, 9, 4, bytes([1])),
    ],
    ids=[
        "ring-next",
        "ring-size",
        "press-class",
        "tail-time-nan",
        "press-time-nan",
        "press-dwell-inf",
        "last-press-time-nan",
        "relevance-nan",
        "relevance-zero",
        "relevance-negative",
        "relevance-tiny",
        "context-score-huge",
        "ring-score-huge",
        "cell-score-huge",
        "statistic-negative",
        "statistic-nan",
        "trust-nan",
        "ring-next-not-after-filled",
        "dtype-code",
        "tail-width",
    ],
)
def test_values_out_of_range_are_refused_even_without_a_checksum(damage: object) -> None:
    # Each used to be accepted, then raise in every later window of the user, or judge
    # them with NaN or infinite scores, or a level its trust contradicted.
    p = UserProfile.from_bytes(judged_state(), Background.default(), POLICY)
    # What the damage lands on: a carried tail, rings not yet full, a trusted owner.
    assert len(p.mouse.tail) > 5 and 2 < p.keyboard.calibration.filled < POLICY.calibration_size
    assert p.mouse.calibration.filled and p.mouse.recent.size and p.keyboard.cells.size
    assert p.trust.value == 100.0
    record = damage(as_cup3(judged_state()))  # type: ignore[operator]
    with pytest.raises(ValueError):
        UserProfile.from_bytes(record, Background.default(), POLICY)


@pytest.mark.parametrize(("statistic", "trust"), [(6.0, 16.0), (1e9, 0.0), (2.5, 65.0)])
def test_the_trust_is_read_from_the_statistic_where_the_two_disagree(
    statistic: float, trust: float
) -> None:
    # The statistic is the exact one: a trust of 100 next to an alarm's statistic told
    # two stories (level impostor, "trust 100/100"); one beyond the ceiling reads trust 0.
    record = _head(as_cup3(judged_state()), 12, statistic)
    p = UserProfile.from_bytes(record, Background.default(), POLICY)
    assert p.trust.value == pytest.approx(trust)
    assert p.trust.statistic == min(statistic, p.trust.policy.ceiling)


def test_a_state_written_under_another_trust_policy_is_read_not_refused() -> None:
    # Refused, a change of the trust policy would make every user enrol again.
    alarmed = _head(as_cup3(judged_state()), 12, 4.5)
    stricter = TrustPolicy(threshold=4.0)
    p = UserProfile.from_bytes(alarmed, Background.default(), POLICY, stricter)
    assert p.trust.level == "impostor" and p.trust.statistic == 4.5


def test_a_summary_of_another_width_starts_over_and_the_rest_is_kept() -> None:
    # A model version with other summary quantities writes the same magic; the summary
    # only words the reasons, so the profile is kept.
    record = as_cup3(judged_state())
    offset, size = parts_of(record)[3]
    n = struct.unpack_from("<I", record, offset)[0]
    d = (size - 4) // 8
    wider = struct.pack("<I", n) + bytes(4 * (d + 1)) * 2
    before = record[: offset - 4] + struct.pack("<I", len(wider)) + wider
    bg = Background.default()
    p = UserProfile.from_bytes(before + record[offset + size :], bg, POLICY)
    kept = UserProfile.from_bytes(record, bg, POLICY)
    assert p.keyboard.summary.n == 0 and p.keyboard.summary.mean.size == d
    assert p.keyboard.presses == kept.keyboard.presses > 0
    assert p.keyboard.model.to_bytes() == kept.keyboard.model.to_bytes()


def test_foreign_bytes_are_refused() -> None:
    with pytest.raises(ValueError):
        UserProfile.from_bytes(b"CUP0" + bytes(64), Background.default())


def test_each_modality_counts_the_sessions_it_is_used_in() -> None:
    # Before, sessions were counted only by the modality of a session's first window: a
    # user who always pointed first at login never finished enrolling their typing.
    t = np.arange(20) * 150.0
    keys = KeystrokeEvents(
        np.sort(np.r_[t, t + 80.0]),
        np.tile([True, False], 20),
        np.repeat(np.arange(20) % 6, 2).astype(np.int8),
    )
    n = 12
    mouse = MouseEvents(
        np.arange(n) * 20.0,
        (np.arange(n) * 10).astype(np.int32),
        np.zeros(n, np.int32),
        np.r_[np.zeros(n - 2), 1, 1].astype(np.int8),
        np.r_[np.zeros(n - 2), 1, 2].astype(np.int8),
    )
    p = UserProfile(Background.default())
    for session in ("monday", "tuesday"):
        p.assess(None, mouse, session=session)  # every session starts with pointing
        p.assess(keys, None, session=session)
        p.assess(keys, mouse, session=session)
    assert p.keyboard.sessions == p.mouse.sessions == 2
    again = UserProfile.from_bytes(p.to_bytes(), Background.default())
    assert (again.keyboard.session, again.mouse.session) == ("tuesday", "tuesday")


def _typing(n: int, t0: float = 0.0) -> KeystrokeEvents:
    t = t0 + np.arange(n) * 150.0
    return KeystrokeEvents(
        np.sort(np.r_[t, t + 80.0]),
        np.tile([True, False], n),
        np.repeat(np.arange(n) % 13, 2).astype(np.int8),
    )


def _pointing(moves_after_click: int, t0: float = 0.0, x0: int = 0) -> MouseEvents:
    """A point-and-click, then ``moves_after_click`` moves that no click or pause ends."""
    n = 12 + moves_after_click
    state = np.zeros(n, np.int8)
    state[10:12] = (1, 2)
    button = np.zeros(n, np.int8)
    button[10:12] = 1
    return MouseEvents(
        t0 + np.arange(n) * 7.0,
        (x0 + np.arange(n) * 3).astype(np.int32),
        (np.arange(n) % 50).astype(np.int32),
        button,
        state,
    )


def test_state_is_bounded_by_16_kb_in_the_worst_case() -> None:
    # Issue #3: <= 16 KB per user, both modalities. Every part of the state at its
    # largest: dense keystroke counts, both rings full, full rolling contexts, mouse
    # counts at their cap, a full pointer tail whose coordinates need int32, and
    # session ids at the longest kept as they are.
    bg = Background.default()
    bound = max_state_bytes(bg)
    assert bound <= 16 * 1024
    rng = np.random.default_rng(0)
    p = UserProfile(bg)
    session = "s" * MAX_SESSION_BYTES
    t = 0.0
    for _ in range(12):  # fills the keyboard context (300 cells) and the carried presses
        p.assess(_typing(60, t), None, session=session)
        t += 60 * 150.0 + 2000.0
    for _ in range(30):  # the tail: the moves after the last click, beyond int16
        p.assess(None, _pointing(MAX_MOUSE_TAIL, t, x0=40_000), session=session)
        t += 20_000.0
    assert len(p.mouse.tail) == MAX_MOUSE_TAIL and int(p.mouse.tail.x.max()) > 0x7FFF
    assert p.keyboard.cells.size == p.policy.keyboard_cells
    assert p.mouse.recent.size == p.policy.mouse_actions
    k = p.keyboard.model
    k.counts = rng.integers(1, 256, k.counts.shape).astype(np.uint8)  # every cell typed
    m = p.mouse.model
    m.counts[:] = MAX_MOUSE_COUNT
    for _ in range(p.policy.calibration_size):
        p.keyboard.calibration.learn_one(float(rng.normal()))
        p.mouse.calibration.learn_one(float(rng.normal()))
    data = p.to_bytes()
    assert len(data) == bound  # the bound is this profile: every part is at its most
    assert UserProfile.from_bytes(data, bg).to_bytes() == data


def test_an_unfinished_action_longer_than_the_tail_is_scored_as_it_stands() -> None:
    p = UserProfile(Background.default())
    p.assess(None, _pointing(MAX_MOUSE_TAIL + 1), session="s")
    assert len(p.mouse.tail) == 0 and p.mouse.actions > 0
    p.assess(None, _pointing(MAX_MOUSE_TAIL, 10_000.0), session="s")
    assert len(p.mouse.tail) == MAX_MOUSE_TAIL


def test_mouse_counts_are_halved_at_their_cap() -> None:
    p = UserProfile(Background.default())
    p.assess(None, _pointing(0), session="s")
    m = p.mouse.model
    x = np.zeros((1, m.population.n_features))  # a move (type 0)
    m.counts[:] = 1
    m.counts.ravel()[int(m.bins(x)[0, 0])] = MAX_MOUSE_COUNT  # about to overflow
    m.learn_many(x)
    # Only that type's histograms are halved; the others keep their counts.
    assert int(m.counts[0].max()) == (MAX_MOUSE_COUNT + 1) // 2
    assert int(m.counts[1:].min()) == int(m.counts[1:].max()) == 1
    assert m.n == int(m.counts[:, 0, :].sum())


def test_older_records_are_brought_within_the_bound_when_read() -> None:
    # A CUP3 record of the previous code could carry 512 tail events and uint32
    # counts; read now, the tail keeps its newest events and the counts are halved.
    bg = Background.default()
    p = UserProfile(bg)
    p.assess(None, _pointing(0), session="s")
    p.mouse.tail = _pointing(2 * MAX_MOUSE_TAIL - 12, 50_000.0)
    p.mouse.model.counts[:] = 3 * MAX_MOUSE_COUNT
    again = UserProfile.from_bytes(p.to_bytes(), bg)
    assert len(again.mouse.tail) == MAX_MOUSE_TAIL
    assert float(again.mouse.tail.t_ms[-1]) == float(p.mouse.tail.t_ms[-1])
    assert int(again.mouse.model.counts.max()) <= MAX_MOUSE_COUNT
    assert len(again.to_bytes()) <= max_state_bytes(bg)


def test_parts_written_under_a_larger_policy_keep_their_newest_when_read() -> None:
    # A policy that kept longer contexts and rings wrote these (or an older version
    # did): read under the default one, each keeps its newest scores, as the next
    # window would, and the state is back within the bound it promises.
    bg = Background.default()
    wide = EnrollmentPolicy(calibration_size=1024, keyboard_cells=1000, mouse_actions=100)
    p = UserProfile(bg, wide)
    p.assess(_typing(30), _pointing(0), session="s")
    for s in np.linspace(-1.0, 1.0, 1500):  # a full ring that has wrapped
        p.keyboard.calibration.learn_one(float(s))
    p.keyboard.cells = np.linspace(-5.0, 5.0, 1000).astype(np.float16)
    p.mouse.recent = np.linspace(-30.0, 30.0, 100).astype(np.float32)
    p.mouse.tail = _pointing(MAX_MOUSE_TAIL, 50_000.0, x0=40_000)  # int32 coordinates
    again = UserProfile.from_bytes(p.to_bytes(), bg)
    policy = again.policy
    ring = again.keyboard.calibration
    assert (ring.size, ring.filled, ring.next) == (policy.calibration_size, 512, 0)
    newest = np.linspace(-1.0, 1.0, 1500)[-512:].astype(np.float32)
    assert np.array_equal(ring.scores, newest)  # oldest first: forgotten in order
    assert np.array_equal(again.keyboard.cells, p.keyboard.cells[-policy.keyboard_cells :])
    assert np.array_equal(again.mouse.recent, p.mouse.recent[-policy.mouse_actions :])
    assert len(again.to_bytes()) <= max_state_bytes(bg)
    a = again.assess(_typing(30, 10_000.0), _pointing(0, 100_000.0), session="s")
    assert a.keyboard_raw is not None and np.isfinite(a.keyboard_raw)


def test_more_remembered_presses_than_are_ever_kept_are_refused() -> None:
    # No version kept more than SUMMARY_PRESSES: more is damage, and would be written
    # back as it came, beyond the state's bound.
    bg = Background.default()
    p = UserProfile.from_bytes(judged_state(), bg, POLICY)
    k = p.keyboard
    k.recent = KeystrokePresses(
        np.tile(k.recent.t_down_ms, 100),
        np.tile(k.recent.dwell_ms, 100),
        np.tile(k.recent.key_class, 100),
    )
    with pytest.raises(ValueError):
        UserProfile.from_bytes(p.to_bytes(), bg, POLICY)


def test_a_press_whose_release_was_not_seen_is_still_read() -> None:
    # Its dwell is NaN in memory: the check on carried times leaves it be.
    p = UserProfile(Background.default(), POLICY)
    keys = _typing(40)
    keep = np.ones(len(keys.t_ms), bool)
    keep[-1] = False  # the last press's release
    p.assess(KeystrokeEvents(keys.t_ms[keep], keys.is_down[keep], keys.key_class[keep]), None, "s")
    assert np.isnan(p.keyboard.recent.dwell_ms[-1])
    again = UserProfile.from_bytes(p.to_bytes(), Background.default(), POLICY)
    assert again.to_bytes() == p.to_bytes()


def test_an_action_whose_peak_speed_is_nan_does_not_fail_the_others() -> None:
    # The features of one window's actions are computed with all the others': a NaN
    # time (no sample at the peak speed) indexed past the end and raised for all.
    good = _pointing(0)
    t = good.t_ms.copy()
    t[4] = np.nan
    bad = MouseEvents(t, good.x, good.y, good.button, good.state)
    rows = extract_many([good, bad, good])
    assert np.array_equal(rows[0], extract(good)) and np.array_equal(rows[2], rows[0])
    assert rows[1].shape == rows[0].shape


def test_a_long_session_id_is_kept_as_a_digest_and_still_compared() -> None:
    p = UserProfile(Background.default())
    long_id = "\N{GRINNING FACE}" * 128  # the wire's longest id, 512 bytes of UTF-8
    for _ in range(2):
        p.assess(_typing(30), None, session=long_id)
    assert p.keyboard.sessions == 1 and len(p.keyboard.session.encode()) <= MAX_SESSION_BYTES
    again = UserProfile.from_bytes(p.to_bytes(), Background.default())
    again.assess(_typing(30, 10_000.0), None, session=long_id)
    assert again.keyboard.sessions == 1
    again.assess(_typing(30, 20_000.0), None, session="other")
    assert again.keyboard.sessions == 2


def test_an_impostor_caught_by_one_modality_does_not_enrol_the_other() -> None:
    # The owner only typed; someone else types and points. Their pointing must not become
    # the owner's mouse profile, or pointing alone would soon read `trusted`.
    windows = list(simulated_windows().values())
    owner, other = windows[0], windows[1]
    p = UserProfile(Background.default(), POLICY)
    for keys, _, session in owner:
        if keys is not None:
            p.assess(keys, None, session=session)
    assert p.keyboard_active() and not p.mouse_active() and p.mouse.actions == 0
    flagged_then_learned = 0
    for keys, mouse, session in other:
        before = p.mouse.actions
        a = p.assess(keys, mouse, session=session)
        if a.level in ("suspicious", "impostor") and p.mouse.actions > before:
            flagged_then_learned += 1
    assert flagged_then_learned == 0
    assert not p.mouse_active()


def test_an_owner_enrols_the_second_modality_while_trusted() -> None:
    windows = next(iter(simulated_windows().values()))
    p = UserProfile(Background.default(), POLICY)
    for keys, _, session in windows:
        if keys is not None:
            p.assess(keys, None, session=session)
    assert p.keyboard_active() and not p.mouse_active()
    for keys, mouse, session in windows:
        p.assess(keys, mouse, session=session)
    assert p.mouse_active()


def test_the_mouse_summary_keeps_the_width_earlier_code_reads() -> None:
    # Its names must be features (a misnamed one was once dropped silently), and its width
    # the one code of before 2026-12-06 reads back after a rollback.
    assert MOUSE_SUMMARY == ("straightness", "click_hold", "duration")


def test_each_press_is_scored_and_learned_once_across_windows() -> None:
    # The press remembered for the flight into the next window was counted (and its
    # dwell scored and learned) again with that window.
    def typing(t0: float, presses: int, key_class: int) -> KeystrokeEvents:
        t = np.array([t0 + 200.0 * i + d for i in range(presses) for d in (0.0, 90.0)])
        down = np.tile([True, False], presses)
        return KeystrokeEvents(t, down, np.full(t.size, key_class, np.int8))

    p = UserProfile(Background.default(), POLICY)
    p.assess(typing(0.0, 10, 1), None, session="s")
    p.assess(typing(2000.0, 10, 2), None, session="s")
    assert int(p.keyboard.model.counts[1].sum()) == 10  # class 1's dwells, from window 1 only
    for i in range(2, 10):
        p.assess(typing(2000.0 * i, 10, 2), None, session="s")
    assert p.presses_learned == 100


def test_a_record_with_the_pooled_mouse_model_keeps_its_typing_and_enrols_its_pointing() -> None:
    # What every stored profile of cadence-profile-3 is: CUP3 with a pooled mouse model.
    bg = Background.default()
    state = judged_state()
    record = bytearray(as_cup3(state))
    offset, size = parts_of(bytes(record))[4]
    pooled = HistogramRatio(bg.mouse)
    pooled.learn_many(np.zeros((3, bg.mouse.n_features)))
    blob = pooled.to_bytes()
    record[offset - 4 : offset + size] = struct.pack("<I", len(blob)) + blob
    old = UserProfile.from_bytes(state, bg, POLICY)
    p = UserProfile.from_bytes(bytes(record), bg, POLICY)
    assert p.keyboard.model.to_bytes() == old.keyboard.model.to_bytes()
    assert (p.keyboard.presses, p.keyboard.session) == (old.keyboard.presses, old.keyboard.session)
    assert p.trust.value == old.trust.value and old.mouse.actions > 0
    assert (p.mouse.actions, p.mouse.sessions, p.mouse.calibration.filled) == (0, 0, 0)
    assert p.mouse.model.n == 0 and not p.mouse_active()
