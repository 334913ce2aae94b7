"""``cadence evaluate keystrokes``: per-user EER on free-text keystroke recordings.

Both directories hold ``<user>/<session>.csv`` files (``type,key,t_ns``). Every
user enrols on all their files under ``--enroll``; the files under ``--test``
are cut into windows of ``--window`` key presses, each scored against every
enrolled profile. The last line on stdout is the one-line summary.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from streams.commands._output import write_output, write_plot


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--enroll", type=Path, required=True, help="enrolment DIR/<user>/*.csv")
    parser.add_argument("--test", type=Path, required=True, help="test DIR/<user>/*.csv")
    parser.add_argument(
        "--window", type=int, default=100, help="key presses per scored window (default 100)"
    )
    parser.add_argument(
        "--method",
        default="histogram",
        help="histogram (default), histogram-raw, or vector:<profiles.detectors module>",
    )
    parser.add_argument("--json", type=Path, help="write the summary as JSON here")
    parser.add_argument("--plot", type=Path, help="write a DET plot (PNG) here")


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np
    import orjson
    from tqdm import tqdm

    from collectors.datasets.freetext import iter_sessions
    from profiles.evaluation.keystrokes import check_method, evaluate_keystrokes
    from profiles.keystrokes import KeystrokeEvents
    from streams.commands._freetext import reported

    if args.window < 2:
        # A window's flights and rhythm need two presses at least.
        print(f"--window must be at least 2 key presses, got {args.window}", file=sys.stderr)
        return 2
    try:
        check_method(args.method)  # before reading any recording
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    def load(root: Path) -> dict[str, list[KeystrokeEvents]]:
        if not root.is_dir():
            raise SystemExit(f"not a directory: {root}")
        out: dict[str, list[KeystrokeEvents]] = {}
        read = tqdm(iter_sessions(root), desc=f"read {root.name}", file=sys.stderr)
        for user, _, s in reported(root, read):
            # A user whose files are all empty is kept (with no session) so that it is
            # reported as skipped rather than silently vanishing.
            sessions = out.setdefault(user, [])
            if s.t_ns.size:
                sessions.append(KeystrokeEvents.from_ns(s.t_ns, s.is_down, s.key_class))
        # The reader yields files: a user folder without a .csv file yields nothing.
        for user in sorted(p.name for p in root.iterdir() if p.is_dir()):
            if user not in out:
                print(f"skipped {user}: no .csv files under {root}", file=sys.stderr)
        return out

    enroll, test = load(args.enroll), load(args.test)
    result = evaluate_keystrokes(
        enroll,
        test,
        n_presses=args.window,
        method=args.method,
        progress=lambda items: tqdm(items, desc="score", file=sys.stderr),
    )
    for user, reason in result.skipped.items():
        print(f"skipped {user}: {reason}", file=sys.stderr)
    summary = result.summary()
    if args.json:
        # Written even when nothing could be scored: eer_mean is then null, never 0.
        write_output(args.json, orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    if not result.eer_by_user:
        print("no user has both genuine and impostor test windows", file=sys.stderr)
        print(
            f"keystrokes {args.method}: window {args.window} presses, 0 users scored, "
            f"{len(result.skipped)} skipped, no EER"
        )
        return 1
    for user, eer in sorted(result.eer_by_user.items()):
        n_gen = result.genuine[user].size
        print(f"{user:>12}  EER {100 * eer:5.1f} %  ({n_gen} genuine windows)")
    plotted = True
    if args.plot:
        plotted = write_plot(
            args.plot, functools.partial(_plot_det, result.genuine, result.impostor, args.window)
        )
    print(
        f"keystrokes {args.method}: window {args.window} presses, {summary['users']} users, "
        f"EER mean {100 * summary['eer_mean']:.2f} % median {100 * summary['eer_median']:.2f} %"
        f" (min {100 * float(np.min(list(result.eer_by_user.values()))):.1f} %,"
        f" max {100 * float(np.max(list(result.eer_by_user.values()))):.1f} %;"
        f" {len(result.skipped)} users skipped)"
    )
    return 0 if plotted else 2


def _plot_det(genuine: dict, impostor: dict, window: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from profiles.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    grid = np.linspace(0.0, 1.0, 201)
    frrs = []
    for user in genuine:
        _, far, frr = roc_curve(genuine[user], impostor[user])
        # FRR as a function of FAR, on a common grid, to average users' curves.
        frrs.append(np.interp(grid, far, frr))
        ax.plot(100 * far, 100 * frr, color="0.8", lw=0.6)
    ax.plot(100 * grid, 100 * np.mean(frrs, axis=0), color="C0", lw=2, label="mean over users")
    ax.plot([0, 100], [0, 100], "k:", lw=0.8, label="EER line")
    ax.set(
        xlim=(0, 40),
        ylim=(0, 40),
        xlabel="false accept rate (%)",
        ylabel="false reject rate (%)",
        title=f"Keystrokes, windows of {window} presses",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
