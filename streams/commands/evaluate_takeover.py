"""``cadence evaluate takeover``: time to detection and false alarms on real recordings.

``--keystrokes DIR`` takes the free-text layout ``<user>/<session>.csv``: each
recording is cut in time, the first ``--enroll-fraction`` of its active windows
enrol and the rest is the owner's held-out genuine activity; with
``--keystroke-holdout file`` each typist's last file in name order is held out instead
(another day's or platform's typing) and the others enrol. ``--mouse DIR``
takes the Balabit layout (``DIR/training_files/<user>/session_*``, or directly
``DIR/<user>/session_*``): the last ``--holdout`` sessions of each account (in
name order) are held out, the others enrol. Modalities are evaluated separately
(the recordings are of different people). With both and ``--desk``, a third run
measures the fused trust on *chimeric* desks: the i-th typist (in name order)
paired with the i-th pointer, their windows alternating
(:func:`profiles.evaluation.takeover.desk_account`). Progress goes to stderr;
the last stdout line is the one-line summary.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from streams.commands._output import write_output, write_plot

if TYPE_CHECKING:
    from profiles.enrollment import EnrollmentPolicy
    from profiles.evaluation.takeover import Account


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keystrokes", type=Path, help="free-text DIR/<user>/<session>.csv")
    parser.add_argument("--mouse", type=Path, help="Balabit DIR[/training_files]/<user>/session_*")
    parser.add_argument(
        "--window-seconds", type=float, default=5.0, help="event time per verdict (default 5)"
    )
    parser.add_argument(
        "--enroll-fraction",
        type=float,
        default=0.7,
        help="keystrokes: share of each recording's active windows that enrols (default 0.7)",
    )
    parser.add_argument(
        "--keystroke-holdout",
        choices=("tail", "file"),
        default="tail",
        help="keystrokes: hold out the last part of every recording (tail, see"
        " --enroll-fraction; default) or each typist's last file in name order (file: another"
        " day or platform; enrolment on the other files)",
    )
    parser.add_argument(
        "--holdout", type=int, default=1, help="mouse: sessions per account held out (default 1)"
    )
    parser.add_argument(
        "--max-impostor-seconds",
        type=float,
        default=600.0,
        help="active attacker time fed per takeover before it counts as missed (default 600)",
    )
    parser.add_argument(
        "--desk",
        action="store_true",
        help="with --keystrokes and --mouse: also fuse them on chimeric desks (typist i +"
        " pointer i, windows alternating)",
    )
    parser.add_argument("--users", type=int, default=0, help="only the first N accounts (0 = all)")
    parser.add_argument("--json", type=Path, help="write figures and per-pair results here")
    parser.add_argument("--plot", type=Path, help="write the time-to-detection CDF (PNG) here")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from profiles.background import Background
    from profiles.evaluation.takeover import (
        TakeoverResult,
        enrolment_background,
        evaluate_takeover,
    )
    from streams.commands._args import positive, refuse

    if not args.keystrokes and not args.mouse:
        print("give --keystrokes DIR and/or --mouse DIR", file=sys.stderr)
        return 2
    if args.desk and not (args.keystrokes and args.mouse):
        print("--desk needs both --keystrokes DIR and --mouse DIR", file=sys.stderr)
        return 2
    # Out of range, these leave no attack or no enrolment, and every takeover would
    # read as missed: a wrong figure with exit 0.
    if refuse(
        "evaluate takeover",
        [
            (positive(args.window_seconds), "--window-seconds must be positive"),
            (0 < args.enroll_fraction < 1, "--enroll-fraction must be between 0 and 1"),
            (args.holdout >= 1, "--holdout must be at least 1 session"),
            (positive(args.max_impostor_seconds), "--max-impostor-seconds must be positive"),
            (args.users >= 0, "--users must be 0 (all) or more"),
        ],
    ):
        return 2
    results: list[TakeoverResult] = []
    loaded: dict[str, list[Account]] = {}
    for modality, root, load in (
        ("keystrokes", args.keystrokes, _keystroke_accounts),
        ("mouse", args.mouse, _mouse_accounts),
    ):
        if root is None:
            continue
        if not root.is_dir():
            print(f"not a directory: {root}", file=sys.stderr)
            return 2
        accounts = load(root, args)
        if args.users:
            accounts = accounts[: args.users]
        if len(accounts) < 2:
            print(f"{modality}: need at least two accounts under {root}", file=sys.stderr)
            return 2
        loaded[modality] = accounts
    if args.desk:
        from profiles.evaluation.takeover import desk_account

        # zip stops at the shorter list: a typist or pointer shared by two desks would
        # make an attacker's pointing the owner's own.
        loaded["desk"] = [
            desk_account(k, m) for k, m in zip(loaded["keystrokes"], loaded["mouse"], strict=False)
        ]
    # Fitted on the enrolment segments only: the shipped background saw whole recordings,
    # the held-out genuine parts included (test data never trains anything).
    background = enrolment_background(
        loaded.get("keystrokes", []), loaded.get("mouse", []), Background.default()
    )
    # Only for the file protocol: in the default one a typist with one recording is a
    # profile the shipped policy never activates (reported), not the policy of every typist.
    typing_policy = (
        _typing_enrolment(loaded.get("keystrokes", []))
        if args.keystroke_holdout == "file"
        else None
    )
    for modality, accounts in loaded.items():
        result = evaluate_takeover(
            accounts,
            background,
            modality,  # type: ignore[arg-type]
            enrollment=None if modality == "mouse" else typing_policy,
            window_s=args.window_seconds,
            max_impostor_s=args.max_impostor_seconds,
            progress=functools.partial(_progress, desc=modality),
        )
        results.append(result)
        print(json.dumps(strict_json(result.figures())), file=sys.stderr)
        if result.owners_never_active:
            print(
                f"{modality}: {len(result.owners_never_active)} owners whose profile never became"
                " active (still enrolling when the takeovers start; their takeovers, mostly"
                " missed, stay in the figures): " + ", ".join(result.owners_never_active),
                file=sys.stderr,
            )

    # Output paths may name directories that do not exist yet (fresh held-out runs).
    if args.json:
        write_output(
            args.json,
            json.dumps(strict_json([_payload(r) for r in results]), indent=1, allow_nan=False),
        )
    plotted = write_plot(args.plot, functools.partial(_plot, results)) if args.plot else True
    print(" | ".join(r.summary() for r in results))
    # Without held-out genuine time "0 false alarms in 0.0 h" measures nothing: like the
    # other commands with nothing to measure, the figures are printed and the exit is 1.
    # Genuine time is what an active profile judged (a profile still enrolling alarms no one).
    unmeasured = [r.modality for r in results if not r.genuine_hours()]
    for modality in unmeasured:
        print(
            f"{modality}: 0 h of held-out genuine activity judged by an active profile,"
            " no false alarm rate",
            file=sys.stderr,
        )
    if unmeasured:
        return 1
    return 0 if plotted else 2


def _typing_enrolment(accounts: list[Account]) -> EnrollmentPolicy | None:
    """The shipped enrolment policy, unless a typist enrols on fewer recordings than it
    asks sessions of (``--keystroke-holdout file`` with two files each): then it asks as
    many as the fewest any typist has, said on stderr, else no profile would ever score."""
    import sys

    from profiles.enrollment import EnrollmentPolicy

    shipped = EnrollmentPolicy()
    fewest = min((len(a.enroll) for a in accounts), default=shipped.min_sessions)
    if fewest >= shipped.min_sessions:
        return None
    print(
        f"keystrokes: enrolment asks {fewest} session(s), not {shipped.min_sessions}: a typist"
        f" enrols on {fewest} recording(s) only",
        file=sys.stderr,
    )
    return replace(shipped, min_sessions=max(1, fewest))


def _progress(items: Iterable[Account], desc: str) -> Iterable[Account]:
    import sys

    from tqdm import tqdm

    return tqdm(list(items), desc=desc, file=sys.stderr)


def _keystroke_accounts(root: Path, args: argparse.Namespace) -> list[Account]:
    import sys

    from tqdm import tqdm

    from collectors.datasets.freetext import iter_sessions
    from profiles.evaluation.takeover import split_by_session, split_by_time
    from profiles.keystrokes import KeystrokeEvents
    from streams.commands._freetext import reported

    by_user: dict[str, list[tuple[str, KeystrokeEvents]]] = {}
    files: dict[str, int] = {}
    sessions = tqdm(iter_sessions(root), desc="read keystrokes", file=sys.stderr)
    # Skipped, duplicate and refused rows on stderr, as `evaluate keystrokes` reports them.
    for user, session, s in reported(root, sessions):
        files[user] = files.get(user, 0) + 1
        if s.t_ns.size:
            events = KeystrokeEvents.from_ns(s.t_ns, s.is_down, s.key_class)
            by_user.setdefault(user, []).append((session, events))
    # Named, as the mouse accounts left out are: a folder without a recording, or
    # whose files hold no key event, would otherwise vanish from the figures unsaid.
    for user in sorted(p.name for p in root.iterdir() if p.is_dir()):
        if user not in by_user:
            held = f"{files[user]} files without a key event" if user in files else "no .csv files"
            print(f"skipped keystroke account {user}: {held}", file=sys.stderr)
    if args.keystroke_holdout == "tail":
        return [
            split_by_time(u, recs, args.window_seconds, args.enroll_fraction)
            for u, recs in sorted(by_user.items())
        ]
    accounts = []
    for user, recs in sorted(by_user.items()):
        if len(recs) < 2:
            print(
                f"skipped keystroke account {user}: {len(recs)} recording with key events,"
                " --keystroke-holdout file needs two (one to enrol, the last held out)",
                file=sys.stderr,
            )
            continue
        # The last file in name order is another day's typing (another platform here).
        accounts.append(split_by_session(user, sorted(recs), args.window_seconds, 1))
    return accounts


def _mouse_accounts(root: Path, args: argparse.Namespace) -> list[Account]:
    import sys

    from tqdm import tqdm

    from collectors.datasets.balabit import iter_sessions
    from profiles.evaluation.takeover import split_by_session
    from profiles.mouse import MouseEvents
    from streams.commands._balabit import Reading
    from streams.recordings import balabit_to_mouse_events

    if (root / "training_files").is_dir():
        refs = list(iter_sessions(root, "training_files"))
    else:
        refs = list(iter_sessions(root.parent, root.name))
    by_user: dict[str, list[tuple[str, MouseEvents]]] = {}
    files: dict[str, int] = {}
    reading = Reading()
    for ref in tqdm(refs, desc="read mouse", file=sys.stderr):
        files[ref.account] = files.get(ref.account, 0) + 1
        events = balabit_to_mouse_events(reading.load(ref, "mouse session"))
        if len(events):
            by_user.setdefault(ref.account, []).append((ref.session_id, events))
    reading.report_rows(root)
    for user in sorted(set(files) - set(by_user)):
        print(
            f"skipped mouse account {user}: {files[user]} sessions without a pointer event",
            file=sys.stderr,
        )
    for user, recs in sorted(by_user.items()):
        if len(recs) <= args.holdout:
            print(
                f"skipped mouse account {user}: {len(recs)} sessions with actions, need more"
                f" than --holdout {args.holdout} (some to enrol, {args.holdout} held out)",
                file=sys.stderr,
            )
    return [
        split_by_session(u, recs, args.window_seconds, args.holdout)
        for u, recs in sorted(by_user.items())
        if len(recs) > args.holdout
    ]


def strict_json(value: object) -> object:
    """``value`` with every non-finite float as ``None``: standard JSON has no Infinity/NaN.

    In the figures and per-pair results ``None`` means "not detected within
    --max-impostor-seconds" (an infinite time to detection) or "not defined" (no data).

    >>> strict_json({"ttd_s": float("inf"), "pairs": [1.5, float("nan")], "n": 3})
    {'ttd_s': None, 'pairs': [1.5, None], 'n': 3}
    """
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def _payload(r: object) -> dict:
    from dataclasses import asdict

    from profiles.evaluation.takeover import TakeoverResult

    assert isinstance(r, TakeoverResult)
    return {
        "figures": r.figures(),
        "owners_never_active": r.owners_never_active,
        "takeovers": [asdict(t) for t in r.takeovers],
        "genuine": [
            # `judged` is GenuineRun's (windows an active profile judged, ``seconds`` /
            # window_s); `scored`, the windows among them with a calibrated score.
            {k: v for k, v in asdict(g).items() if k != "scores"} | {"scored": len(g.scores)}
            for g in r.genuine
        ],
    }


def _plot(results: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        s = np.sort(r.ttd_seconds())
        frac = np.arange(1, s.size + 1) / s.size
        ok = np.isfinite(s)
        ax.step(s[ok], frac[ok], where="post", label=f"{r.modality} ({r.figures()['pairs']} pairs)")
    ax.axvline(60, ls=":", c="grey")
    ax.set_xscale("log")
    # Seconds an operator reads, not matplotlib's crowded 3x10^1 4x10^1 minor labels.
    ax.set_xticks(
        [5, 10, 30, 60, 120, 300, 600], labels=["5", "10", "30", "60", "120", "300", "600"]
    )
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("active attacker seconds until the first 'impostor' verdict")
    ax.set_ylabel("takeovers detected (fraction)")
    ax.set_title("Time to detection")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
