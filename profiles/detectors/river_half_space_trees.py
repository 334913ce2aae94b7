"""River's Half-Space Trees (Tan, Ting & Liu 2011), features min-max scaled upstream.

HST expects features in [0, 1], hence River's ``MinMaxScaler`` in front, and its
defaults (10 trees of height 8, a reference window of 250 samples). Mass in
random half-spaces, counted over sliding windows: cheap to update, but ~1.2 MiB per
instance at larger sizes, and no score before its first window is full. Compared
in the evaluation, not used by the profile (see :mod:`profiles.detectors._river`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = RiverHalfSpaceTrees()
>>> det.learn_many(rng.uniform(0.4, 0.6, size=(600, 3)))
>>> usual, odd = det.score_many(np.array([[0.5, 0.5, 0.5], [0.95, 0.05, 0.95]]))
>>> bool(usual < odd)
True
"""

from __future__ import annotations

from profiles.detectors._river import RiverAnomaly, river_module


class RiverHalfSpaceTrees(RiverAnomaly):
    def __init__(self, seed: int = 0) -> None:
        anomaly, preprocessing = river_module("anomaly"), river_module("preprocessing")
        super().__init__(preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed))
