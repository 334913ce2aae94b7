"""Offline mouse evaluation: enroll every account, score labelled sessions, one global AUC.

Protocol of the Balabit challenge: each account is enrolled on its own
training sessions; each labelled test session recorded under an account is
scored against that account's profile; one ROC AUC is computed over all
sessions together (so scores must be comparable across accounts, which is
what the population ratio buys). The population is fitted on the training
(enrollment) actions of all accounts only — test data never trains anything.

A session score is the mean of its action scores: for the ratio detectors,
the mean log-likelihood ratio per action, the same quantity the stream
processor computes over a window of actions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from profiles.detectors.gaussian import GaussianNLL
from profiles.detectors.gaussian_ratio import GaussianRatio
from profiles.detectors.histogram_ratio import HistogramRatio
from profiles.detectors.manhattan import ScaledManhattan
from profiles.detectors.river_half_space_trees import RiverHalfSpaceTrees
from profiles.detectors.river_oneclass_svm import RiverOneClassSVM
from profiles.detectors.typed_histogram_ratio import TypedHistogramRatio
from profiles.metrics import roc_auc
from profiles.mouse import TYPE_COLUMNS, MouseEvents, action_types, extract
from profiles.population import Population


class Detector(Protocol):
    def learn_many(self, X: np.ndarray) -> None: ...
    def score_many(self, X: np.ndarray) -> np.ndarray: ...
    def to_bytes(self) -> bytes: ...


#: Detector factories by name; each gets the population fitted on enrollment data.
METHODS: dict[str, Callable[[Population], Detector]] = {
    "histogram_ratio": lambda pop: HistogramRatio(pop),
    "typed_histogram_ratio": lambda pop: TypedHistogramRatio(pop, TYPE_COLUMNS),
    "gaussian_ratio": lambda pop: GaussianRatio(pop),
    "gaussian": lambda pop: GaussianNLL(),
    "diagonal_gaussian": lambda pop: GaussianNLL(diagonal=True),
    "manhattan": lambda pop: ScaledManhattan(),
    # River's models, as River documents them; for comparison only (no compact state).
    "river_oneclass_svm": lambda pop: RiverOneClassSVM(),
    "river_half_space_trees": lambda pop: RiverHalfSpaceTrees(),
}
DEFAULT_METHOD = "typed_histogram_ratio"  # the profile's detector (cadence-profile-4)


@dataclass(frozen=True, slots=True)
class LabelledSession:
    account: str
    session_id: str
    events: MouseEvents
    is_illegal: int
    #: Why the session's file could not be used ('' if it could): such a session is
    #: skipped with this reason, never scored as one without an action.
    unusable: str = ""


@dataclass
class MouseEvaluation:
    method: str
    auc: float
    sessions: int
    accounts: int
    genuine: int
    impostor: int
    bytes_per_user: int
    us_per_window: float  # learn + score of one window, microseconds
    window_actions: int
    scores: dict[str, float] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    #: Labelled sessions not scored, by reason (e.g. their account has no enrolment).
    skipped: dict[str, str] = field(default_factory=dict)
    #: Scored sessions without one usable action: they get the population's level, 0.
    no_actions: int = 0

    def summary(self) -> str:
        auc = "n/a" if np.isnan(self.auc) else f"{self.auc:.3f}"
        return (
            f"mouse: AUC {auc} over {self.sessions} sessions "
            f"({self.accounts} users, {self.method}; {len(self.skipped)} skipped)"
        )


def session_score(detector: Detector, features: np.ndarray) -> float:
    """Mean action score; 0 (the population's level) when a session has no usable action."""
    if features.shape[0] == 0:
        return 0.0
    return float(np.mean(detector.score_many(features)))


def evaluate_mouse(
    training: Mapping[str, Sequence[MouseEvents]],
    tests: Iterable[LabelledSession],
    methods: Sequence[str] = (DEFAULT_METHOD,),
    window_actions: int = 30,
    progress: Callable[[Iterable[LabelledSession]], Iterable[LabelledSession]] | None = None,
) -> list[MouseEvaluation]:
    """Enroll each account on its training sessions and score the labelled sessions.

    A session whose account has no usable enrolment action cannot be scored and
    is reported in ``skipped``; the AUC (NaN if one class is missing) is over the rest.
    """
    enroll = {
        account: np.vstack([extract(ev) for ev in sessions] or [np.empty((0, 0))])
        for account, sessions in sorted(training.items())
    }
    not_enrolled = sorted(a for a, X in enroll.items() if X.shape[0] == 0)
    enroll = {a: X for a, X in enroll.items() if X.shape[0] > 0}
    if not enroll:
        raise ValueError("no account has a usable enrolment action")
    pooled = np.vstack(list(enroll.values()))
    # Every action type has its group, even one no enrolment session happens to contain.
    population = Population.fit(pooled, groups=action_types(pooled), n_groups=len(TYPE_COLUMNS))

    detectors: dict[str, dict[str, Detector]] = {}
    for method in methods:
        detectors[method] = {}
        for account, X in enroll.items():
            det = METHODS[method](population)
            det.learn_many(X)
            detectors[method][account] = det

    # Scored per (account, session): results are keyed by the session's name, which is
    # what a label names, so a name found under several accounts is left out below
    # rather than one of its sessions silently replacing the other's score.
    scored: dict[tuple[str, str], tuple[int, bool, list[float]]] = {}
    accounts_of: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    items = progress(tests) if progress is not None else tests
    for s in items:
        accounts_of.setdefault(s.session_id, []).append(s.account)
        if s.unusable:
            skipped[s.session_id] = f"account {s.account}: {s.unusable}"
            continue
        if s.account not in enroll:
            reason = "no usable enrolment" if s.account in not_enrolled else "no training files"
            skipped[s.session_id] = f"account {s.account}: {reason}"
            continue
        features = extract(s.events)
        scored[s.account, s.session_id] = (
            s.is_illegal,
            features.shape[0] == 0,
            [session_score(detectors[method][s.account], features) for method in methods],
        )
    for session_id, accounts in accounts_of.items():
        if len(accounts) > 1:
            skipped[session_id] = (
                f"under accounts {', '.join(accounts)}: one label for several sessions, left out"
            )

    scores: dict[str, dict[str, float]] = {m: {} for m in methods}
    labels: dict[str, int] = {}
    seen_accounts: set[str] = set()
    no_actions = 0
    for (account, session_id), (label, empty, values) in scored.items():
        if len(accounts_of[session_id]) > 1:
            continue
        labels[session_id] = label
        seen_accounts.add(account)
        no_actions += empty
        for method, value in zip(methods, values, strict=True):
            scores[method][session_id] = value

    probe = next(iter(enroll.values()))[:window_actions]
    results = []
    for method in methods:
        sc = scores[method]
        genuine = [sc[k] for k, y in labels.items() if y == 0]
        impostor = [sc[k] for k, y in labels.items() if y == 1]
        results.append(
            MouseEvaluation(
                method=method,
                auc=roc_auc(genuine, impostor) if genuine and impostor else float("nan"),
                sessions=len(labels),
                accounts=len(seen_accounts),
                genuine=len(genuine),
                impostor=len(impostor),
                bytes_per_user=max(state_bytes(d) for d in detectors[method].values()),
                us_per_window=window_cost_us(METHODS[method](population), probe),
                window_actions=probe.shape[0],
                scores=sc,
                labels=labels,
                skipped=skipped,
                no_actions=no_actions,
            )
        )
    return results


def state_bytes(detector: Detector) -> int:
    """A detector's per-user state: its encoding's size, or for River's models (which have
    no encoding but a pickle) the size of the pickle, measured, never loaded."""
    measure = getattr(detector, "state_size", None)
    return int(measure()) if measure is not None else len(detector.to_bytes())


def window_cost_us(detector: Detector, window: np.ndarray, repeat: int = 200) -> float:
    """Median wall time of score + learn of one window of actions, in microseconds."""
    detector.learn_many(window)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        detector.score_many(window)
        detector.learn_many(window)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)
