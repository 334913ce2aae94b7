"""A user's keystroke profile: byte-sized timing histograms scored against the population.

For every timed kind (dwell per key class, down-down and up-down flight per
class pair) the profile keeps a 12-bin histogram of the user's timings in
``uint8`` counts. When a bin of a kind would overflow, the whole kind is halved:
the histogram keeps its shape and slowly forgets old typing, which is what a
continuously updated profile should do anyway.

The probability of a bin under the user is the user's count smoothed towards
the population with a prior of ``prior_events`` events (MAP adaptation), so a
kind the user has rarely typed falls back to the population and weighs nothing.
A window's score is the mean, over its timing events, of
``log P_population(bin) - log P_user(bin)``: positive when the window's timings
are more typical of people in general than of this user. Higher = more anomalous.

>>> from profiles.keystrokes.events import KeystrokePresses
>>> from profiles.keystrokes.windows import KeystrokeWindow
>>> rng = np.random.default_rng(0)
>>> def typist(dwell, flight, n=200):
...     t = np.cumsum(rng.gamma(8.0, flight / 8.0, n))
...     return KeystrokeWindow.from_presses(KeystrokePresses(
...         t_down_ms=t, dwell_ms=rng.gamma(20.0, dwell / 20.0, n),
...         key_class=rng.integers(0, 8, n).astype(np.int8)))
>>> pop = KeystrokePopulation()
>>> for d, f in [(70, 150), (110, 260), (90, 200), (130, 320)]:
...     pop.learn_one(typist(d, f))
>>> alice = KeystrokeProfile(pop)
>>> alice.learn_one(typist(70, 150))
>>> alice.score_one(typist(70, 150)) < alice.score_one(typist(130, 320))
True
>>> len(alice.to_bytes())
4228
>>> again = KeystrokeProfile.from_bytes(alice.to_bytes(), pop)
>>> w = typist(100, 200)
>>> again.score_one(w) == alice.score_one(w)
True
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

from profiles.keystrokes.binning import N_BINS, n_kinds, window_cells
from profiles.keystrokes.population import KeystrokePopulation
from profiles.keystrokes.windows import KeystrokeWindow

__all__ = ["KeystrokeProfile"]

_MAGIC: Final = b"CKU1"
_HEADER: Final = struct.Struct("<4sBBHfI")  # magic, n_classes, n_bins, reserved, prior, n_windows
_CAP: Final = 255


class KeystrokeProfile:
    """Per-user timing histograms (uint8) with a population-normalised score.

    Parameters
    ----------
    population
        The shared background model; not part of the serialised state.
    prior_events
        Weight, in events, of the population histogram in the user's smoothed
        histogram of each kind.
    """

    def __init__(self, population: KeystrokePopulation, prior_events: float = 10.0) -> None:
        self.population = population
        self.prior_events = prior_events
        self.counts = np.zeros((n_kinds(population.n_classes), N_BINS), dtype=np.uint8)
        # Events per kind, derived from counts (not serialised): saves a gather per score.
        self._totals = np.zeros(self.counts.shape[0], dtype=np.float64)
        self.n_windows = 0

    def learn_one(self, window: KeystrokeWindow) -> None:
        self.learn_cells(window_cells(window))

    def learn_cells(self, cells: np.ndarray) -> None:
        """Learn from precomputed cells (see :meth:`score_cells`)."""
        # Whole-array ops on ~4k cells beat per-cell bookkeeping (unique, isin) by far.
        updated = self.counts.reshape(-1) + np.bincount(cells, minlength=self.counts.size)
        if updated.max() > _CAP:
            # A kind overflows: halve it (all its bins) until it fits again.
            block = updated.reshape(self.counts.shape)
            while (full := block.max(axis=1) > _CAP).any():
                block[full] >>= 1
        self.counts = updated.astype(np.uint8).reshape(self.counts.shape)
        self._totals = self.counts.sum(axis=1, dtype=np.float64)
        self.n_windows += 1

    def score_one(self, window: KeystrokeWindow) -> float:
        return self.score_cells(window_cells(window))

    def score_cells(self, cells: np.ndarray) -> float:
        """Score from precomputed cells.

        The stream processor computes ``cells = window_cells(window)`` once and
        calls ``score_cells(cells)`` then ``learn_cells(cells)``; the evaluation
        scores one window's cells against every profile.
        """
        if cells.size == 0:
            return 0.0
        return float(np.mean(self.cell_scores(cells)))

    def cell_scores(self, cells: np.ndarray) -> np.ndarray:
        """Log-ratio ``log P_population - log P_user`` of each timing event.

        A streaming profile scores each event once, when it arrives and before it
        is learned, and averages a rolling set of these: every score it relies on
        is then out-of-sample, during enrollment as much as afterwards.
        """
        p_pop = self.population.prob(cells)
        tau = self.prior_events
        p_user = (self.counts.reshape(-1)[cells] + tau * p_pop) / (
            self._totals[cells // N_BINS] + tau
        )
        return np.log(p_pop / p_user)

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(
            _MAGIC, self.population.n_classes, N_BINS, 0, self.prior_events, self.n_windows
        )
        return header + self.counts.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, population: KeystrokePopulation) -> KeystrokeProfile:
        magic, n_classes, n_bins, _, prior, n_windows = _HEADER.unpack_from(data)
        if magic != _MAGIC or n_bins != N_BINS or n_classes != population.n_classes:
            raise ValueError("not a keystroke profile of this version / class table")
        profile = cls(population, prior_events=prior)
        counts = np.frombuffer(data, dtype=np.uint8, offset=_HEADER.size)
        profile.counts = counts.reshape(profile.counts.shape).copy()
        profile._totals = profile.counts.sum(axis=1, dtype=np.float64)
        profile.n_windows = n_windows
        return profile
