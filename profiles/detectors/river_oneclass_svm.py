"""River's online one-class SVM (``anomaly.OneClassSVM``), features standardised upstream.

The configuration River's documentation recommends: ``StandardScaler | OneClassSVM``
with ``nu = 0.2``. A linear one-class SVM learnt by SGD; compared in the evaluation,
not used by the profile (see :mod:`profiles.detectors._river`).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = RiverOneClassSVM()
>>> det.learn_many(rng.normal(size=(300, 3)))
>>> usual, odd = det.score_many(np.array([[0.0, 0.0, 0.0], [6.0, 6.0, 6.0]]))
>>> bool(usual < odd)
True
"""

from __future__ import annotations

from profiles.detectors._river import RiverAnomaly, river_module


class RiverOneClassSVM(RiverAnomaly):
    def __init__(self, nu: float = 0.2) -> None:
        anomaly, preprocessing = river_module("anomaly"), river_module("preprocessing")
        super().__init__(preprocessing.StandardScaler() | anomaly.OneClassSVM(nu=nu))
