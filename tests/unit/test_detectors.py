"""Learn/score semantics and pickle-free serialisation of the profile detectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from profiles.detectors.gaussian import GaussianNLL, RunningGaussian
from profiles.detectors.gaussian_ratio import GaussianRatio
from profiles.detectors.histogram_ratio import HistogramRatio
from profiles.detectors.manhattan import ScaledManhattan
from profiles.detectors.typed_histogram_ratio import MAX_COUNT as TYPED_MAX_COUNT
from profiles.detectors.typed_histogram_ratio import TypedHistogramRatio
from profiles.mouse import N_FEATURES, TYPE_COLUMNS, action_types
from profiles.population import Population

RNG = np.random.default_rng(42)
_SAMPLE = RNG.normal(0.0, 2.0, size=(3000, N_FEATURES))
POP = Population.fit(_SAMPLE, groups=action_types(_SAMPLE))

FACTORIES: dict[str, Callable[[], Any]] = {
    "manhattan": ScaledManhattan,
    "gaussian": GaussianNLL,
    "diagonal_gaussian": lambda: GaussianNLL(diagonal=True),
    "gaussian_ratio": lambda: GaussianRatio(POP),
    "histogram_ratio": lambda: HistogramRatio(POP),
    "typed_histogram_ratio": lambda: TypedHistogramRatio(POP, TYPE_COLUMNS),
}
MOUSE_BYTES_BUDGET = 8 * 1024


def restore(det: Any) -> Any:
    if isinstance(det, GaussianRatio | HistogramRatio | TypedHistogramRatio):
        return type(det).from_bytes(det.to_bytes(), population=POP)
    return type(det).from_bytes(det.to_bytes())


@pytest.fixture(params=sorted(FACTORIES))
def trained(request: pytest.FixtureRequest) -> Any:
    det = FACTORIES[request.param]()
    for x in np.random.default_rng(0).normal(1.0, 0.5, size=(400, N_FEATURES)):
        det.learn_one(x)
    return det


def test_owner_like_vectors_score_lower_than_outliers(trained: Any) -> None:
    rng = np.random.default_rng(1)
    owner = [trained.score_one(x) for x in rng.normal(1.0, 0.5, size=(100, N_FEATURES))]
    other = [trained.score_one(x) for x in rng.normal(-2.0, 1.5, size=(100, N_FEATURES))]
    assert np.mean(other) > np.mean(owner)


def test_round_trip_preserves_scores_and_fits_the_budget(trained: Any) -> None:
    b = trained.to_bytes()
    assert isinstance(b, bytes)
    assert len(b) <= MOUSE_BYTES_BUDGET
    again = restore(trained)
    X = np.random.default_rng(2).normal(size=(20, N_FEATURES))
    np.testing.assert_allclose(again.score_many(X), trained.score_many(X), rtol=1e-3, atol=1e-3)
    # A restored detector keeps learning where the original left off.
    trained.learn_one(X[0])
    again.learn_one(X[0])
    np.testing.assert_allclose(again.score_many(X), trained.score_many(X), rtol=1e-3, atol=1e-3)


def test_score_one_matches_score_many(trained: Any) -> None:
    X = np.random.default_rng(3).normal(size=(5, N_FEATURES))
    np.testing.assert_allclose([trained.score_one(x) for x in X], trained.score_many(X))


def test_ratio_detectors_are_neutral_before_enrollment() -> None:
    x = np.random.default_rng(4).normal(size=N_FEATURES)
    assert HistogramRatio(POP).score_one(x) == 0.0
    assert GaussianRatio(POP).score_one(x) == 0.0


def test_wrong_magic_is_rejected() -> None:
    with pytest.raises(ValueError):
        GaussianNLL.from_bytes(ScaledManhattan().to_bytes())
    with pytest.raises(ValueError):
        HistogramRatio.from_bytes(HistogramRatio(POP).to_bytes())  # population missing


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(2, 40), st.integers(1, 5)), elements=st.floats(-1e3, 1e3)
    ),
    st.integers(1, 39),
)
def test_running_gaussian_batches_equal_one_by_one(X: np.ndarray, split: int) -> None:
    one = RunningGaussian()
    for x in X:
        one.update(x)
    batched = RunningGaussian()
    batched.update_many(X[:split])
    batched.update_many(X[split:])
    np.testing.assert_allclose(batched.mean, one.mean, atol=1e-6)
    np.testing.assert_allclose(batched.scatter, one.scatter, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(one.mean, X.mean(axis=0), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 30), st.just(N_FEATURES)), elements=st.floats(-50, 50)
    )
)
def test_histogram_counts_every_vector_once_per_feature(X: np.ndarray) -> None:
    det = HistogramRatio(POP)
    det.learn_many(X)
    assert (det.counts.sum(axis=1) == X.shape[0]).all()
    assert np.isfinite(det.score_many(X)).all()


def _typed_rows(rng: np.random.Generator, n: int, share_a: float, shift: float) -> np.ndarray:
    """Two action kinds (one-hot in columns 0-1) whose feature differs by kind."""
    kind = (rng.random(n) >= share_a).astype(int)
    x = np.where(kind == 0, 0.0, 4.0) + shift + rng.normal(0.0, 1.0, n)
    return np.c_[np.eye(2)[kind], x]


def test_typed_score_does_not_move_with_the_owners_action_mix() -> None:
    # Everyone: kinds half and half, feature centred per kind; the owner: 80 %
    # kind 0 and a feature shifted by +0.7. A window of the owner with the mix
    # reversed is still the owner: the typed ratio says so, the pooled one does not.
    rng = np.random.default_rng(5)
    people = np.vstack([_typed_rows(rng, 500, 0.5, s) for s in rng.normal(0.0, 1.0, 40)])
    pop = Population.fit(people, n_bins=16, groups=people[:, 1].astype(int))
    typed, pooled = TypedHistogramRatio(pop, (0, 1)), HistogramRatio(pop)
    owner = _typed_rows(rng, 4000, 0.8, 0.7)
    typed.learn_many(owner)
    pooled.learn_many(owner)
    usual, reversed_mix = _typed_rows(rng, 4000, 0.8, 0.7), _typed_rows(rng, 4000, 0.2, 0.7)
    moved = {
        name: float(np.mean(d.score_many(reversed_mix)) - np.mean(d.score_many(usual)))
        for name, d in (("typed", typed), ("pooled", pooled))
    }
    assert moved["pooled"] > 0.5
    assert abs(moved["typed"]) < moved["pooled"] / 5
    other = _typed_rows(rng, 4000, 0.8, -1.0)  # same mix as the owner, another person
    assert np.mean(typed.score_many(other)) > np.mean(typed.score_many(usual)) + 1.0


def test_typed_counts_stay_within_12_bits_and_keep_their_proportions() -> None:
    det = TypedHistogramRatio(POP, TYPE_COLUMNS)
    rows = np.zeros((10_000, N_FEATURES))
    rows[:, 0] = 1.0  # every row of type 0, all in one bin per feature: passes the cap
    det.learn_many(rows[:4_000])
    before = det.score_many(rows[:3])
    det.learn_many(rows[4_000:])
    assert 0 < int(det.counts[0].max()) <= TYPED_MAX_COUNT
    assert int(det.counts[1:].max()) == 0  # the other groups are not halved with it
    # Only the population prior's weight against the (halved) counts moves the score.
    np.testing.assert_allclose(det.score_many(rows[:3]), before, rtol=0.002)


def test_typed_counts_learn_a_batch_larger_than_uint16_exactly() -> None:
    # Counts are uint16 in memory; a batch that could pass 65 535 in one bin is added
    # wider, halved, then narrowed.
    rows = np.zeros((70_000, N_FEATURES))
    rows[:, 0] = 1.0  # one type, one bin per feature
    at_once = TypedHistogramRatio(POP)
    at_once.learn_many(rows)
    assert at_once.counts.dtype == np.uint16
    top = 70_000
    while top > TYPED_MAX_COUNT:
        top >>= 1
    assert int(at_once.counts.max()) == top  # 70 000 halved to 2 187, not wrapped around


@pytest.mark.parametrize("top", [0, 200, 4_000])
def test_typed_counts_are_stored_as_narrow_as_they_fit_and_read_back_exactly(top: int) -> None:
    det = TypedHistogramRatio(POP)  # the groups are the first columns by default
    if top:
        det.learn_many(np.random.default_rng(5).normal(size=(50, N_FEATURES)))
        det.counts[2, 7, 3] = top  # as if that bin had seen many more actions
    again = TypedHistogramRatio.from_bytes(det.to_bytes(), population=POP)
    assert np.array_equal(again.counts, det.counts) and again.n == det.n
    # No counts before learning; then one byte a bin, or 12 bits, never more.
    size = {0: 0, 200: det.counts.size, 4_000: det.counts.size * 3 // 2}[top]
    assert len(det.to_bytes()) == det.max_bytes() - det.counts.size * 3 // 2 + size
    X = np.random.default_rng(6).normal(size=(20, N_FEATURES))
    assert np.array_equal(again.score_many(X), det.score_many(X))


def test_typed_ratio_follows_its_population_and_shares_its_terms() -> None:
    # The population's part of the table is shared by every detector (one copy, not
    # 10 KB per profile in memory), and refreshed when the population learns.
    pop = Population.fit(_SAMPLE[:1000], groups=action_types(_SAMPLE[:1000]))
    owner, other = TypedHistogramRatio(pop), TypedHistogramRatio(pop)
    owner.learn_many(_SAMPLE[:200])
    other.learn_many(_SAMPLE[200:400])
    x = _SAMPLE[2000:2050]
    before = owner.score_many(x)
    other.score_many(x)
    assert owner._llr_table() is not other._llr_table()
    pop.learn_many(_SAMPLE[1000:2000] * 3.0, action_types(_SAMPLE[1000:2000]))
    owner._table = None  # the table is otherwise rebuilt when the owner learns
    fresh = TypedHistogramRatio.from_bytes(owner.to_bytes(), population=pop)
    after = owner.score_many(x)
    assert not np.array_equal(before, after)
    assert np.array_equal(after, fresh.score_many(x))


def test_typed_ratio_ignores_the_group_columns_it_conditions_on() -> None:
    # Within a group its one-hot is constant, so it is not histogrammed: 26 features.
    det = TypedHistogramRatio(POP, TYPE_COLUMNS)
    assert det.counts.shape == (3, N_FEATURES - 3, POP.n_bins)
    det.learn_many(_SAMPLE[:500])
    x = _SAMPLE[600].copy()
    y = x.copy()
    y[list(TYPE_COLUMNS)] *= 3.0  # same group (the largest column), other values
    assert det.score_one(x) == det.score_one(y)


@pytest.mark.parametrize("top", [0, 200, 60_000, 70_000])
def test_histogram_counts_are_stored_as_narrow_as_they_fit_and_read_back_exactly(top: int) -> None:
    det = HistogramRatio(POP)
    if top:
        det.learn_many(np.random.default_rng(5).normal(size=(50, N_FEATURES)))
        det.counts[0, 0] += top  # as if that bin had seen many more actions
        det.n += top
    again = restore(det)
    assert np.array_equal(again.counts, det.counts) and again.n == det.n
    # Never-used detectors store no counts; the others 1, 2 or 4 bytes per bin.
    width = {0: 0, 200: 1, 60_000: 2, 70_000: 4}[top]
    assert len(HistogramRatio(POP).to_bytes()) < len(det.to_bytes()) or top == 0
    assert len(det.to_bytes()) < 64 + width * det.counts.size
