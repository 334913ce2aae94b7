"""River's anomaly models behind the detectors' numpy contract.

River learns and scores one sample at a time, as a ``dict`` of features; the
detectors here take numpy rows. The adapter converts, and keeps River's own
model as the per-user state. River models have no compact, pickle-free
encoding, so these detectors are for comparison in the evaluation only: a
profile's state must never be a pickle (``to_bytes`` refuses), and their size
is reported from a pickle that is measured, never loaded (:meth:`state_size`).
River is installed with the ``evaluation`` extra, not with the worker's.
"""

from __future__ import annotations

import importlib
import pickle
from types import ModuleType
from typing import Any

import numpy as np


def river_module(name: str) -> ModuleType:
    """``river.<name>``, or an error that says how to install River."""
    try:
        return importlib.import_module(f"river.{name}")
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "River's models need River: pip install 'cadence[evaluation]'"
        ) from exc


class RiverAnomaly:
    """A River anomaly model (usually a pipeline: scaler | detector); higher = more anomalous."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def learn_one(self, x: np.ndarray) -> None:
        self.model.learn_one(_sample(x))

    def learn_many(self, X: np.ndarray) -> None:
        for x in np.atleast_2d(X):
            self.learn_one(x)

    def score_one(self, x: np.ndarray) -> float:
        return float(self.model.score_one(_sample(x)))

    def score_many(self, X: np.ndarray) -> np.ndarray:
        return np.array([self.score_one(x) for x in np.atleast_2d(X)], dtype=np.float64)

    def state_size(self) -> int:
        """Bytes of the model pickled (a measure of its state; never unpickled)."""
        return len(pickle.dumps(self.model))

    def to_bytes(self) -> bytes:
        raise NotImplementedError("River's models have no compact, pickle-free encoding")


def _sample(x: np.ndarray) -> dict[int, float]:
    """A numpy row as River takes a sample: ``{feature index: value}``."""
    return dict(enumerate(np.asarray(x, dtype=float).tolist()))
