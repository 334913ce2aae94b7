#!/usr/bin/env python3
"""Cohort score normalisation (T-norm) of the mouse context score, in the takeover protocol.

Offline measurement behind docs/evaluation.md, "Cohort score normalisation (T-norm)"
(not adopted). The protocol is ``cadence evaluate takeover --mouse DIR`` exactly
(same accounts, enrolment-only background, ``enrolled_profile``, ``run_genuine``,
``run_takeover``, ring, CUSUM), except that the profile's raw mouse context score is
replaced by its T-normed version: the same actions are also scored by a *cohort* of
other accounts' mouse models, and what the ring calibrates and the CUSUM reads is how
much more the context looks like the owner than like those people. Variants:

- ``shipped``: no cohort; reproduces the CLI's figures exactly (checked: same
  per-pair times and alarm counts as ``evaluate_takeover``);
- ``none``: the cohort harness (replays, cohort contexts) with the shipped score:
  must give the ``shipped`` figures too;
- ``action``: per action ``(s_owner - mean_k s_k) / sd_k s_k``, then the context mean
  of those (the rolling context holds the normalised action scores);
- ``context``: per context ``(m_owner - mean_k m_k) / sd_k m_k``, ``m`` the mean of a
  model's scores over the same rolling 20-action context;
- ``centre``: per action ``s_owner - mean_k s_k`` (no division), context mean; the
  same at either level, and exactly the owner's ratio against the *mean of the cohort's
  log-histograms* instead of the population's: ``sum_j mean_k log p_k - log p_owner``;
- ``centre-self``: ``centre`` with the owner's own frozen enrolment model in the cohort
  (as the owner's enrolment is in the protocol's population): how much of ``centre``
  is only the owner's absence from the reference;
- ``shipped-noself``: no cohort; the shipped ratio with a population fitted per owner on
  the *other* accounts' enrolment only (mouse only), as a product's background of
  strangers would be: the control for ``centre``, whose reference leaves the owner out.

Cohort models: each account's ``TypedHistogramRatio`` as the shipped
``enrolled_profile`` leaves it after that account's enrolment sessions (all but the
last), frozen; never a held-out session. The owner's own model learns online as shipped
(gated on the normalised, calibrated score). Genuine runs: cohort = all 9 other
accounts. Takeovers: per owner one replay per attacker (enrolment and genuine run
again, with that attacker left out of the cohort: 8 models), judging only that
attacker's takeover; so no attacker is ever in a model that judges their own takeover,
nor in the ring or gate that shaped the owner's state before it.

``--h`` sets the CUSUM threshold (diagnostic rows of the curve; 5 is shipped). Prints
one JSON line of figures per (variant, h); ``--json`` writes them with per-pair results.

    D=$(realpath ../shared/datasets)
    .venv/bin/python bench/tnorm_takeover.py --mouse $D/balabit shipped action context centre
    .venv/bin/python bench/tnorm_takeover.py shipped context --mouse $D/balabit --h 3 4 7
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from profiles.background import Background  # noqa: E402
from profiles.carryover import PointerWindow  # noqa: E402
from profiles.detectors.typed_histogram_ratio import TypedHistogramRatio  # noqa: E402
from profiles.evaluation.takeover import (  # noqa: E402
    Account,
    GenuineRun,
    Modality,
    Takeover,
    TakeoverResult,
    _assess,
    _Clock,
    desk_account,
    enrolled_profile,
    enrolment_background,
    evaluate_takeover,
    run_genuine,
    run_takeover,
)
from profiles.reasons import mouse_summary  # noqa: E402
from profiles.trust import DEFAULT_POLICY, TrustPolicy  # noqa: E402
from profiles.user import UserProfile, _mean32  # noqa: E402
from streams.commands.evaluate_takeover import (  # noqa: E402
    _keystroke_accounts,
    _mouse_accounts,
    strict_json,
)  # noqa: E402

VARIANTS = ("shipped", "none", "action", "context", "centre", "centre-self", "shipped-noself")


class CohortProfile(UserProfile):
    """``UserProfile`` whose raw mouse context score is T-normed against frozen cohort models."""

    mode: str
    tables: np.ndarray  # (K, cells): each cohort model's log-ratio table
    cohort_recent: np.ndarray  # (K, <= mouse_actions): cohort scores of the context's actions

    def attach(self, mode: str, tables: np.ndarray, recent: np.ndarray | None = None) -> None:
        self.mode = mode
        self.tables = tables
        k = tables.shape[0]
        self.cohort_recent = np.zeros((k, 0)) if recent is None else recent.copy()

    def _mouse_evidence(
        self, pointer: PointerWindow | None, actions: np.ndarray | None
    ) -> tuple[float | None, np.ndarray, np.ndarray] | None:
        # UserProfile._mouse_evidence, with the score of each action (or the context) normalised.
        if pointer is None:
            return None
        m = self.mouse
        if pointer.new_session:
            m.recent = np.zeros(0, np.float32)
            self.cohort_recent = np.zeros((self.tables.shape[0], 0))
            m.sessions += 1
        if actions is None or actions.shape[0] == 0:
            return None
        bins = m.model.bins(actions)
        raw: float | None = None
        if m.actions >= self.policy.min_mouse_actions:
            own = m.model.score_bins(bins)
            cohort = self.tables[:, bins].sum(axis=2)  # (K, n)
            n = self.policy.mouse_actions
            if self.mode == "action":
                scores = (own - cohort.mean(axis=0)) / cohort.std(axis=0, ddof=1)
            elif self.mode == "none":  # the harness's own check: the shipped scores
                scores = own
            elif self.mode == "centre":
                scores = own - cohort.mean(axis=0)
            else:  # context: the owner's raw scores, the cohort's alongside
                scores = own
                self.cohort_recent = np.concatenate((self.cohort_recent, cohort), axis=1)[:, -n:]
            m.recent = np.concatenate((m.recent, scores.astype(np.float32)))[-n:]
            if m.recent.size >= self.policy.min_mouse_actions:
                if self.mode == "context":
                    mk = self.cohort_recent.mean(axis=1)
                    mo = float(np.mean(m.recent, dtype=np.float64))
                    raw = float((mo - mk.mean()) / mk.std(ddof=1))
                else:
                    raw = _mean32(m.recent)
        return (raw, bins, mouse_summary(actions))


def cohort_models(accounts: list[Account], background: Background) -> dict[str, np.ndarray]:
    """Each account's mouse model after its enrolment sessions (shipped profile), as a table."""
    out: dict[str, np.ndarray] = {}
    for a in accounts:
        model = enrolled_profile(a, background).mouse.model
        assert isinstance(model, TypedHistogramRatio)
        out[a.name] = copy.deepcopy(model)._llr_table().copy()
    return out


def _enrolled(
    account: Account,
    background: Background,
    policy: TrustPolicy,
    mode: str,
    tables: np.ndarray,
    clock: _Clock,
) -> CohortProfile:
    profile = CohortProfile(background, None, policy)
    profile.attach(mode, tables)
    for seg in account.enroll:
        for w in seg.windows:
            _assess(profile, w, seg.session, clock)
    return profile


def run_variant(
    accounts: list[Account],
    background: Background,
    variant: str,
    h: float,
    tables: dict[str, np.ndarray],
    modality: Modality = "mouse",
    max_impostor_s: float = 600.0,
    window_s: float = 5.0,
) -> TakeoverResult:
    policy = replace(DEFAULT_POLICY, threshold=h)
    if variant == "shipped":
        return evaluate_takeover(
            accounts, background, modality, window_s, max_impostor_s, None, policy
        )
    if variant == "shipped-noself":
        return _without_owner(accounts, background, policy, modality, window_s, max_impostor_s)
    clock = _Clock()
    genuine: list[GenuineRun] = []
    takeovers: list[Takeover] = []
    sizes: list[int] = []
    never: list[str] = []
    mode = variant.removesuffix("-self")
    for owner in accounts:
        others = [a for a in accounts if a.name != owner.name]
        # centre-self: the owner's own frozen enrolment model in the cohort too (a check of
        # how much of ``centre`` is the owner's absence from the reference).
        ref = accounts if variant.endswith("-self") else others
        p = _enrolled(
            owner, background, policy, mode, np.stack([tables[a.name] for a in ref]), clock
        )
        genuine.append(run_genuine(p, owner, window_s, clock))
        sizes.append(len(p.to_bytes()))
        if p.enrollment != "active":
            never.append(owner.name)
        for attacker in others:
            cohort = np.stack([tables[a.name] for a in ref if a.name != attacker.name])
            p = _enrolled(owner, background, policy, mode, cohort, clock)
            run_genuine(p, owner, window_s, clock)  # the state the takeover starts from
            q = CohortProfile.from_bytes(p.to_bytes(), background, None, policy)
            q.attach(mode, cohort, p.cohort_recent)
            takeovers.append(run_takeover(q, owner, attacker, window_s, max_impostor_s, clock))
    return TakeoverResult(
        modality,
        window_s,
        takeovers,
        genuine,
        sizes,
        clock.seconds / max(clock.calls, 1) * 1e6,
        max_impostor_s,
        never,
    )


def _without_owner(
    accounts: list[Account],
    background: Background,
    policy: TrustPolicy,
    modality: Modality,
    window_s: float,
    max_impostor_s: float,
) -> TakeoverResult:
    """The shipped protocol, each owner judged against a population without them."""
    noself = {
        o.name: enrolment_background([], [a for a in accounts if a is not o], background)
        for o in accounts
    }
    return evaluate_takeover(
        accounts,
        background,
        modality,
        window_s,
        max_impostor_s,
        None,
        policy,
        background_for=lambda owner, attacker: noself[owner.name],
    )


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mouse", type=Path, required=True)
    ap.add_argument("--keystrokes", type=Path, help="with --desk: the free-text recordings")
    ap.add_argument("--desk", action="store_true", help="chimeric desks, as the CLI's --desk")
    ap.add_argument("--h", type=float, nargs="+", default=[5.0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("variants", nargs="+", choices=VARIANTS)
    args = ap.parse_args(argv)
    ns = argparse.Namespace(
        window_seconds=5.0, holdout=1, enroll_fraction=0.7, keystroke_holdout="tail"
    )
    pointers = accounts = _mouse_accounts(args.mouse, ns)
    modality: Modality = "mouse"
    keys: list[Account] = []
    if args.desk:
        keys = _keystroke_accounts(args.keystrokes, ns)
        accounts = [desk_account(k, m) for k, m in zip(keys, accounts, strict=False)]
        modality = "desk"
    # As the CLI: the population of every account given, enrolment segments only.
    background = enrolment_background(keys, pointers, Background.default())
    if args.desk and "shipped-noself" in args.variants:
        ap.error("shipped-noself: mouse only")
    tables = cohort_models(accounts, background)
    size = TypedHistogramRatio(background.mouse).max_bytes()
    print(f"cohort: {len(tables)} models, <= {size} bytes each as stored", file=sys.stderr)
    out = []
    for h in args.h:
        for v in args.variants:
            t0 = time.perf_counter()
            r = run_variant(accounts, background, v, h, tables, modality)
            f = r.figures() | {"variant": v, "h": h, "run_s": time.perf_counter() - t0}
            f["alarm_owners"] = {
                g.owner: g.entries["impostor"] for g in r.genuine if g.entries["impostor"]
            }
            f["suspicious_owners"] = {
                g.owner: g.entries["suspicious"] for g in r.genuine if g.entries["suspicious"]
            }
            print(json.dumps(strict_json(f)), flush=True)
            out.append(f | {"takeovers": [asdict(t) for t in r.takeovers]})
    if args.json:
        args.json.write_text(json.dumps(strict_json(out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
