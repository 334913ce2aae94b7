"""The population (background) timing model: how people in general type, per cell.

A user's typing is only distinctive relative to everyone else's: a slow
space-to-letter flight says little if everybody is slow there. The population
model pools the timing histograms of all enrolled users; each user's profile
scores a window by how much more likely its timings are under the user's
histogram than under this one (the GMM-UBM recipe of speaker verification,
with histograms instead of Gaussians).

It is one shared object per deployment (built from enrolment data, never from
the windows being scored), so its size does not count per user.

>>> from profiles.keystrokes.events import KeystrokePresses
>>> from profiles.keystrokes.windows import KeystrokeWindow
>>> w = KeystrokeWindow.from_presses(KeystrokePresses(
...     t_down_ms=np.array([0.0, 150.0, 260.0]), dwell_ms=np.array([90.0, 80.0, 95.0]),
...     key_class=np.array([1, 7, 3], dtype=np.int8)))
>>> pop = KeystrokePopulation()
>>> pop.learn_one(w)
>>> pop.n_events
7
>>> pop2 = KeystrokePopulation.from_bytes(pop.to_bytes())
>>> bool(np.allclose(pop2.log_prob(window_cells(w)), pop.log_prob(window_cells(w))))
True
"""

from __future__ import annotations

import math
import struct
from typing import Final

import numpy as np

from profiles.keystrokes.binning import N_BINS, n_kinds, window_cells
from profiles.keystrokes.events import N_CLASSES
from profiles.keystrokes.windows import KeystrokeWindow

__all__ = ["KeystrokePopulation"]

_MAGIC: Final = b"CKP1"
_HEADER: Final = struct.Struct("<4sBBf")  # magic, n_classes, n_bins, pseudo-count


class KeystrokePopulation:
    """Pooled timing histograms of many users, smoothed per kind.

    Parameters
    ----------
    n_classes
        Number of key classes (13 in ``collectors/keyclass.py``).
    pseudo_count
        Added to every cell before normalising, so that no timing is impossible.
    """

    def __init__(self, n_classes: int = N_CLASSES, pseudo_count: float = 0.5) -> None:
        self.n_classes = n_classes
        self.pseudo_count = pseudo_count
        self.counts = np.zeros((n_kinds(n_classes), N_BINS), dtype=np.float64)
        self._p: np.ndarray | None = None
        self._log_p: np.ndarray | None = None

    @property
    def n_events(self) -> int:
        return int(self.counts.sum())

    def learn_one(self, window: KeystrokeWindow) -> None:
        self.learn_cells(window_cells(window))

    def learn_cells(self, cells: np.ndarray) -> None:
        self.counts += np.bincount(cells, minlength=self.counts.size).reshape(self.counts.shape)
        self._p = None
        self._log_p = None

    def prob_table(self) -> np.ndarray:
        """P(bin | kind) for every cell, flat; cached until the next update."""
        if self._p is None:
            c = self.counts + self.pseudo_count
            self._p = (c / c.sum(axis=1, keepdims=True)).ravel()
        return self._p

    def prob(self, cells: np.ndarray) -> np.ndarray:
        return self.prob_table()[cells]

    def log_prob_table(self) -> np.ndarray:
        """log P(bin | kind) for every cell, flat; cached until the next update."""
        if self._log_p is None:
            self._log_p = np.log(self.prob_table())
        return self._log_p

    def log_prob(self, cells: np.ndarray) -> np.ndarray:
        return self.log_prob_table()[cells]

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(_MAGIC, self.n_classes, N_BINS, self.pseudo_count)
        return header + self.counts.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> KeystrokePopulation:
        magic, n_classes, n_bins, pseudo = _HEADER.unpack_from(data)
        if magic != _MAGIC or n_bins != N_BINS:
            raise ValueError("not a keystroke population of this version")
        if not (math.isfinite(pseudo) and pseudo > 0):
            raise ValueError("keystroke population pseudo-count damaged")
        pop = cls(n_classes=n_classes, pseudo_count=pseudo)
        counts = np.frombuffer(data, dtype="<f4", offset=_HEADER.size)
        if counts.size != pop.counts.size or not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError("keystroke population counts damaged")
        pop.counts = counts.astype(np.float64).reshape(pop.counts.shape)
        return pop
