"""Gaussian density of one user's feature vectors (one-class detector).

:class:`RunningGaussian` keeps the sufficient statistics (count, mean, scatter
matrix) with Welford's update, so it learns one vector at a time and never
stores samples. :class:`GaussianNLL` scores a vector by its negative
log-likelihood under that Gaussian: the Mahalanobis distance plus the
log-determinant, so that a user with a wide profile is not favoured.

>>> rng = np.random.default_rng(0)
>>> det = GaussianNLL()
>>> for x in rng.normal(size=(500, 3)):
...     det.learn_one(x)
>>> det.score_one(np.zeros(3)) < det.score_one(np.full(3, 4.0))
True
>>> det2 = GaussianNLL.from_bytes(det.to_bytes())
>>> bool(np.isclose(det2.score_one(np.ones(3)), det.score_one(np.ones(3))))
True
>>> len(det.to_bytes()) < 200
True
"""

from __future__ import annotations

import numpy as np

from profiles.detectors._codec import pack, unpack

_LOG_2PI = float(np.log(2 * np.pi))


class RunningGaussian:
    """Online mean and covariance (Welford / Chan), full or diagonal.

    ``ridge`` is added to the variances, relative to their scale, so that the
    covariance stays invertible with few samples or constant features.

    >>> g = RunningGaussian()
    >>> g.update_many(np.array([[0.0, 1.0], [2.0, 3.0]]))
    >>> g.mean.tolist(), np.round(g.covariance(ridge=0), 6).tolist()
    ([1.0, 2.0], [[2.0, 2.0], [2.0, 2.0]])
    """

    def __init__(self, diagonal: bool = False) -> None:
        self.diagonal = diagonal
        self.n = 0.0
        self.mean = np.empty(0)
        self.scatter = np.empty(0)  # sum of outer products of deviations (or squares)

    def _init(self, d: int) -> None:
        self.mean = np.zeros(d)
        self.scatter = np.zeros(d) if self.diagonal else np.zeros((d, d))

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        if self.n == 0:
            self._init(x.size)
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        if self.diagonal:
            self.scatter += delta * (x - self.mean)
        else:
            self.scatter += np.outer(delta, x - self.mean)

    def update_many(self, X: np.ndarray) -> None:
        X = np.asarray(X, dtype=np.float64)
        if X.shape[0] == 0:
            return
        if self.n == 0:
            self._init(X.shape[1])
        m = X.shape[0]
        mean_b = X.mean(axis=0)
        dev = X - mean_b
        scatter_b = (dev * dev).sum(axis=0) if self.diagonal else dev.T @ dev
        delta = mean_b - self.mean
        total = self.n + m
        corr = delta * delta if self.diagonal else np.outer(delta, delta)
        self.scatter = self.scatter + scatter_b + corr * (self.n * m / total)
        self.mean = self.mean + delta * (m / total)
        self.n = total

    def covariance(self, ridge: float = 1e-3) -> np.ndarray:
        cov = self.scatter / max(self.n - 1.0, 1.0)
        var = cov if self.diagonal else np.diag(cov)
        reg = ridge * var + 1e-9
        return cov + reg if self.diagonal else cov + np.diag(reg)

    def arrays(self) -> list[np.ndarray]:
        return [np.array([self.n, float(self.diagonal)]), self.mean, self.scatter]

    @classmethod
    def from_arrays(
        cls, head: np.ndarray, mean: np.ndarray, scatter: np.ndarray
    ) -> RunningGaussian:
        g = cls(diagonal=bool(head[1]))
        g.n, g.mean, g.scatter = float(head[0]), mean.astype(np.float64), scatter.astype(np.float64)
        return g


class GaussianLogDensity:
    """Frozen log-density of a Gaussian, precomputed for fast scoring."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray) -> None:
        self.mean = mean
        self.diagonal = cov.ndim == 1
        if self.diagonal:
            self.precision = 1.0 / cov
            logdet = float(np.log(cov).sum())
        else:
            chol = np.linalg.cholesky(cov)
            inv_chol = np.linalg.inv(chol)
            self.precision = inv_chol.T @ inv_chol
            logdet = 2.0 * float(np.log(np.diag(chol)).sum())
        self.const = -0.5 * (logdet + mean.size * _LOG_2PI)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Log-density of each row of ``X`` (or of one vector)."""
        dev = np.asarray(X, dtype=np.float64) - self.mean
        if self.diagonal:
            maha = (dev * dev * self.precision).sum(axis=-1)
        else:
            maha = ((dev @ self.precision) * dev).sum(axis=-1)
        return self.const - 0.5 * maha


class GaussianNLL:
    """One-class detector: negative log-likelihood under the user's Gaussian."""

    _MAGIC = b"CGN1"

    def __init__(self, diagonal: bool = False, ridge: float = 1e-3) -> None:
        self.stats = RunningGaussian(diagonal=diagonal)
        self.ridge = ridge
        self._density: GaussianLogDensity | None = None

    def learn_one(self, x: np.ndarray) -> None:
        self.stats.update(x)
        self._density = None

    def learn_many(self, X: np.ndarray) -> None:
        self.stats.update_many(X)
        self._density = None

    def _log_density(self) -> GaussianLogDensity:
        if self._density is None:
            self._density = GaussianLogDensity(self.stats.mean, self.stats.covariance(self.ridge))
        return self._density

    def score_many(self, X: np.ndarray) -> np.ndarray:
        if self.stats.n < 2:
            return np.zeros(np.atleast_2d(X).shape[0])
        return -self._log_density()(np.atleast_2d(X))

    def score_one(self, x: np.ndarray) -> float:
        return float(self.score_many(x)[0])

    def to_bytes(self) -> bytes:
        head, mean, scatter = self.stats.arrays()
        if not self.stats.diagonal and scatter.size:
            # The scatter matrix is symmetric: store its upper triangle only.
            scatter = scatter[np.triu_indices(mean.size)]
        return pack(
            self._MAGIC,
            np.r_[head, self.ridge],
            mean.astype(np.float32),
            scatter.astype(np.float32),
        )

    @classmethod
    def from_bytes(cls, b: bytes) -> GaussianNLL:
        head, mean, scatter = unpack(b, cls._MAGIC)
        det = cls(diagonal=bool(head[1]), ridge=float(head[2]))
        if not det.stats.diagonal and mean.size:
            full = np.zeros((mean.size, mean.size))
            full[np.triu_indices(mean.size)] = scatter
            scatter = full + np.triu(full, 1).T
        det.stats = RunningGaussian.from_arrays(head[:2], mean, scatter)
        return det
