"""Anomaly detectors over fixed-length feature vectors, one concept per module.

Every detector follows the same small, River-like contract so that any
modality (mouse, keystrokes) can plug into any detector:

- ``learn_one(x: np.ndarray) -> None`` — update the per-user state with one vector;
- ``score_one(x: np.ndarray) -> float`` — higher means more anomalous;
- ``to_bytes() -> bytes`` / ``from_bytes(b) -> Self`` — compact, pickle-free state.
"""
