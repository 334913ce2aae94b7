#!/usr/bin/env python3
"""The type-conditional mouse ratio plus the type prior, in the takeover protocol.

Offline measurement behind docs/evaluation.md, "The type prior put back" (not
adopted). ``cadence evaluate takeover --mouse DIR`` runs unchanged, except that the
profile's mouse model is swapped for the variant named on the command line and the
background's mouse population is refitted on ``DIR/training_files`` with bin counts
per action type (the shipped background has none):

- ``pooled``: the shipped ``HistogramRatio`` on the refitted background (it gives the
  shipped figures: the baseline of an A/B that refits the background);
- ``typed<w>`` (``typed0``, ``typed1``, ``typed3``, ...): ``TypedHistogramRatio`` plus
  ``w x (log P_pop(type) - log P_user(type))`` per action, the user's type probabilities
  MAP-adapted from the population's with the histograms' relevance. The type counts are
  kept apart from the histograms, whose 4 095 cap halves each type on its own.

The variants' state is not the profile's record format (the type counts are appended
to the detector's bytes): a measurement, not a candidate for the wire.

    .venv/bin/python bench/typed_prior_takeover.py typed1 \\
        --mouse ../shared/datasets/balabit --json /tmp/takeover-typed1.json
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collectors.datasets import balabit  # noqa: E402
from profiles import user  # noqa: E402
from profiles.background import Background  # noqa: E402
from profiles.detectors.histogram_ratio import RELEVANCE  # noqa: E402
from profiles.detectors.typed_histogram_ratio import TypedHistogramRatio  # noqa: E402
from profiles.mouse import TYPE_COLUMNS, action_types, extract  # noqa: E402
from profiles.population import Population  # noqa: E402
from streams import cli  # noqa: E402
from streams.recordings import balabit_to_mouse_events  # noqa: E402

_N_TYPES = len(TYPE_COLUMNS)
_COUNTS = struct.Struct(f"<{_N_TYPES}d")


def typed_background(training: Path) -> Background:
    """The shipped background with its mouse population refitted per action type."""
    rows = [
        extract(balabit_to_mouse_events(balabit.read_session(path)))
        for path in sorted(training.glob("*/*"))
        if path.is_file()
    ]
    actions = np.vstack([r for r in rows if r.shape[0]])
    mouse = Population.fit(actions, groups=action_types(actions), n_groups=_N_TYPES)
    return Background(Background.default().keystrokes, mouse)


def typed_with_prior(weight: float) -> type[TypedHistogramRatio]:
    class TypedWithPrior(TypedHistogramRatio):
        def __init__(self, population: Population, max_count: int | None = None) -> None:
            super().__init__(population, TYPE_COLUMNS)
            self.type_counts = np.zeros(_N_TYPES)
            per_type = population.group_counts[:, 0, :].sum(axis=1)
            self.p_pop = per_type / per_type.sum()

        def _types(self, bins: np.ndarray) -> np.ndarray:
            return np.asarray(bins[:, 0] // self._group_stride)

        def learn_bins(self, bins: np.ndarray) -> None:
            super().learn_bins(bins)
            self.type_counts += np.bincount(self._types(bins), minlength=_N_TYPES)

        def score_bins(self, bins: np.ndarray) -> np.ndarray:
            scores = super().score_bins(bins)
            if weight == 0.0:
                return scores
            p_user = (self.type_counts + RELEVANCE * self.p_pop) / (
                self.type_counts.sum() + RELEVANCE
            )
            t = self._types(bins)
            return np.asarray(scores + weight * (np.log(self.p_pop[t]) - np.log(p_user[t])))

        def to_bytes(self) -> bytes:
            return super().to_bytes() + _COUNTS.pack(*self.type_counts)

        def max_bytes(self) -> int:
            return super().max_bytes() + _COUNTS.size

        @classmethod
        def from_bytes(  # type: ignore[override]
            cls, b: bytes, *, population: Population | None = None, max_count: int | None = None
        ) -> TypedWithPrior:
            assert population is not None
            head, tail = b[: -_COUNTS.size], b[-_COUNTS.size :]
            det = cls(population)
            det.counts = TypedHistogramRatio.from_bytes(head, population=population).counts
            det.type_counts = np.array(_COUNTS.unpack(tail))
            return det

    return TypedWithPrior


def main(argv: list[str]) -> int:
    if len(argv) < 3 or "--mouse" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    variant, rest = argv[0], argv[1:]
    root = Path(rest[rest.index("--mouse") + 1])
    background = typed_background(root / "training_files")
    Background.default = staticmethod(lambda: background)  # type: ignore[method-assign]
    if variant.startswith("typed"):
        user.HistogramRatio = typed_with_prior(float(variant[5:] or 0))  # type: ignore[misc]
    elif variant != "pooled":
        print(f"unknown variant {variant!r}: pooled or typed<w>", file=sys.stderr)
        return 2
    return cli.main(["evaluate", "takeover", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
