"""Gaussian likelihood ratio: the user's Gaussian against the population's.

Scores ``log N(x; population) - log N(x; user)``: a quadratic discriminant
between "anyone" and "this user", trained online from sufficient statistics
(count, mean, scatter). The user covariance is shrunk toward the population's
by ``relevance`` pseudo-vectors (MAP adaptation), which keeps it invertible
and the ratio near 0 while the user has little data.

>>> from profiles.population import Population
>>> rng = np.random.default_rng(0)
>>> pop = Population.fit(rng.normal(0.0, 2.0, size=(2000, 3)))
>>> det = GaussianRatio(pop)
>>> det.score_one(np.zeros(3))
0.0
>>> det.learn_many(rng.normal(1.0, 0.5, size=(300, 3)))
>>> det.score_one(np.ones(3)) < 0 < det.score_one(np.full(3, -3.0))
True
>>> det2 = GaussianRatio.from_bytes(det.to_bytes(), population=pop)
>>> bool(np.isclose(det2.score_one(np.ones(3)), det.score_one(np.ones(3)), atol=1e-4))
True
"""

from __future__ import annotations

import numpy as np

from profiles.detectors._codec import pack, unpack
from profiles.detectors.gaussian import GaussianLogDensity, RunningGaussian
from profiles.detectors.histogram_ratio import RELEVANCE
from profiles.population import Population


class GaussianRatio:
    """Per-user Gaussian scored as a log-likelihood ratio against the population Gaussian."""

    _MAGIC = b"CGR1"

    def __init__(self, population: Population, relevance: float = RELEVANCE) -> None:
        self.population = population
        self.relevance = relevance
        self.stats = RunningGaussian()
        self._user: GaussianLogDensity | None = None
        self._pop: GaussianLogDensity | None = None

    def learn_one(self, x: np.ndarray) -> None:
        self.stats.update(x)
        self._user = None

    def learn_many(self, X: np.ndarray) -> None:
        self.stats.update_many(X)
        self._user = None

    def _densities(self) -> tuple[GaussianLogDensity, GaussianLogDensity]:
        pg = self.population.gaussian
        pop_cov = pg.covariance()
        if self._pop is None:
            self._pop = GaussianLogDensity(pg.mean, pop_cov)
        if self._user is None:
            n, r = self.stats.n, self.relevance
            if n == 0:
                mean, cov = pg.mean, pop_cov
            else:
                w = n / (n + r)
                mean = w * self.stats.mean + (1 - w) * pg.mean
                user_cov = self.stats.scatter / n
                cov = w * user_cov + (1 - w) * pop_cov
                cov = cov + np.diag(1e-3 * np.diag(cov) + 1e-9)
            self._user = GaussianLogDensity(mean, cov)
        return self._pop, self._user

    def score_many(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(X)
        if self.stats.n == 0:
            return np.zeros(X.shape[0])
        pop, user = self._densities()
        return pop(X) - user(X)

    def score_one(self, x: np.ndarray) -> float:
        return float(self.score_many(x)[0])

    def to_bytes(self) -> bytes:
        head, mean, scatter = self.stats.arrays()
        if scatter.size:
            scatter = scatter[np.triu_indices(mean.size)]
        return pack(
            self._MAGIC,
            np.r_[head, self.relevance],
            mean.astype(np.float32),
            scatter.astype(np.float32),
        )

    @classmethod
    def from_bytes(cls, b: bytes, *, population: Population | None = None) -> GaussianRatio:
        if population is None:
            raise ValueError("GaussianRatio needs the shared population to be restored")
        head, mean, scatter = unpack(b, cls._MAGIC)
        det = cls(population, relevance=float(head[2]))
        if mean.size:
            full = np.zeros((mean.size, mean.size))
            full[np.triu_indices(mean.size)] = scatter
            scatter = full + np.triu(full, 1).T
        det.stats = RunningGaussian.from_arrays(head[:2], mean, scatter)
        return det
