#!/usr/bin/env python3
"""The type-conditional mouse ratio plus the type prior, in the takeover protocol.

Offline measurement behind docs/evaluation.md, "The type prior put back" (not
adopted). ``cadence evaluate takeover --mouse DIR`` runs unchanged, except that the
profile's mouse model is swapped for the variant named on the command line, on the
shipped background (whose mouse population counts its bins per action type since
cadence-profile-4; before, this harness refitted it so):

- ``pooled``: ``HistogramRatio``, the mouse model of cadence-profile-3 (the baseline
  of the A/B; it gives that version's figures);
- ``typed<w>`` (``typed0``, ``typed1``, ``typed3``, ...): ``TypedHistogramRatio`` (the
  profile's model since cadence-profile-4: ``typed0`` gives the shipped figures) plus
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

from profiles import modalities, profile_bytes  # noqa: E402
from profiles.detectors.histogram_ratio import RELEVANCE, HistogramRatio  # noqa: E402
from profiles.detectors.typed_histogram_ratio import TypedHistogramRatio  # noqa: E402
from profiles.mouse import TYPE_COLUMNS  # noqa: E402
from profiles.population import Population  # noqa: E402
from streams import cli  # noqa: E402

_N_TYPES = len(TYPE_COLUMNS)
_COUNTS = struct.Struct(f"<{_N_TYPES}d")


class Pooled(HistogramRatio):
    """The mouse model of cadence-profile-3, with that version's uint16 count cap."""

    def __init__(self, population: Population) -> None:
        super().__init__(population, max_count=0xFFFF)

    @classmethod
    def from_bytes(  # type: ignore[override]
        cls, b: bytes, *, population: Population | None = None
    ) -> HistogramRatio:
        return HistogramRatio.from_bytes(b, population=population, max_count=0xFFFF)


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
    model: type[TypedHistogramRatio]
    if variant.startswith("typed"):
        model = typed_with_prior(float(variant[5:] or 0))
    elif variant == "pooled":
        model = Pooled  # type: ignore[assignment]
        # A stored pooled model is this variant's own, not one to enrol again.
        profile_bytes._POOLED_MOUSE_MAGIC = b"\0" * 4  # type: ignore[misc]
    else:
        print(f"unknown variant {variant!r}: pooled or typed<w>", file=sys.stderr)
        return 2
    # Everywhere the profile builds or decodes its mouse model.
    for module in (modalities, profile_bytes):
        module.TypedHistogramRatio = model  # type: ignore[misc]
    return cli.main(["evaluate", "takeover", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
