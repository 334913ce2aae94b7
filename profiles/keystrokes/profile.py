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
>>> len(alice.to_bytes()) < 1000  # only the cells typed are stored (dense: 4 212 bytes)
True
>>> again = KeystrokeProfile.from_bytes(alice.to_bytes(), pop)
>>> w = typist(100, 200)
>>> again.score_one(w) == alice.score_one(w)
True
"""

from __future__ import annotations

import math
import struct
from typing import Final

import numpy as np

from profiles.keystrokes.binning import N_BINS, n_kinds, window_cells
from profiles.keystrokes.population import KeystrokePopulation
from profiles.keystrokes.windows import KeystrokeWindow

__all__ = ["PRIOR_EVENTS", "KeystrokeProfile"]

_MAGIC: Final = b"CKU2"
_HEADER: Final = struct.Struct("<4sBBdIB")  # magic, n_classes, n_bins, prior, n_windows, layout
_MAGIC_V1: Final = b"CKU1"
_HEADER_V1: Final = struct.Struct(
    "<4sBBHfI"
)  # magic, n_classes, n_bins, reserved, prior, n_windows
_CAP: Final = 255
#: Weight, in events, of the population in a user's smoothed histograms (every profile's).
PRIOR_EVENTS: Final = 10.0
# Layouts of the counts after the header. A user types a few hundred of the 4 212
# cells (a profile enrolled on ~2 000 presses: 800-1 100), so a bitmap of the
# non-zero cells and their values is a third of the dense array; a profile that
# has seen no typing stores nothing.
_EMPTY, _SPARSE, _DENSE = 0, 1, 2


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

    def __init__(self, population: KeystrokePopulation, prior_events: float = PRIOR_EVENTS) -> None:
        self.population = population
        self.prior_events = prior_events
        self.counts = np.zeros((n_kinds(population.n_classes), N_BINS), dtype=np.uint8)
        # Events per kind, derived from counts (not serialised): saves a gather per score.
        # At most 12 bins x 255, so uint16: a worker holds one per user it judges (702
        # bytes, not 2 808 in float64), and scores read them widened, exactly.
        self._totals = np.zeros(self.counts.shape[0], dtype=np.uint16)
        self.n_windows = 0

    def learn_one(self, window: KeystrokeWindow) -> None:
        self.learn_cells(window_cells(window))

    def learn_cells(self, cells: np.ndarray) -> None:
        """Learn from precomputed cells (see :meth:`score_cells`)."""
        # Whole-array ops on ~4k cells beat per-cell bookkeeping (unique, isin) by far.
        updated = np.bincount(cells, minlength=self.counts.size)
        updated += self.counts.reshape(-1)
        if updated.max() > _CAP:
            # A kind overflows: halve it (all its bins) until it fits again.
            block = updated.reshape(self.counts.shape)
            while (full := block.max(axis=1) > _CAP).any():
                block[full] >>= 1
            self.counts = updated.astype(np.uint8).reshape(self.counts.shape)
            self._totals = self.counts.sum(axis=1, dtype=np.uint16)
        else:
            # The events per kind grow by the window's cells of that kind: the same
            # integers as summing the counts again, without a pass over all 4 212.
            self.counts = updated.astype(np.uint8).reshape(self.counts.shape)
            added = np.bincount(cells // N_BINS, minlength=self._totals.size)
            np.add(self._totals, added, out=self._totals, casting="unsafe", dtype=np.uint16)
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
        flat = self.counts.reshape(-1)
        nonzero = flat != 0
        n = int(np.count_nonzero(nonzero))
        bitmap_size = (flat.size + 7) // 8
        if n == 0:
            layout, body = _EMPTY, b""
        elif bitmap_size + n < flat.size:
            layout, body = _SPARSE, np.packbits(nonzero).tobytes() + flat[nonzero].tobytes()
        else:
            layout, body = _DENSE, flat.tobytes()
        header = _HEADER.pack(
            _MAGIC, self.population.n_classes, N_BINS, self.prior_events, self.n_windows, layout
        )
        return header + body

    @staticmethod
    def max_bytes(n_classes: int) -> int:
        """Largest :meth:`to_bytes`: the dense layout (the sparse one is written only
        when it is smaller)."""
        return _HEADER.size + n_kinds(n_classes) * N_BINS

    @classmethod
    def from_bytes(cls, data: bytes, population: KeystrokePopulation) -> KeystrokeProfile:
        """Read this version's layout or the dense ``CKU1`` one."""
        if data[:4] == _MAGIC_V1:
            magic, n_classes, n_bins, _, prior, n_windows = _HEADER_V1.unpack_from(data)
            layout, offset = _DENSE, _HEADER_V1.size
        else:
            magic, n_classes, n_bins, prior, n_windows, layout = _HEADER.unpack_from(data)
            offset = _HEADER.size
        if magic not in (_MAGIC, _MAGIC_V1) or n_bins != N_BINS:
            raise ValueError("not a keystroke profile of this version")
        if n_classes != population.n_classes:
            raise ValueError("keystroke profile of another class table")
        if not (math.isfinite(prior) and prior > 0):
            raise ValueError("keystroke profile prior out of range")
        profile = cls(population, prior_events=prior)
        flat = profile.counts.reshape(-1)
        if layout == _DENSE:
            flat[:] = np.frombuffer(data, np.uint8, flat.size, offset)
        elif layout == _SPARSE:
            bitmap = np.frombuffer(data, np.uint8, (flat.size + 7) // 8, offset)
            nonzero = np.unpackbits(bitmap, count=flat.size).astype(bool)
            offset += bitmap.size
            flat[nonzero] = np.frombuffer(data, np.uint8, int(nonzero.sum()), offset)
        elif layout != _EMPTY:
            raise ValueError(f"unknown keystroke profile layout {layout}")
        profile._totals = profile.counts.sum(axis=1, dtype=np.uint16)
        profile.n_windows = n_windows
        return profile
