#!/usr/bin/env python3
"""Owner confirmation (step-up feedback) after an alarm, in the takeover protocol.

Offline measurement behind docs/evaluation.md, "Owner confirmation after an alarm"
(measured, not adopted). In a deployment an ``impostor`` verdict makes the SOC or the IdP
challenge the person (MFA, a call); today nothing of a passed challenge reaches the
profile. This measures what it would do if it did: ``confirm(profile, grace)`` sets the
trust back to full (as ``run_takeover`` does before a takeover) and, for the next
``grace`` windows of activity, the profile learns every window as an enrolling modality
would (model, readable summary, calibration ring at the modality's stride: one score per
context of fresh evidence once active), ignoring the learning gate, the trust and the
enrolment anchor (which stays frozen). Windows are still judged as usual meanwhile.

The protocols are ``cadence evaluate takeover``'s, built by the CLI's own loaders (same
accounts, background fitted on the enrolment segments, enrolment policy,
``evaluate_takeover``), except that the *genuine* runs call ``confirm`` right after every
window whose level enters ``impostor`` (the owner is challenged and passes). Takeover
runs are unchanged (no confirmation: an attacker fails the challenge) and start from the
profile the genuine run left, as the CLI's do (from its bytes: a grace still running at
the end of the genuine run is not carried into a takeover). False alarms = every entry
into ``impostor`` in the genuine runs, the first included (a confirmation only helps with
the ones after it); after a confirmation the level reads ``trusted`` again, so an entry
right after it counts.

Variants: ``never`` (no confirmation: must give the CLI's figures exactly, pair by pair),
``0`` (trust reset only), ``12``, ``60`` (grace windows: ~1 and ~5 min of activity).
Protocols: ``mouse`` and ``desk`` and ``tail`` (``--keystrokes --mouse --desk``),
``instagram`` (``--keystroke-holdout file``), ``facebook`` (bench/keystroke_cross_platform.py's
reverse direction). ``--h`` sets the CUSUM threshold (diagnostic rows; 5 is shipped).

    D=$(realpath ../shared/datasets)
    .venv/bin/python bench/owner_confirmation.py --keystrokes $D/keystrokes-freetext \\
        --mouse $D/balabit --protocol mouse desk tail instagram facebook --h 5 \\
        -- never 0 12 60
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import keystroke_cross_platform  # noqa: E402

from profiles import user as user_module  # noqa: E402
from profiles.background import Background  # noqa: E402
from profiles.enrollment import EnrollmentPolicy  # noqa: E402
from profiles.evaluation import takeover  # noqa: E402
from profiles.evaluation.takeover import (  # noqa: E402
    Account,
    GenuineRun,
    TakeoverResult,
    desk_account,
    enrolment_background,
    evaluate_takeover,
)
from profiles.trust import TrustPolicy  # noqa: E402
from profiles.user import UserProfile  # noqa: E402
from streams.commands import evaluate_takeover as cli_takeover  # noqa: E402

WINDOW_S = 5.0


class Confirm:
    """The variant now measured: ``None`` never confirms, else the grace in windows."""

    grace: int | None = None
    entries: dict[str, list[int]] = {}  # owner -> genuine seconds at each impostor entry
    impostor_windows: dict[str, int] = {}  # owner -> genuine windows that read impostor


def confirm(profile: UserProfile, grace: int) -> None:
    """The owner passed a challenge: full trust, and ``grace`` windows learned ungated."""
    profile.trust.value = 100.0
    profile.grace_left = grace  # type: ignore[attr-defined]


_shipped_learn = UserProfile._learn


def _learn(self, kb, kb_cal, kb_active, ms, ms_cal, ms_active):  # type: ignore[no-untyped-def]
    """``UserProfile._learn``; during a grace, every window is learned as while enrolling."""
    if getattr(self, "grace_left", 0) <= 0:
        return _shipped_learn(self, kb, kb_cal, kb_active, ms, ms_cal, ms_active)
    self.grace_left -= 1
    if kb is not None:
        raw, cells, summary, _ = kb
        if not kb_active:
            self.keyboard.anchor.learn(summary)  # an enrolling modality's anchor learns, as ever
        self._learn_typing(raw, cells, summary, kb_active)
    if ms is not None:
        raw, actions, summary = ms
        if not ms_active:
            self.mouse.anchor.learn(summary)
        self._learn_pointing(raw, actions, summary, ms_active)
    return kb is not None or ms is not None


user_module.UserProfile._learn = _learn  # type: ignore[method-assign]


def after_window(profile: UserProfile, run: GenuineRun, level: str, entered: bool) -> str:
    """After each genuine window: ``confirm`` after every entry into ``impostor``."""
    if level == "impostor":
        n = Confirm.impostor_windows.get(run.owner, 0)
        Confirm.impostor_windows[run.owner] = n + 1
    if entered:
        at = int(run.windows * WINDOW_S)
        Confirm.entries[run.owner] = [*Confirm.entries.get(run.owner, []), at]
        if Confirm.grace is not None:
            confirm(profile, Confirm.grace)
            return profile.trust.level
    return level


# evaluate_takeover reads run_genuine from its module
takeover.run_genuine = functools.partial(takeover.run_genuine, after_window=after_window)


def load(
    args: argparse.Namespace, protocols: list[str]
) -> dict[str, tuple[list[Account], Background, EnrollmentPolicy | None]]:
    """Each protocol's accounts, background and enrolment policy, as the CLI builds them."""
    out = {}
    cli_args = argparse.Namespace(
        keystroke_holdout="tail", window_seconds=WINDOW_S, enroll_fraction=0.7, holdout=1
    )
    if {"mouse", "desk", "tail"} & set(protocols):
        # `cadence evaluate takeover --keystrokes K --mouse M --desk`: one background.
        keys = cli_takeover._keystroke_accounts(args.keystrokes, cli_args)
        mouse = cli_takeover._mouse_accounts(args.mouse, cli_args)
        desk = [desk_account(k, m) for k, m in zip(keys, mouse, strict=False)]
        bg = enrolment_background(keys, mouse, Background.default())
        out |= {"tail": (keys, bg, None), "mouse": (mouse, bg, None), "desk": (desk, bg, None)}
    if "instagram" in protocols:
        cli_args.keystroke_holdout = "file"
        keys = cli_takeover._keystroke_accounts(args.keystrokes, cli_args)
        bg = enrolment_background(keys, [], Background.default())
        out["instagram"] = (keys, bg, cli_takeover._typing_enrolment(keys))
    if "facebook" in protocols:
        keys = keystroke_cross_platform.accounts(args.keystrokes, "facebook")
        bg = enrolment_background(keys, [], Background.default())
        out["facebook"] = (keys, bg, EnrollmentPolicy(keyboard_cells=300, min_sessions=1))
    return {p: out[p] for p in protocols}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keystrokes", type=Path, required=True, help="free-text DIR")
    parser.add_argument("--mouse", type=Path, help="Balabit DIR (mouse, desk)")
    parser.add_argument(
        "--protocol",
        nargs="+",
        default=["mouse"],
        choices=("mouse", "desk", "tail", "instagram", "facebook"),
    )
    parser.add_argument("--h", nargs="+", type=float, default=[5.0], help="CUSUM thresholds")
    parser.add_argument("--json", type=Path, help="append one JSON line per run here")
    parser.add_argument("variants", nargs="*", default=["never"], help="never or grace windows")
    args = parser.parse_args()
    for protocol, (accounts, background, policy) in load(args, args.protocol).items():
        modality = {"tail": "keystrokes", "instagram": "keystrokes", "facebook": "keystrokes"}
        for variant in args.variants:
            for h in args.h:
                t0 = time.perf_counter()
                Confirm.grace = None if variant == "never" else int(variant)
                Confirm.entries, Confirm.impostor_windows = {}, {}
                result: TakeoverResult = evaluate_takeover(
                    accounts,
                    background,
                    modality.get(protocol, protocol),  # type: ignore[arg-type]
                    enrollment=policy,
                    trust_policy=TrustPolicy(threshold=h),
                )
                alarmed = [
                    (g.owner, g.entries["suspicious"], g.entries["impostor"])
                    for g in result.genuine
                    if g.entries["suspicious"]
                ]
                print(f"{protocol} {variant} h={h:g}: {result.summary()}")
                print(
                    f"  (owner, suspicious, impostor) {alarmed}; impostor entries at genuine s"
                    f" {Confirm.entries}; impostor windows {Confirm.impostor_windows};"
                    f" {time.perf_counter() - t0:.0f} s",
                    flush=True,
                )
                if args.json:
                    row = {
                        "protocol": protocol,
                        "variant": variant,
                        "h": h,
                        "figures": result.figures(),
                        "alarmed": alarmed,
                        "entries_at_s": Confirm.entries,
                        "impostor_windows": Confirm.impostor_windows,
                        "ttd": [[t.owner, t.attacker, t.seconds] for t in result.takeovers],
                    }
                    with args.json.open("a") as f:
                        f.write(json.dumps(row, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
