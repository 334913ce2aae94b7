"""The ``cadence`` command: one entry point whose subcommands delegate to the packages.

Each subcommand lives in its own module under :mod:`streams.commands` and exposes
``configure(parser)`` and ``run(args) -> int``. Command modules import their heavy
dependencies (faust, river, confluent-kafka, pynput) inside ``run`` so that
``cadence --help`` works on a workstation that has only the ``collector`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from streams.config import resolve_kafka_config
from streams.env import SettingError

# (command path, module under streams.commands, one-line help)
COMMANDS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("collect",), "collect", "run the workstation capture agent"),
    (("worker",), "worker", "run a stream-processing worker (faust)"),
    (("topics", "create"), "topics_create", "create cadence's topics idempotently"),
    (("replay", "mouse"), "replay_mouse", "publish recorded mouse sessions as raw batches"),
    (("replay", "keystrokes"), "replay_keystrokes", "publish recorded keystroke sessions"),
    (("simulate",), "simulate", "publish a synthetic workload of users, with takeovers"),
    (("evaluate", "mouse"), "evaluate_mouse", "global ROC AUC on Balabit-layout recordings"),
    (("evaluate", "keystrokes"), "evaluate_keystrokes", "per-user EER on free-text keystrokes"),
    (("evaluate", "takeover"), "evaluate_takeover", "time-to-detection and false alarms"),
    (("bench", "pipeline"), "bench_pipeline", "throughput and latency of one worker"),
    (("verdicts", "tail"), "verdicts_tail", "show verdicts as they arrive"),
    (("profiles", "fit-background"), "profiles_fit_background", "fit the population models"),
    (("profiles", "forget"), "profiles_forget", "erase one person's profile (GDPR art. 17)"),
    (("profiles", "export"), "profiles_export", "what cadence holds about one person (art. 15)"),
    (("pseudonym",), "pseudonym", "the pseudonym of a login (needs the deployment key)"),
    (("keys", "issue"), "keys_issue", "the key a user's agent signs batches with"),
    (("keys", "revoke"), "keys_revoke", "revoke one user's keys and issue their next"),
    (("demo",), "demo", "the live demo: workload -> Kafka -> worker -> verdict table"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cadence",
        description="Continuous behavioural-biometric authentication over Kafka.",
    )
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    }
    for path, module_name, help_text in COMMANDS:
        try:
            module = importlib.import_module(f"streams.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"streams.commands.{module_name}":
                raise
            continue  # not built yet on this branch
        for depth in range(1, len(path)):
            prefix = path[:depth]
            if prefix not in groups:
                group_parser = groups[path[: depth - 1]].add_parser(
                    prefix[-1], help=f"{prefix[-1]} commands"
                )
                groups[prefix] = group_parser.add_subparsers(
                    dest="_".join(prefix), metavar="SUBCOMMAND", required=True
                )
        sub = groups[path[:-1]].add_parser(path[-1], help=help_text, description=help_text)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        resolve_kafka_config(args)
    except (OSError, ValueError) as exc:
        print(f"cadence: {exc}", file=sys.stderr)
        return 2
    try:
        status = int(args._run(args) or 0)
        sys.stdout.flush()  # here, where a reader that went away is caught (below)
        return status
    except BrokenPipeError:
        # `cadence ... | head`: the reader has all it wanted. Point stdout at /dev/null so
        # the interpreter's last flush does not fail again on exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it
    except SettingError as exc:
        # A bad environment variable, found where a command reads it: often at the first
        # import of streams.topics, which commands import inside run() (so --help and the
        # commands that do not use topics are unaffected). Only this class: any other
        # ValueError is a bug and keeps its traceback.
        print(f"cadence: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
