"""Population (background) model: what feature vectors of *anyone* look like.

A user model alone cannot tell a rare behaviour from an unusual one: scores
become meaningful once compared with the population, as in GMM-UBM speaker
verification. The population is built from **enrollment** windows of all users
and is shared by every per-user detector of a modality. It holds:

- per-feature quantile bin edges (a small artifact fitted once from a sample of
  enrollment vectors), which make histograms insensitive to feature scaling;
- per-feature bin counts, updated online;
- a running Gaussian (mean and covariance), updated online.

>>> rng = np.random.default_rng(1)
>>> pop = Population.fit(rng.normal(size=(1000, 2)), n_bins=4)
>>> pop.n_bins, pop.n_features
(4, 2)
>>> pop.bin_index(np.array([[-5.0, 5.0]])).tolist()
[[0, 3]]
>>> np.round(np.exp(pop.log_bin_probability()).sum(axis=1), 6).tolist()
[1.0, 1.0]
>>> bool(Population.from_bytes(pop.to_bytes()).counts.sum() == pop.counts.sum())
True
>>> grouped = Population.fit(rng.normal(size=(10, 2)), n_bins=4, groups=np.arange(10) % 3)
>>> grouped.n_groups, Population.from_bytes(grouped.to_bytes()).group_counts.sum(axis=(1, 2)).tolist()
(3, [8.0, 6.0, 6.0])
"""

from __future__ import annotations

import numpy as np

from profiles.detectors._codec import pack, unpack
from profiles.detectors.gaussian import RunningGaussian

#: Quantile bins per feature: 16 bins estimate a univariate density well from a
#: few hundred enrollment vectors per user while keeping a user model near 2 KB.
N_BINS = 16


class Population:
    """Background distribution of feature vectors, shared by all users of a modality."""

    _MAGIC = b"CPO1"

    def __init__(self, edges: np.ndarray, n_groups: int = 0) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)  # (d, n_bins - 1), ascending per row
        self.counts = np.zeros((self.n_features, self.n_bins))
        # Bin counts per group (mouse: per action type), so that a detector can
        # compare like with like; empty when the rows carry no group.
        self.group_counts = np.zeros((n_groups, self.n_features, self.n_bins))
        self.gaussian = RunningGaussian()
        # log P and P per bin, kept until the counts change: every user's detector
        # rebuilds its table from them after each window it learns.
        self._log_p: np.ndarray | None = None
        self._p: np.ndarray | None = None
        self._group_log_p: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return int(self.edges.shape[0])

    @property
    def n_bins(self) -> int:
        return int(self.edges.shape[1] + 1)

    @property
    def n_groups(self) -> int:
        return int(self.group_counts.shape[0])

    @classmethod
    def fit(
        cls,
        sample: np.ndarray,
        n_bins: int = N_BINS,
        groups: np.ndarray | None = None,
        n_groups: int | None = None,
    ) -> Population:
        """Edges at the population quantiles of ``sample``, then learn the sample.

        ``groups`` (a small non-negative int per row) also keeps bin counts per group;
        ``n_groups`` says how many groups there are when the sample may lack the last
        ones (default: the largest group seen, plus one).
        """
        sample = np.asarray(sample, dtype=np.float64)
        qs = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
        if n_groups is None:
            n_groups = 0 if groups is None or groups.size == 0 else int(groups.max()) + 1
        pop = cls(np.quantile(sample, qs, axis=0).T, n_groups)
        pop.learn_many(sample, groups)
        return pop

    def bin_index(self, X: np.ndarray, features: slice | np.ndarray | None = None) -> np.ndarray:
        """Bin of each feature of each row: int array shaped like ``X`` (2-D), or like
        ``X[:, features]`` when only those features are wanted."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if features is None:
            return (X[:, :, None] >= self.edges[None, :, :]).sum(axis=2)
        return (X[:, features, None] >= self.edges[None, features, :]).sum(axis=2)

    def bin_counts(self, X: np.ndarray) -> np.ndarray:
        """``(d, n_bins)`` histogram of the rows of ``X``."""
        b = self.bin_index(X)
        flat = b + np.arange(self.n_features) * self.n_bins
        return np.bincount(flat.ravel(), minlength=self.n_features * self.n_bins).reshape(
            self.n_features, self.n_bins
        )

    def learn_one(self, x: np.ndarray) -> None:
        self.learn_many(np.atleast_2d(x))

    def learn_many(self, X: np.ndarray, groups: np.ndarray | None = None) -> None:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        self.counts += self.bin_counts(X)
        self._log_p = self._p = self._group_log_p = None
        self.gaussian.update_many(X)
        if groups is not None:
            for g in range(self.n_groups):
                self.group_counts[g] += self.bin_counts(X[groups == g])

    def log_bin_probability(self) -> np.ndarray:
        """``(d, n_bins)`` log-probabilities, with one pseudo-count per bin (read-only:
        cached until :meth:`learn_many`)."""
        if self._log_p is None:
            c = self.counts + 1.0
            self._log_p = np.log(c / c.sum(axis=1, keepdims=True))
            self._log_p.flags.writeable = False
        return self._log_p

    def bin_probability(self) -> np.ndarray:
        """``exp`` of :meth:`log_bin_probability` (read-only, cached likewise)."""
        if self._p is None:
            self._p = np.exp(self.log_bin_probability())
            self._p.flags.writeable = False
        return self._p

    def group_log_bin_probability(self) -> np.ndarray:
        """``(n_groups, d, n_bins)`` log-probabilities per group, one pseudo-count per bin
        (read-only, cached likewise)."""
        if self._group_log_p is None:
            c = self.group_counts + 1.0
            self._group_log_p = np.log(c / c.sum(axis=2, keepdims=True))
            self._group_log_p.flags.writeable = False
        return self._group_log_p

    def to_bytes(self) -> bytes:
        head, mean, scatter = self.gaussian.arrays()
        return pack(self._MAGIC, self.edges, self.counts, head, mean, scatter, self.group_counts)

    @classmethod
    def from_bytes(cls, b: bytes) -> Population:
        edges, counts, head, mean, scatter, *grouped = unpack(b, cls._MAGIC)
        # Read once at start-up and shared by every profile: a damaged value would not
        # fail here but turn scores into NaN or inf for everyone.
        if edges.ndim != 2 or not np.isfinite(edges).all() or (np.diff(edges, axis=1) < 0).any():
            raise ValueError("population bin edges damaged")
        d, n_bins = edges.shape[0], edges.shape[1] + 1
        for c in (counts, *grouped):
            if c.shape[-2:] != (d, n_bins) or not np.isfinite(c).all() or (c < 0).any():
                raise ValueError("population counts damaged")
        if not all(np.isfinite(a).all() for a in (head, mean, scatter)):
            raise ValueError("population moments damaged")
        pop = cls(edges)
        pop.counts = counts  # before any probability is cached
        pop.gaussian = RunningGaussian.from_arrays(head, mean, scatter)
        if grouped:  # files written before groups existed have none
            pop.group_counts = grouped[0]  # before any probability is cached
        return pop
