#!/usr/bin/env python3
"""Cohort score normalisation (T-norm) of the keystroke context, in the takeover protocol.

Offline measurement behind docs/evaluation.md, "Cohort normalisation (T-norm) of the
keystroke context" (not adopted). The keystroke takeover protocol runs as ``cadence
evaluate takeover --keystrokes DIR`` runs it (same accounts, background fitted on the enrolment segments,
enrolment policy, ``enrolled_profile``, ``run_genuine``, ``run_takeover``), except that
the profile's raw keystroke context score is replaced by a T-normed one (a scratch
override of ``UserProfile._keyboard_evidence``); the calibration ring, the CUSUM and the
gate read it as they read the raw score. Cohort = the other typists' keystroke models as
``enrolled_profile`` leaves them after their *enrolment* segments (shipped scoring),
frozen; cohort model ``k`` scores a cell ``c`` as the owner's does,
``s_k(c) = log P_pop(c) - log P_k(c)``. Variants:

- ``base``: the shipped score (must give the CLI's figures exactly);
- ``cell-c``: each cell's score minus the cohort's mean score of that cell, then the context
  mean. As the mean is linear this *is* the per-context centring ``m_o - mean_k m_k``;
  the population cancels: ``mean_k log P_k(c) - log P_owner(c)``;
- ``cell-z``: per cell ``(s_o - mean_k s_k) / sqrt(sd_k(s_k)^2 + sd0^2)``, then the
  context mean; ``sd0^2`` = the cohort variance averaged over cells weighted by the
  population's cell counts (a floor for cells no cohort model has typed, where sd = 0);
- ``ctx-z``: per context, the T-norm of speaker verification,
  ``(m_o - mean_k m_k) / sd_k(m_k)`` with ``m_k`` cohort model ``k``'s mean over the same
  context cells (the context's cell indices are kept beside the scores).

The attacker is never in the cohort that judges their takeover: per owner one replay
(enrolment + genuine run) with all other typists as the cohort gives the genuine figures,
then ``--leave-out N`` (default 1) groups the attackers in runs of N; per group a replay
with the cohort minus the group (enrolment + genuine run again, not counted) judges that
group's takeovers. ``base`` needs no replays (it reads no cohort). Protocols: ``tail`` (the
CLI's default, same sitting), ``instagram`` (the CLI's ``--keystroke-holdout file``) and
``facebook`` (bench/keystroke_cross_platform.py's reverse direction). ``--h`` sets the CUSUM
threshold (diagnostic rows; 5 is shipped).

    .venv/bin/python bench/keystroke_tnorm.py --data ../shared/datasets/keystrokes-freetext \\
        --protocol tail instagram facebook --h 5 4 6 -- base cell-c cell-z ctx-z
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import keystroke_cross_platform  # noqa: E402

from profiles import user as user_module  # noqa: E402
from profiles.background import Background  # noqa: E402
from profiles.enrollment import EnrollmentPolicy  # noqa: E402
from profiles.evaluation.takeover import (  # noqa: E402
    Account,
    TakeoverResult,
    _Clock,
    enrolled_profile,
    enrolment_background,
    run_genuine,
    run_takeover,
)
from profiles.reasons import keyboard_summary  # noqa: E402
from profiles.trust import TrustPolicy  # noqa: E402
from profiles.user import UserProfile  # noqa: E402
from streams.commands import evaluate_takeover as cli_takeover  # noqa: E402

WINDOW_S = 5.0
MAX_IMPOSTOR_S = 600.0
VARIANTS = ("base", "cell-c", "cell-z", "ctx-z")


class Cohort:
    """The frozen cohort now judging (set per owner and replay) and the variant."""

    variant = "base"
    table = np.zeros((0, 0))  # (K, cells): s_k(c) of each cohort model
    mean = np.zeros(0)  # per cell mean_k s_k
    scale = np.zeros(0)  # per cell sqrt(sd_k^2 + sd0^2) (cell-z)

    @classmethod
    def set(cls, table: np.ndarray, weights: np.ndarray) -> None:
        cls.table = table
        cls.mean = table.mean(axis=0)
        var = table.var(axis=0, ddof=1)
        sd0_sq = float(np.sum(weights * var) / np.sum(weights))
        cls.scale = np.sqrt(var + sd0_sq)


def _keyboard_evidence(self, typing, typed):  # type: ignore[no-untyped-def]
    """``UserProfile._keyboard_evidence`` with the context score T-normed (see above)."""
    if typing is None or typed is None:
        return None
    k = self.keyboard
    if typing.new_session or not hasattr(self, "ctx_cells"):
        self.ctx_cells = np.zeros(0, np.int64)
    if typing.new_session:
        k.cells = np.zeros(0, np.float16)
        k.sessions += 1
    window, new_cells = typed
    summary = keyboard_summary(window)
    raw: float | None = None
    variant = Cohort.variant
    if k.presses > 0 and new_cells.size:
        own = k.model.cell_scores(new_cells)
        if variant == "cell-c":
            own = own - Cohort.mean[new_cells]
        elif variant == "cell-z":
            own = (own - Cohort.mean[new_cells]) / Cohort.scale[new_cells]
        c = self.policy.keyboard_cells
        k.cells = np.concatenate((k.cells, own.astype(np.float16)))[-c:]
        self.ctx_cells = np.concatenate((self.ctx_cells, new_cells))[-c:]
        if k.cells.size >= self.policy.min_keyboard_cells:
            raw = float(np.add.reduce(k.cells, dtype=np.float64) / k.cells.size)
            if variant == "ctx-z":
                m = Cohort.table[:, self.ctx_cells].mean(axis=1)
                raw = float((raw - m.mean()) / m.std(ddof=1))
    return (raw, new_cells, summary, typing.fresh)


user_module.UserProfile._keyboard_evidence = _keyboard_evidence  # type: ignore[method-assign]


def protocol_accounts(root: Path, protocol: str) -> tuple[list[Account], EnrollmentPolicy | None]:
    """The accounts and enrolment policy of the CLI (tail, instagram) or the bench script."""
    if protocol == "facebook":
        return keystroke_cross_platform.accounts(root, "facebook"), EnrollmentPolicy(
            keyboard_cells=300, min_sessions=1
        )
    holdout = "tail" if protocol == "tail" else "file"
    args = argparse.Namespace(
        keystroke_holdout=holdout, window_seconds=WINDOW_S, enroll_fraction=0.7
    )
    accounts = cli_takeover._keystroke_accounts(root, args)
    policy = cli_takeover._typing_enrolment(accounts) if holdout == "file" else None
    return accounts, policy


def cohort_tables(
    accounts: list[Account], background: Background, policy: EnrollmentPolicy | None
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Each typist's frozen model after their enrolment, as scores of every cell; its bytes."""
    Cohort.variant = "base"
    n = background.keystrokes.counts.size
    tables, sizes = {}, []
    for a in accounts:
        model = enrolled_profile(a, background, policy).keyboard.model
        tables[a.name] = model.cell_scores(np.arange(n))
        sizes.append(len(model.to_bytes()))
    return tables, sizes


def evaluate(
    accounts: list[Account],
    background: Background,
    policy: EnrollmentPolicy | None,
    trust_policy: TrustPolicy,
    variant: str,
    tables: dict[str, np.ndarray],
    leave_out: int,
) -> TakeoverResult:
    Cohort.variant = variant
    weights = background.keystrokes.counts.reshape(-1).astype(np.float64)
    by_name = {a.name: a for a in accounts}
    clock, spare = _Clock(), _Clock()
    genuine, sizes, never, takeovers = [], [], [], []
    for owner in accounts:
        others = [a.name for a in accounts if a.name != owner.name]
        Cohort.set(np.stack([tables[o] for o in others]), weights)
        profile = enrolled_profile(owner, background, policy, trust_policy, clock)
        genuine.append(run_genuine(profile, owner, WINDOW_S, clock))
        if profile.enrollment != "active":
            never.append(owner.name)
        sizes.append(len(profile.to_bytes()))
        if variant == "base":
            groups = [others]
        else:
            groups = [others[i : i + leave_out] for i in range(0, len(others), leave_out)]
        for group in groups:
            if variant != "base":
                cohort = [o for o in others if o not in group]
                Cohort.set(np.stack([tables[o] for o in cohort]), weights)
                profile = enrolled_profile(owner, background, policy, trust_policy, spare)
                run_genuine(profile, owner, WINDOW_S, spare)
            state, ctx = profile.to_bytes(), profile.ctx_cells.copy()
            for name in group:
                p = UserProfile.from_bytes(state, background, policy, trust_policy)
                p.ctx_cells = ctx.copy()
                takeovers.append(
                    run_takeover(p, owner, by_name[name], WINDOW_S, MAX_IMPOSTOR_S, clock)
                )
    return TakeoverResult(
        "keystrokes",
        WINDOW_S,
        takeovers,
        genuine,
        sizes,
        clock.seconds / max(clock.calls, 1) * 1e6,
        MAX_IMPOSTOR_S,
        never,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="DIR/<user>/<platform>.csv")
    parser.add_argument(
        "--protocol", nargs="+", default=["tail"], choices=("tail", "instagram", "facebook")
    )
    parser.add_argument("--h", nargs="+", type=float, default=[5.0], help="CUSUM thresholds")
    parser.add_argument("--leave-out", type=int, default=1, help="attackers per replay")
    parser.add_argument("--json", type=Path, help="append one JSON line per run here")
    parser.add_argument("variants", nargs="*", default=["base"], choices=VARIANTS)
    args = parser.parse_args()
    for protocol in args.protocol:
        accounts, policy = protocol_accounts(args.data, protocol)
        background = enrolment_background(accounts, [], Background.default())
        tables, cohort_bytes = cohort_tables(accounts, background, policy)
        print(
            f"{protocol}: cohort model bytes mean {np.mean(cohort_bytes):.0f}, max"
            f" {max(cohort_bytes)}",
            flush=True,
        )
        for variant in args.variants:
            for h in args.h:
                t0 = time.perf_counter()
                trust = replace(TrustPolicy(), threshold=h)
                result = evaluate(
                    accounts, background, policy, trust, variant, tables, args.leave_out
                )
                alarmed = [
                    (g.owner, g.entries["suspicious"], g.entries["impostor"])
                    for g in result.genuine
                    if g.entries["suspicious"]
                ]
                print(f"{protocol} {variant} h={h:g}: {result.summary()}")
                print(
                    f"  (owner, suspicious, impostor) {alarmed}; {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
                if args.json:
                    row = {
                        "protocol": protocol,
                        "variant": variant,
                        "h": h,
                        "figures": result.figures(),
                        "alarmed": alarmed,
                        "ttd": [[t.owner, t.attacker, t.seconds] for t in result.takeovers],
                    }
                    with args.json.open("a") as f:
                        f.write(json.dumps(row, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
