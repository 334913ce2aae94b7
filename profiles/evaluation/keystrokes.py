"""Offline keystroke evaluation: enrol every user, score test windows against every profile.

Protocol (the one the project is scored with): each user enrols on all their
enrolment sessions; every test session is cut into consecutive windows of
``n_presses`` key presses, and each window is scored against every enrolled
user's profile. A window is genuine for its own user's profile and an impostor
for all others. The figure is the mean, over users, of the per-user equal error
rate. The population model is learnt from the enrolment sessions of all
enrolled users only: test data never trains anything.

Methods (``METHODS``):

- ``histogram``: :class:`~profiles.keystrokes.KeystrokeProfile`, per-kind timing
  histograms scored as a likelihood ratio against the population (the default);
- ``histogram-raw``: the same histograms without the population normalisation
  (score = mean negative log-likelihood under the user), an ablation;
- ``vector:<module>``: :func:`~profiles.keystrokes.features.window_features`
  fed to a generic detector ``profiles.detectors.<module>`` (its first class
  with ``learn_one``/``score_one``), one per user.

>>> rng = np.random.default_rng(1)
>>> def session(flight, n=600):
...     t = np.cumsum(rng.gamma(8.0, flight / 8.0, n))
...     t = np.stack([t, t + rng.gamma(20.0, 4.0, n)], axis=1).ravel()
...     down = np.tile([True, False], n)
...     cls = np.repeat(rng.integers(0, 8, n), 2).astype(np.int8)
...     order = np.argsort(t, kind="stable")
...     return KeystrokeEvents(t[order], down[order], cls[order])
>>> users = {"ann": 150.0, "bob": 260.0, "cid": 380.0}
>>> enroll = {u: [session(f)] for u, f in users.items()}
>>> test = {u: [session(f)] for u, f in users.items()}
>>> res = evaluate_keystrokes(enroll, test, n_presses=100)
>>> res.eer_mean < 0.1, sorted(res.eer_by_user)
(True, ['ann', 'bob', 'cid'])
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profiles.keystrokes.binning import N_BINS, window_cells
from profiles.keystrokes.events import KeystrokeEvents, pair_presses
from profiles.keystrokes.features import window_features
from profiles.keystrokes.population import KeystrokePopulation
from profiles.keystrokes.profile import KeystrokeProfile
from profiles.keystrokes.windows import KeystrokeWindow, iter_windows
from profiles.metrics import equal_error_rate

__all__ = [
    "METHODS",
    "KeystrokeEvaluation",
    "check_method",
    "evaluate_keystrokes",
    "session_windows",
]

METHODS: tuple[str, ...] = ("histogram", "histogram-raw")


_Scorer = Callable[[Any], float]


@dataclass
class KeystrokeEvaluation:
    """Scores and per-user EERs of one evaluation run."""

    n_presses: int
    method: str
    genuine: dict[str, np.ndarray] = field(default_factory=dict)
    impostor: dict[str, np.ndarray] = field(default_factory=dict)
    eer_by_user: dict[str, float] = field(default_factory=dict)
    #: Users that have no EER, with the reason (they are left out of the mean, not counted as 0).
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def eer_mean(self) -> float:
        """NaN when no user could be scored (0 would read as a perfect result)."""
        if not self.eer_by_user:
            return float("nan")
        return float(np.mean(list(self.eer_by_user.values())))

    @property
    def eer_median(self) -> float:
        if not self.eer_by_user:
            return float("nan")
        return float(np.median(list(self.eer_by_user.values())))

    def summary(self) -> dict[str, Any]:
        return {
            "eer_mean": self.eer_mean,
            "eer_median": self.eer_median,
            "users": len(self.eer_by_user),
            "window": self.n_presses,
            "method": self.method,
            "eer_by_user": self.eer_by_user,
            "users_skipped": len(self.skipped),
            "skipped": self.skipped,
        }


def session_windows(
    sessions: Iterable[KeystrokeEvents], n_presses: int, tail: bool = False
) -> list[KeystrokeWindow]:
    """Windows of every session in turn (a window never spans two sessions); with
    ``tail``, each session's shorter last window too."""
    return [w for s in sessions for w in iter_windows(pair_presses(s), n_presses, tail=tail)]


def _histogram_method(
    enroll: Mapping[str, list[KeystrokeWindow]], normalise: bool
) -> tuple[Callable[[KeystrokeWindow], Any], dict[str, _Scorer]]:
    population = KeystrokePopulation()
    cells = {u: [window_cells(w) for w in ws] for u, ws in enroll.items()}
    for cs in cells.values():
        for c in cs:
            population.learn_cells(c)
    scorers: dict[str, _Scorer] = {}
    for user, cs in cells.items():
        profile = KeystrokeProfile(population)
        for c in cs:
            profile.learn_cells(c)
        if normalise:
            scorers[user] = profile.score_cells
        else:
            scorers[user] = _raw_scorer(profile)
    return window_cells, scorers


def _raw_scorer(profile: KeystrokeProfile) -> _Scorer:
    def score(cells: np.ndarray) -> float:
        # Same smoothed user histogram, but no division by the population.
        if cells.size == 0:
            return 0.0
        p_pop = np.exp(profile.population.log_prob(cells))
        n_kind = profile.counts[cells // N_BINS].sum(axis=1, dtype=np.float64)
        tau = profile.prior_events
        p_user = (profile.counts.ravel()[cells] + tau * p_pop) / (n_kind + tau)
        return float(-np.mean(np.log(p_user)))

    return score


def _vector_method(
    enroll: Mapping[str, list[KeystrokeWindow]], module: str
) -> tuple[Callable[[KeystrokeWindow], Any], dict[str, _Scorer]]:
    mod = importlib.import_module(f"profiles.detectors.{module}")
    detector_cls = next(
        obj
        for _, obj in inspect.getmembers(mod, inspect.isclass)
        if obj.__module__ == mod.__name__
        and hasattr(obj, "learn_one")
        and hasattr(obj, "score_one")
    )
    scorers: dict[str, _Scorer] = {}
    for user, ws in enroll.items():
        det: Any = detector_cls()
        for w in ws:
            det.learn_one(window_features(w))
        scorers[user] = det.score_one
    return window_features, scorers


def check_method(method: str) -> None:
    """ValueError unless ``method`` is one of ``METHODS`` or ``vector:<an existing module>``.

    >>> check_method("vector:nope")
    Traceback (most recent call last):
    ...
    ValueError: no detector module profiles.detectors.nope
    """
    if method in METHODS:
        return
    if not method.startswith("vector:"):
        raise ValueError(
            f"unknown method {method!r}: choose from {', '.join(METHODS)} or vector:<module>"
        )
    module = method.split(":", 1)[1]
    if (
        not module.isidentifier()
        or importlib.util.find_spec(f"profiles.detectors.{module}") is None
    ):
        raise ValueError(f"no detector module profiles.detectors.{module}")


def evaluate_keystrokes(
    enroll: Mapping[str, Sequence[KeystrokeEvents]],
    test: Mapping[str, Sequence[KeystrokeEvents]],
    n_presses: int,
    method: str = "histogram",
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> KeystrokeEvaluation:
    """Run the protocol of the module docstring; ``progress`` may wrap the test loop (tqdm)."""
    if n_presses < 2:
        raise ValueError(f"n_presses must be at least 2, got {n_presses}")
    check_method(method)
    # Histograms enrol on every press of every file, so a profile does not depend on N
    # (a file's tail under N presses would otherwise be dropped: up to 39 % of a user's
    # enrolment at N = 200 here). Window-statistic detectors learn full windows only,
    # the unit they score.
    histograms = method in METHODS
    enroll_w = {
        u: session_windows(s, n_presses, tail=histograms) for u, s in sorted(enroll.items())
    }
    need = "two presses" if histograms else f"a full window of {n_presses} presses"
    skipped = {u: f"too little enrolment data (not {need})" for u, ws in enroll_w.items() if not ws}
    enroll_w = {u: ws for u, ws in enroll_w.items() if ws}
    if method == "histogram":
        represent, scorers = _histogram_method(enroll_w, normalise=True)
    elif method == "histogram-raw":
        represent, scorers = _histogram_method(enroll_w, normalise=False)
    else:
        represent, scorers = _vector_method(enroll_w, method.split(":", 1)[1])

    users = list(scorers)
    genuine: dict[str, list[float]] = {u: [] for u in users}
    impostor: dict[str, list[float]] = {u: [] for u in users}
    test_items: Iterable[tuple[str, Sequence[KeystrokeEvents]]] = sorted(test.items())
    if progress is not None:
        test_items = progress(list(test_items))
    for owner, sessions in test_items:
        for window in session_windows(sessions, n_presses):
            rep = represent(window)
            for user in users:
                (genuine if user == owner else impostor)[user].append(scorers[user](rep))

    result = KeystrokeEvaluation(n_presses=n_presses, method=method)
    for user in users:
        if genuine[user] and impostor[user]:
            result.genuine[user] = np.asarray(genuine[user])
            result.impostor[user] = np.asarray(impostor[user])
            result.eer_by_user[user] = equal_error_rate(genuine[user], impostor[user])
        elif user not in test:
            skipped[user] = "no test files"
        elif not genuine[user]:
            skipped[user] = f"no full test window of {n_presses} presses"
        else:
            skipped[user] = "no impostor test windows"
    for user in test:
        # Their windows still serve as impostor attempts against every enrolled profile.
        if user not in enroll:
            skipped.setdefault(user, "no enrolment files")
    result.skipped = dict(sorted(skipped.items()))
    return result
