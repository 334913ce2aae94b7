"""Histogram likelihood ratio: the user's per-feature histograms against the population's.

Each feature is quantised into the population's quantile bins; the user state
is one count per (feature, bin). A vector scores

    sum_j  log p_pop(bin_j) - log p_user(bin_j)

i.e. the log-likelihood ratio "population vs this user" of a naive-Bayes model:
positive when the vector looks more like anyone than like the owner. Because
each feature gets a free-form univariate density, skewed, bounded and
multi-modal features need no transform.

The user's bin probabilities are a MAP estimate with the population as prior
(``relevance`` pseudo-vectors, the relevance factor of GMM-UBM adaptation):
with no enrollment data the user *is* the population and every score is 0,
and the ratio sharpens as evidence accumulates.

>>> from profiles.population import Population
>>> rng = np.random.default_rng(0)
>>> others = rng.normal(0.0, 2.0, size=(2000, 3))
>>> pop = Population.fit(others, n_bins=8)
>>> det = HistogramRatio(pop)
>>> det.score_one(np.zeros(3))
0.0
>>> for x in rng.normal(0.0, 0.5, size=(300, 3)):
...     det.learn_one(x)
>>> det.score_one(np.zeros(3)) < 0 < det.score_one(np.full(3, 3.0))
True
>>> det2 = HistogramRatio.from_bytes(det.to_bytes(), population=pop)
>>> det2.score_one(np.ones(3)) == det.score_one(np.ones(3))
True
"""

from __future__ import annotations

import math

import numpy as np

from profiles.detectors._codec import pack, unpack
from profiles.population import Population

#: Prior strength, in feature vectors, of the population in the user's histograms
#: (the customary relevance factor of MAP adaptation in GMM-UBM).
RELEVANCE = 16.0


class HistogramRatio:
    """Per-user quantile histograms scored as a log-likelihood ratio against a population."""

    _MAGIC = b"CHR1"

    def __init__(
        self, population: Population, relevance: float = RELEVANCE, max_count: int | None = None
    ) -> None:
        self.population = population
        self.relevance = relevance
        # Largest count a bin may hold (None: unbounded). A profile whose state must
        # stay within a fixed size caps it: when a bin would exceed it, every count is
        # halved, which keeps the histograms' shapes and slowly forgets old actions.
        self.max_count = max_count
        self.counts = np.zeros((population.n_features, population.n_bins), dtype=np.uint32)
        self.n = 0
        self._table: np.ndarray | None = None
        self._offsets = np.arange(population.n_features) * population.n_bins

    def learn_one(self, x: np.ndarray) -> None:
        self.learn_many(np.atleast_2d(x))

    def learn_many(self, X: np.ndarray) -> None:
        self.learn_bins(self.bins(np.atleast_2d(X)))

    def bins(self, X: np.ndarray) -> np.ndarray:
        """Flat cell (feature, bin) of each feature of each row: what scoring and
        learning both read, so a caller that does both quantises the rows once."""
        return self.population.bin_index(X) + self._offsets

    def learn_bins(self, bins: np.ndarray) -> None:
        """Learn rows given as :meth:`bins`."""
        added = np.bincount(bins.ravel(), minlength=self.counts.size)
        self.counts += added.reshape(self.counts.shape).astype(np.uint32)
        self.n += bins.shape[0]
        self._table = None
        self._cap()

    def _cap(self) -> None:
        if self.max_count is None or self.n == 0:
            return
        while int(self.counts.max()) > self.max_count:
            self.counts >>= 1
            self.n = int(self.counts[0].sum())

    def _llr_table(self) -> np.ndarray:
        if self._table is None:
            log_pop = self.population.log_bin_probability()
            # Each feature's histogram over its own total: all are ``n`` until counts
            # are halved (``max_count``), after which rounding leaves them a few apart.
            totals = self.counts.sum(axis=1, keepdims=True, dtype=np.float64)
            p_pop = self.population.bin_probability()
            p_user = (self.counts + self.relevance * p_pop) / (totals + self.relevance)
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
        # Counts in the narrowest unsigned type that holds them (a user with ~60 000
        # actions per bin is years away): half the bytes of uint32, same values.
        # A user who has never pointed stores no counts at all.
        if self.n == 0:
            return pack(self._MAGIC, np.array([self.relevance]), np.zeros(0, np.uint8))
        top = int(self.counts.max())
        dtype = np.uint8 if top <= 0xFF else np.uint16 if top <= 0xFFFF else np.uint32
        return pack(self._MAGIC, np.array([self.relevance]), self.counts.astype(dtype))

    def max_bytes(self) -> int:
        """Largest :meth:`to_bytes` under ``max_count`` (uint32 counts if unbounded)."""
        width = 4 if self.max_count is None or self.max_count > 0xFFFF else 2
        width = 1 if self.max_count is not None and self.max_count <= 0xFF else width
        # Magic, then per array a dtype byte, ndim byte and uint32 dimensions:
        # the relevance (1-D float64) and the counts (2-D).
        return 4 + (2 + 4 + 8) + (2 + 8) + self.counts.size * width

    @classmethod
    def from_bytes(
        cls, b: bytes, *, population: Population | None = None, max_count: int | None = None
    ) -> HistogramRatio:
        """Rebuild from :meth:`to_bytes`; counts over ``max_count`` (a record written
        without the cap) are halved as :meth:`learn_many` would."""
        if population is None:
            raise ValueError("HistogramRatio needs the shared population to be restored")
        head, counts = unpack(b, cls._MAGIC)
        if head.shape != (1,) or not (math.isfinite(float(head[0])) and head[0] > 0):
            raise ValueError("histogram relevance out of range")
        det = cls(population, relevance=float(head[0]), max_count=max_count)
        if counts.size:
            if counts.shape != det.counts.shape:
                raise ValueError("histogram of another population")
            det.counts = counts.astype(np.uint32)
            det.n = int(det.counts[0].sum())
            det._cap()
        return det
