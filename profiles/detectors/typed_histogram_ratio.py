"""Histogram likelihood ratio per group (mouse: per action type), invariant to the group mix.

:class:`~profiles.detectors.histogram_ratio.HistogramRatio` compares an action
with the owner's and the population's histograms pooled over all action types.
A plain move and a click differ in duration, pause, hold, distance, so the
pooled score of an action depends on its type as much as on who made it: a
window with more moves than the owner usually makes scores high for the owner
themself, and the task mix of a session drifts (a false alarm on Balabit was
exactly that, moves rising from 12 to 28 % of the actions within a session).

Here each row belongs to one group (the one-hot ``group_columns``); the owner
and the population each have one histogram per group, and a row scores

    sum_j  log p_pop(bin_j | group) - log p_user(bin_j | group)

i.e. the same naive-Bayes likelihood ratio, conditioned on the group: how
the owner makes this *kind* of action, not how often. The group columns
themselves are not histogrammed (within a group they are constant, so they
carry nothing). The cost is the pooled detector's: one flat table, each row's
cells offset by its group, one gather and one sum to score, one ``bincount``
to learn.

Counts are capped at :data:`MAX_COUNT` (4 095): a group whose busiest bin would
pass it is halved, i.e. it slowly forgets with its bin proportions unchanged, as
the pooled and keystroke histograms already do. The cap lets the counts be
stored in 12 bits, which keeps the mouse (3 groups x 26 features x 16 bins)
within the profile's 16 KB bound: 1.9 KB at most, against 2.5 KB in ``uint16``.

The profile's mouse detector since ``cadence-profile-4``. Measured on Balabit
(``docs/evaluation.md``, "Mouse (Balabit)", "Takeover"), against the pooled ratio: a
better separation of people (session AUC 0.950 vs 0.938) and calibration that holds
on a held-out day (9 % of the owner's windows above their 90th percentile, against
13 %), fewer false alarms in the takeover protocol (3 vs 5 in 10.6 h), for a slightly
later detection (median 160 vs 155 s: the task mix that no longer moves the owner's
scores also told some attackers apart).

>>> from profiles.population import Population
>>> rng = np.random.default_rng(0)
>>> X = np.c_[np.eye(2)[rng.integers(0, 2, 4000)], rng.normal(0.0, 2.0, size=(4000, 2))]
>>> pop = Population.fit(X, n_bins=8, groups=X[:, 1].astype(int))
>>> det = TypedHistogramRatio(pop, group_columns=(0, 1))
>>> det.score_one(X[0])
0.0
>>> owner = np.c_[np.eye(2)[rng.integers(0, 2, 600)], rng.normal(0.0, 0.5, size=(600, 2))]
>>> det.learn_many(owner)
>>> bool(det.score_one(np.r_[1.0, 0.0, 0.0, 0.0]) < 0 < det.score_one(np.r_[1.0, 0.0, 3.0, 3.0]))
True
>>> det2 = TypedHistogramRatio.from_bytes(det.to_bytes(), population=pop)
>>> det2.score_one(owner[0]) == det.score_one(owner[0])
True
>>> det.counts.shape, len(det.to_bytes())  # 2 groups x 2 features x 8 bins, one byte each
((2, 2, 8), 56)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

from profiles.detectors._codec import pack, unpack
from profiles.detectors.histogram_ratio import RELEVANCE
from profiles.population import Population

#: Largest count of a bin (12 bits in the serialised state; see the module docstring).
MAX_COUNT: Final = 0xFFF
#: Rows one ``learn_bins`` call may add in place: a bin at the cap plus that many
#: stays within uint16, the counts' type in memory (below that, a wider copy).
_ROWS_IN_PLACE: Final = 0xFFFF - MAX_COUNT


class TypedHistogramRatio:
    """Per-group quantile histograms scored as a log-likelihood ratio against the population's."""

    _MAGIC = b"CTR2"

    def __init__(
        self,
        population: Population,
        group_columns: Sequence[int] | None = None,
        relevance: float = RELEVANCE,
        max_count: int = MAX_COUNT,
    ) -> None:
        # By default the groups are the population's first columns (the mouse's
        # type one-hot), so a stored detector needs no column list to be read.
        columns = tuple(range(population.n_groups)) if group_columns is None else group_columns
        if population.n_groups == 0 or population.n_groups != len(columns):
            raise ValueError("the population must count bins per group of these columns")
        if not 0 < max_count <= MAX_COUNT:
            raise ValueError(f"max_count must be in 1..{MAX_COUNT} (12-bit counts)")
        self.population = population
        self.group_columns = tuple(int(c) for c in columns)
        self.relevance = relevance
        self.max_count = max_count
        # Only the features that are not the group's own one-hot are histogrammed. In
        # plain Python: a profile read back builds one of these, and numpy's set
        # routines cost ~100 us per call on these few dozen columns.
        grouped = set(self.group_columns)
        features = [i for i in range(population.n_features) if i not in grouped]
        n_groups, n_bins = len(self.group_columns), population.n_bins
        # uint16 in memory: a worker holds one per user it judges (2.5 KB, against
        # 5 KB in uint32); learn_bins widens them for a batch that could overflow.
        self.counts: np.ndarray = np.zeros((n_groups, len(features), n_bins), dtype=np.uint16)
        self._offsets = np.arange(len(features)) * n_bins
        self._group_stride = len(features) * n_bins
        # Contiguous columns (the mouse's) are read as slices, i.e. views, not copies.
        self._features: slice | np.ndarray = _as_slice(features)
        self._group_slice: slice | np.ndarray = _as_slice(list(self.group_columns))
        self._table: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Rows learned (after halvings: what the counts still hold)."""
        return int(self.counts[:, 0, :].sum())

    def groups(self, X: np.ndarray) -> np.ndarray:
        """Group of each row: the largest of its one-hot group columns."""
        return np.atleast_2d(X)[:, self._group_slice].argmax(axis=1)

    def bins(self, X: np.ndarray) -> np.ndarray:
        """Flat cell (group, feature, bin) of each histogrammed feature of each row:
        what scoring and learning both read, so a caller doing both quantises once."""
        X = np.atleast_2d(X)
        b = self.population.bin_index(X, self._features) + self._offsets
        b += (self.groups(X) * self._group_stride)[:, None]
        return b

    def learn_one(self, x: np.ndarray) -> None:
        self.learn_many(np.atleast_2d(x))

    def learn_many(self, X: np.ndarray) -> None:
        self.learn_bins(self.bins(X))

    def learn_bins(self, bins: np.ndarray) -> None:
        """Learn rows given as :meth:`bins`."""
        added = np.bincount(bins.ravel(), minlength=self.counts.size)
        # Exact either way: the sum is halved in the wider type before it narrows.
        wide = bins.shape[0] > _ROWS_IN_PLACE
        counts: np.ndarray = self.counts.astype(np.uint64) if wide else self.counts
        np.add(counts, added.reshape(counts.shape), out=counts, casting="unsafe")
        if int(counts.max()) > self.max_count:
            for g in range(counts.shape[0]):
                while int(counts[g].max()) > self.max_count:
                    counts[g] >>= 1
        self.counts = counts.astype(np.uint16) if wide else counts
        self._table = None

    def _llr_table(self) -> np.ndarray:
        if self._table is None:
            log_pop, prior = _population_terms(self.population, self._features, self.relevance)
            # Each (group, feature) histogram over its own total: equal within a group
            # until it is halved, after which rounding leaves them a few apart.
            totals = self.counts.sum(axis=2, keepdims=True, dtype=np.float64)
            p_user = (self.counts + prior) / (totals + self.relevance)
            self._table = (log_pop - np.log(p_user)).ravel()
        return self._table

    def score_many(self, X: np.ndarray) -> np.ndarray:
        """Score of each row of ``X``."""
        return self.score_bins(self.bins(X))

    def score_bins(self, bins: np.ndarray) -> np.ndarray:
        """Score of each row given as :meth:`bins`."""
        return self._llr_table()[bins].sum(axis=1)

    def score_one(self, x: np.ndarray) -> float:
        return float(self.score_many(x)[0])

    def to_bytes(self) -> bytes:
        # Counts in one byte each while they fit, else two per three bytes (12 bits);
        # the reader tells them apart by length. No counts at all before learning.
        flat = self.counts.ravel()
        top = int(flat.max())
        if top == 0:
            data = np.zeros(0, np.uint8)
        elif top <= 0xFF:
            data = flat.astype(np.uint8)
        else:
            data = _pack12(flat)
        return pack(self._MAGIC, np.array([self.relevance]), data)

    def max_bytes(self) -> int:
        """Largest :meth:`to_bytes`: magic, relevance (1-D float64), 12-bit counts (1-D)."""
        return 4 + (2 + 4 + 8) + (2 + 4) + _packed12_size(self.counts.size)

    @classmethod
    def from_bytes(
        cls,
        b: bytes,
        *,
        population: Population | None = None,
        group_columns: Sequence[int] | None = None,
    ) -> TypedHistogramRatio:
        if population is None:
            raise ValueError("TypedHistogramRatio needs the shared population to be restored")
        head, data = unpack(b, cls._MAGIC)
        # Read from a stored state: a relevance of 0, below it or NaN made every score
        # of the owner NaN or infinite, and counts not written as bytes could pass the
        # 12-bit cap (as HistogramRatio.from_bytes checks its own).
        if head.shape != (1,) or not (math.isfinite(float(head[0])) and head[0] > 0):
            raise ValueError("histogram relevance out of range")
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ValueError("typed histogram counts of another layout")
        det = cls(population, group_columns, relevance=float(head[0]))
        cells = det.counts.size
        if data.size == cells:
            flat = data.astype(np.uint16)
        elif data.size == _packed12_size(cells):
            flat = _unpack12(data, cells).astype(np.uint16)
        elif data.size:
            raise ValueError("typed histogram of another population")
        else:
            return det
        det.counts = flat.reshape(det.counts.shape)
        return det


#: The population's per-group log P of the histogrammed features and relevance x P,
#: shared by every detector of that population (a copy each was 10 KB per profile in
#: memory): rebuilt when the population learns, i.e. hands out a new cached array.
_TERMS: dict[tuple[int, str, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_MAX_TERMS: Final = 8


def _population_terms(
    population: Population, features: slice | np.ndarray, relevance: float
) -> tuple[np.ndarray, np.ndarray]:
    source = population.group_log_bin_probability()
    key = (id(source), repr(features), relevance)
    hit = _TERMS.get(key)
    # The entry keeps ``source`` alive, so its id cannot be reused by another array.
    if hit is None or hit[0] is not source:
        log_pop = source[:, features]
        prior = relevance * np.exp(log_pop)
        log_pop.flags.writeable = prior.flags.writeable = False
        if len(_TERMS) >= _MAX_TERMS:
            _TERMS.clear()
        hit = _TERMS[key] = (source, log_pop, prior)
    return hit[1], hit[2]


def _as_slice(index: list[int]) -> slice | np.ndarray:
    """``index`` as an equivalent slice when it is a contiguous ascending range.

    >>> _as_slice([3, 4, 5]), _as_slice([0, 2])
    (slice(3, 6, None), array([0, 2]))
    """
    if index and index == list(range(index[0], index[0] + len(index))):
        return slice(index[0], index[0] + len(index))
    return np.array(index, dtype=np.intp)


def _packed12_size(n: int) -> int:
    return (n + 1) // 2 * 3


def _pack12(counts: np.ndarray) -> np.ndarray:
    """Two 12-bit values per three bytes, little-endian: ``a`` in the low 12 bits."""
    c = counts.astype(np.uint32)
    if c.size % 2:
        c = np.r_[c, np.uint32(0)]
    pair = c[0::2] | (c[1::2] << 12)
    return np.stack([pair & 0xFF, (pair >> 8) & 0xFF, pair >> 16], axis=1).astype(np.uint8).ravel()


def _unpack12(data: np.ndarray, n: int) -> np.ndarray:
    b = data.reshape(-1, 3).astype(np.uint32)
    pair = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    return np.stack([pair & 0xFFF, pair >> 12], axis=1).ravel()[:n]
