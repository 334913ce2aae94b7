"""Keystroke pairing, windowing, features and the profile's serialisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.keystrokes import (
    KeystrokeEvents,
    KeystrokePopulation,
    KeystrokeProfile,
    KeystrokeWindow,
    iter_windows,
    pair_presses,
    pair_presses_many,
    window_cells,
)
from profiles.keystrokes.binning import window_cells_many
from profiles.keystrokes.features import FEATURE_NAMES, window_features
from profiles.keystrokes.windows import windows_from_presses


def events(rows: list[tuple[float, bool, int]]) -> KeystrokeEvents:
    t, d, c = zip(*rows, strict=True)
    return KeystrokeEvents(np.array(t, float), np.array(d, bool), np.array(c, np.int8))


def test_pairing_simple_sequence_gives_dwell():
    p = pair_presses(events([(0, True, 1), (80, False, 1), (200, True, 7), (290, False, 7)]))
    assert p.t_down_ms.tolist() == [0.0, 200.0]
    assert p.dwell_ms.tolist() == [80.0, 90.0]
    assert p.key_class.tolist() == [1, 7]


def test_pairing_rollover_across_and_within_classes():
    # a(1)v s(1)v d(3)v a^ s^ d^: FIFO inside class 1, class 3 on its own.
    p = pair_presses(
        events(
            [
                (0, True, 1),
                (50, True, 1),
                (70, True, 3),
                (90, False, 1),
                (130, False, 1),
                (160, False, 3),
            ]
        )
    )
    assert p.dwell_ms.tolist() == [90.0, 80.0, 90.0]


def test_pairing_unmatched_up_is_ignored_and_unmatched_down_has_no_dwell():
    p = pair_presses(events([(0, False, 2), (10, True, 1), (500, True, 4), (560, False, 4)]))
    assert p.t_down_ms.tolist() == [10.0, 500.0]
    assert np.isnan(p.dwell_ms[0]) and p.dwell_ms[1] == 60.0


def test_pairing_key_repeat_keeps_first_down_and_drops_repeats():
    rows = [(0.0, True, 9)] + [(500.0 + 33 * i, True, 9) for i in range(5)] + [(700.0, False, 9)]
    p = pair_presses(events(rows))
    # first down (the press) + the last repeat that owns the up; the middle repeats are gone
    assert p.t_down_ms.tolist() == [0.0, 632.0]
    assert np.isnan(p.dwell_ms[0]) and p.dwell_ms[1] == pytest.approx(68.0)


def test_pairing_unsorted_input_and_overlong_dwell():
    p = pair_presses(events([(3000, False, 10), (100, True, 0), (0, True, 10), (150, False, 0)]))
    assert p.t_down_ms.tolist() == [0.0, 100.0]
    assert np.isnan(p.dwell_ms[0])  # a 3 s hold is not a dwell
    assert p.dwell_ms[1] == 50.0


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3000), st.booleans(), st.integers(0, 3)),
        min_size=0,
        max_size=60,
    ),
    st.lists(st.integers(0, 60), max_size=6),
)
def test_windows_paired_together_give_each_window_alone_bit_for_bit(
    rows: list[tuple[int, bool, int]], cuts: list[int]
) -> None:
    # Integer times (ties) and few classes (long runs, rollover, repeats), cut anywhere:
    # no run of downs or ups may reach across a window boundary once concatenated.
    whole = (
        events(rows)
        if rows
        else KeystrokeEvents(np.zeros(0), np.zeros(0, bool), np.zeros(0, np.int8))
    )
    bounds = [0, *sorted(min(c, len(whole)) for c in cuts), len(whole)]
    windows = [
        KeystrokeEvents(whole.t_ms[a:b], whole.is_down[a:b], whole.key_class[a:b])
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    paired = pair_presses_many(windows)
    for w, together in zip(windows, paired, strict=True):
        alone = pair_presses(w)
        assert np.array_equal(together.t_down_ms, alone.t_down_ms)
        assert np.array_equal(together.dwell_ms, alone.dwell_ms, equal_nan=True)
        assert np.array_equal(together.key_class, alone.key_class)
        assert together.key_class.dtype == alone.key_class.dtype
    # Then their flights and cells, also computed together: no flight joins two windows.
    typed = [p for p in paired if len(p)]
    for p, w, cells in zip(
        typed,
        windows_from_presses(typed),
        window_cells_many(windows_from_presses(typed)),
        strict=True,
    ):
        alone_w = KeystrokeWindow.from_presses(p)
        for field in ("dd_ms", "ud_ms", "pair_code"):
            assert np.array_equal(getattr(w, field), getattr(alone_w, field), equal_nan=True)
        assert w.n_pauses == alone_w.n_pauses and w.pair_code.dtype == alone_w.pair_code.dtype
        assert np.array_equal(cells, window_cells(alone_w))


def regular_typing(n: int, flight: float = 200.0, dwell: float = 100.0) -> KeystrokeEvents:
    t = np.arange(n) * flight
    cls = (np.arange(n) % 8).astype(np.int8)
    tt = np.stack([t, t + dwell], axis=1).ravel()
    return KeystrokeEvents(tt, np.tile([True, False], n), np.repeat(cls, 2))


def test_windowing_counts_presses_and_drops_tail():
    p = pair_presses(regular_typing(250))
    ws = list(iter_windows(p, 100))
    assert [w.n_presses for w in ws] == [100, 100]
    assert ws[1].presses.t_down_ms[0] == 100 * 200.0


def test_window_flights_and_pause():
    p = pair_presses(regular_typing(5))
    t = p.t_down_ms.copy()
    t[3:] += 5000.0  # a 5 s pause before the 4th press
    from profiles.keystrokes import KeystrokePresses

    w = KeystrokeWindow.from_presses(KeystrokePresses(t, p.dwell_ms, p.key_class))
    assert w.dd_ms.tolist()[:2] == [200.0, 200.0] and np.isnan(w.dd_ms[2])
    assert w.ud_ms[0] == 100.0
    assert w.n_pauses == 1
    assert w.pair_code.tolist() == [0 * 13 + 1, 1 * 13 + 2, 2 * 13 + 3, 3 * 13 + 4]


def test_features_on_known_sequence():
    w = next(iter_windows(pair_presses(regular_typing(100)), 100))
    x = window_features(w)
    assert x.shape == (len(FEATURE_NAMES),) and np.isfinite(x).all()
    f = dict(zip(FEATURE_NAMES, x, strict=True))
    assert np.exp(f["dwell_q50"]) == pytest.approx(100.0)
    assert np.exp(f["dd_q50"]) == pytest.approx(200.0)
    assert f["ud_q50"] == pytest.approx(1.0)  # 100 ms, in units of 100 ms
    assert f["rollover_rate"] == 0.0 and f["pause_rate"] == 0.0
    assert f["erase_rate"] == 0.0  # classes 0-7 only


def test_cells_one_per_timing_event():
    w = next(iter_windows(pair_presses(regular_typing(100)), 100))
    assert window_cells(w).size == 100 + 99 + 99


def test_profile_round_trip_size_and_direction():
    rng = np.random.default_rng(0)

    def window(flight: float) -> KeystrokeWindow:
        n = 200
        t = np.cumsum(rng.gamma(8.0, flight / 8.0, n))
        tt = np.stack([t, t + rng.gamma(20.0, 4.0, n)], axis=1).ravel()
        ev = KeystrokeEvents(
            tt, np.tile([True, False], n), np.repeat(rng.integers(0, 13, n), 2).astype(np.int8)
        )
        order = np.argsort(ev.t_ms, kind="stable")
        ev = KeystrokeEvents(ev.t_ms[order], ev.is_down[order], ev.key_class[order])
        return next(iter_windows(pair_presses(ev), 150))

    pop = KeystrokePopulation()
    for f in (150.0, 250.0, 350.0) * 3:
        pop.learn_one(window(f))
    prof = KeystrokeProfile(pop)
    for _ in range(300):  # long enough for counts to hit the uint8 cap and halve
        prof.learn_one(window(150.0))
    data = prof.to_bytes()
    assert len(data) <= 8 * 1024
    again = KeystrokeProfile.from_bytes(data, KeystrokePopulation.from_bytes(pop.to_bytes()))
    assert np.array_equal(again.counts, prof.counts)
    probe = window(250.0)
    assert again.score_one(probe) == pytest.approx(prof.score_one(probe), rel=1e-5)
    assert prof.score_one(window(150.0)) < prof.score_one(probe)
    assert prof.counts.max() <= 255 and prof.counts.max() >= 128


def test_profile_rejects_foreign_bytes():
    with pytest.raises(ValueError):
        KeystrokeProfile.from_bytes(b"XXXX" + bytes(64), KeystrokePopulation())


def test_profile_bytes_hold_only_the_typed_cells_and_read_the_dense_layout() -> None:
    import struct

    pop = KeystrokePopulation()
    empty = KeystrokeProfile(pop)
    assert len(empty.to_bytes()) < 32
    typed = KeystrokeProfile(pop)
    typed.counts[5, 3] = 7
    typed.counts[200, :] = 255  # a dense corner does not make the rest dense
    full = KeystrokeProfile(pop)
    full.counts[:] = 1
    for p in (empty, typed, full):
        again = KeystrokeProfile.from_bytes(p.to_bytes(), pop)
        assert np.array_equal(again.counts, p.counts)
        assert np.array_equal(again._totals, p.counts.sum(axis=1))
    assert len(typed.to_bytes()) < 600 < len(full.to_bytes())
    # The dense layout of the first version (CKU1) is still read.
    v1 = struct.pack("<4sBBHfI", b"CKU1", 13, 12, 0, 10.0, 3) + typed.counts.tobytes()
    old = KeystrokeProfile.from_bytes(v1, pop)
    assert np.array_equal(old.counts, typed.counts) and old.n_windows == 3
