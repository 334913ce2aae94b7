"""The background: how people in general type and move, shared by every profile.

Both modalities score a window by how much more it looks like its owner than
like anyone (GMM-UBM style), so every profile needs the same population models:
the keystroke timing histograms (:class:`KeystrokePopulation`) and the mouse
action feature quantiles (:class:`Population`). They are fitted on *enrollment*
recordings of many people, never on what is being judged, and shipped as one
small artifact (``profiles/data/background.bin``); an operator can refit it on
their own enrollment data with ``cadence profiles fit-background`` and point
``CADENCE_BACKGROUND`` at the result. The shipped file was fitted on whole public
recordings, so the evaluations that hold part of those recordings out fit their own
population on the enrolment part (``profiles.evaluation``), never on what they judge.

The mouse population also counts its bins per action type (move, point-and-click,
drag-and-drop): the profile compares each action with how people make *that kind*
of action (:mod:`profiles.detectors.typed_histogram_ratio`). A background written
before it did (``cadence-profile-3`` and earlier) is refused with that reason.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Final

import numpy as np

from profiles.keystrokes import KeystrokeEvents, KeystrokePopulation, iter_windows, pair_presses
from profiles.keystrokes import window_cells as keystroke_cells
from profiles.mouse import TYPE_COLUMNS, MouseEvents, action_types, extract
from profiles.population import Population

_MAGIC: Final = b"CBG1"
_HEADER: Final = struct.Struct("<4sII")
#: Windows the keystroke population is learned from; the same length the
#: evaluation uses, so the population sees the same cell mix as the profiles.
ENROLL_WINDOW_PRESSES: Final = 100


@dataclass(frozen=True, slots=True)
class Background:
    keystrokes: KeystrokePopulation
    mouse: Population

    def to_bytes(self) -> bytes:
        k, m = self.keystrokes.to_bytes(), self.mouse.to_bytes()
        return _HEADER.pack(_MAGIC, len(k), len(m)) + k + m

    @classmethod
    def from_bytes(cls, data: bytes) -> Background:
        magic, nk, nm = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a cadence background model")
        if _HEADER.size + nk + nm != len(data):
            raise ValueError("background model truncated or padded")
        k = data[_HEADER.size : _HEADER.size + nk]
        m = data[_HEADER.size + nk : _HEADER.size + nk + nm]
        mouse = Population.from_bytes(m)
        if mouse.n_groups != len(TYPE_COLUMNS):
            raise ValueError(
                "background model without per-action-type mouse counts (written before"
                " cadence-profile-4): refit it with `cadence profiles fit-background`"
            )
        return cls(KeystrokePopulation.from_bytes(k), mouse)

    @classmethod
    def default(cls) -> Background:
        """The shipped background, fitted on public enrollment recordings (see docs)."""
        data = resources.files("profiles").joinpath("data/background.bin").read_bytes()
        return cls.from_bytes(data)


def fit_background(
    keystroke_sessions: Iterable[KeystrokeEvents], mouse_sessions: Iterable[MouseEvents]
) -> Background:
    """Fit both population models on enrollment sessions of many people (the mouse
    population with its bin counts per action type)."""
    return Background(fit_keystrokes(keystroke_sessions), fit_mouse(mouse_sessions))


def fit_keystrokes(sessions: Iterable[KeystrokeEvents]) -> KeystrokePopulation:
    """The keystroke population, from enrollment sessions of many people."""
    keystrokes = KeystrokePopulation()
    for events in sessions:
        for window in iter_windows(pair_presses(events), ENROLL_WINDOW_PRESSES):
            keystrokes.learn_cells(keystroke_cells(window))
    return keystrokes


def fit_mouse(sessions: Iterable[MouseEvents]) -> Population:
    """The mouse population (bin counts per action type), from enrollment sessions."""
    rows = [extract(events) for events in sessions]
    actions = np.vstack([r for r in rows if r.shape[0]])
    return Population.fit(actions, groups=action_types(actions), n_groups=len(TYPE_COLUMNS))
