"""``cadence evaluate mouse``: global ROC AUC on Balabit-layout recordings.

Enrolls each account on ``DIR/training_files/<account>/session_*``, scores the
labelled sessions of ``DIR/test_files`` and prints the AUC as its last line.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from streams.commands._output import write_output, write_plot


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="Balabit-layout root directory")
    parser.add_argument("--labels", required=True, type=Path, help="CSV filename,is_illegal")
    parser.add_argument(
        "--method",
        default="typed_histogram_ratio",
        help="detector name, comma-separated list, or 'all' (default: typed_histogram_ratio, the profile's)",
    )
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--plot", type=Path, help="write the ROC curve as a PNG here")


def run(args: argparse.Namespace) -> int:
    import json
    import math
    import sys

    from tqdm import tqdm

    from collectors.datasets.balabit import SessionRef, iter_sessions, read_labels_checked
    from profiles.evaluation.mouse import DEFAULT_METHOD, METHODS, LabelledSession, evaluate_mouse
    from profiles.mouse import MouseEvents
    from streams.commands._balabit import Reading
    from streams.recordings import balabit_to_mouse_events

    to_events = balabit_to_mouse_events

    # The first method is the headline (JSON "auc", the summary line): with "all", the
    # profile's own detector.
    everything = [DEFAULT_METHOD, *(m for m in METHODS if m != DEFAULT_METHOD)]
    methods = everything if args.method == "all" else args.method.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        print(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}", file=sys.stderr)
        return 2

    try:
        checked = read_labels_checked(args.labels)
        train_refs = list(iter_sessions(args.data, "training_files"))
        all_test_refs = list(iter_sessions(args.data, "test_files"))
    except (OSError, ValueError) as exc:
        print(f"cannot evaluate: {exc}", file=sys.stderr)
        return 2
    labels = checked.by_session
    if checked.bad_rows:
        print(f"{args.labels}: skipped {checked.bad_rows} unreadable label rows", file=sys.stderr)
    if checked.conflicting:
        print(
            f"{args.labels}: left out {len(checked.conflicting)} sessions labelled both ways"
            f" ({', '.join(checked.conflicting[:5])}{' …' if len(checked.conflicting) > 5 else ''})",
            file=sys.stderr,
        )
    reading = {"training_files": Reading(), "test_files": Reading()}
    training: dict[str, list[MouseEvents]] = {}
    for ref in tqdm(train_refs, desc="enrollment sessions", file=sys.stderr):
        s = reading["training_files"].load(ref, "enrolment")
        # Kept even when empty: an account left with nothing is "no usable enrolment".
        training.setdefault(ref.account, []).append(to_events(s))

    test_refs = [r for r in all_test_refs if r.session_id in labels]
    absent = sorted(set(labels) - {r.session_id for r in test_refs})
    missing = len(absent)
    if missing:
        print(
            f"{missing} of {len(labels)} labelled sessions are not under {args.data / 'test_files'}",
            file=sys.stderr,
        )

    def labelled(ref: SessionRef) -> LabelledSession:
        s = reading["test_files"].load(ref, None)  # listed with the skipped sessions
        return LabelledSession(
            ref.account, ref.session_id, to_events(s), labels[ref.session_id], s.unusable
        )

    tests = (labelled(r) for r in test_refs)
    try:
        results = evaluate_mouse(
            training,
            tests,
            methods=methods,
            progress=lambda it: tqdm(
                it, total=len(test_refs), desc="test sessions", file=sys.stderr
            ),
        )
    except ValueError as exc:
        print(f"cannot evaluate: {exc}", file=sys.stderr)
        return 2

    first = results[0]
    for split, read in reading.items():
        read.report_rows(args.data / split)
    unusable = reading["test_files"].unusable
    for session_id, reason in sorted(first.skipped.items()):
        print(f"skipped {session_id}: {reason}", file=sys.stderr)
    # Counted in the summary and listed in the JSON; one stderr line is enough for them.
    for r in results:
        r.skipped.update(dict.fromkeys(absent, "labelled, but no such file under test_files"))
    if first.no_actions:
        print(
            f"{first.no_actions} scored sessions have no usable action (score 0, the population's)",
            file=sys.stderr,
        )
    for r in results:
        print(
            f"{r.method:18s} AUC {r.auc:.4f}  {r.bytes_per_user:6d} B/user  "
            f"{r.us_per_window:7.1f} us per {r.window_actions}-action window"
        )
    if args.json:
        payload = {
            "auc": None if math.isnan(first.auc) else first.auc,
            "sessions": first.sessions,
            "users": first.accounts,
            "genuine": first.genuine,
            "impostor": first.impostor,
            "method": first.method,
            "sessions_skipped": len(first.skipped),
            "labels_missing": missing,
            "label_rows_bad": checked.bad_rows,
            "rows_skipped": {split: read.bad_rows for split, read in reading.items()},
            "sessions_unusable": unusable,
            "labels_conflicting": list(checked.conflicting),
            "no_actions": first.no_actions,
            "skipped": first.skipped,
            "methods": {
                r.method: {
                    "auc": None if math.isnan(r.auc) else r.auc,
                    "bytes_per_user": r.bytes_per_user,
                    "us_per_window": r.us_per_window,
                    "window_actions": r.window_actions,
                }
                for r in results
            },
            "scores": first.scores,
        }
        write_output(args.json, json.dumps(payload, indent=2))
    plotted = True
    if args.plot and not math.isnan(first.auc):
        plotted = write_plot(args.plot, functools.partial(_plot, results))
    print(first.summary())
    # An AUC over sessions scored 0 for want of an action measures the files, not the
    # detector (columns or units this reader got wrong): a figure, but not exit 0.
    no_action = unusable + first.no_actions
    if 2 * no_action > len(test_refs):
        print(
            f"not a measurement: {no_action} of {len(test_refs)} labelled sessions have no"
            f" usable action ({unusable} unreadable, {first.no_actions} without an action);"
            " check their columns, names and time unit",
            file=sys.stderr,
        )
        return 1
    if math.isnan(first.auc):
        return 1
    return 0 if plotted else 2


def _plot(results: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from profiles.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for r in results:
        genuine = [s for k, s in r.scores.items() if r.labels[k] == 0]
        impostor = [s for k, s in r.scores.items() if r.labels[k] == 1]
        _, far, frr = roc_curve(genuine, impostor)
        # far = impostors accepted; the ROC plots impostors detected vs owners rejected.
        ax.plot(frr, 1 - far, label=f"{r.method} (AUC {r.auc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set_xlabel("owner sessions flagged (false positive rate)")
    ax.set_ylabel("takeover sessions flagged (true positive rate)")
    ax.set_title("Mouse, Balabit labelled test sessions")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
