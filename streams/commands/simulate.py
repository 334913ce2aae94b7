"""``cadence simulate``: publish a synthetic workload of users, with scheduled takeovers.

Batches go through :class:`collectors.delivery.BatchSender` (in-memory spool) to
``cadence.events.v1``, exactly like the agent's. The ground truth (which account is
taken over from when, by whom) is printed to stderr as JSON lines at the start, and
written to ``--truth FILE`` if given.
"""

from __future__ import annotations

import argparse
import math
import sys

from streams.commands._signing import add_sign_argument, signer_or_exit
from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument("--users", type=int, default=20, help="simulated users (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument(
        "--rate",
        type=float,
        default=1.0,
        metavar="X",
        help="simulated seconds per wall-clock second (default 1: real time)",
    )
    parser.add_argument("--fast", action="store_true", help="as fast as possible (no pacing)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=math.inf,
        metavar="S",
        help="simulated duration (default: until interrupted)",
    )
    parser.add_argument(
        "--takeover",
        action="append",
        default=[],
        metavar="USER_INDEX@SECONDS",
        help="an impostor takes over this user's device and session at this time (repeatable)",
    )
    parser.add_argument(
        "--takeover-mode",
        choices=("session", "new-session", "new-device"),
        default="session",
        help="impostor works in the owner's session (default), a new session, or a new device",
    )
    parser.add_argument(
        "--run-id",
        default=None,
        help="names this run's devices and sessions (default: the start time), so a rerun "
        "is not deduplicated against the previous one",
    )
    parser.add_argument(
        "--topic", default=None, help="default: env CADENCE_EVENTS_TOPIC, else cadence.events.v1"
    )
    parser.add_argument("--truth", default=None, metavar="FILE", help="write ground truth JSON")
    parser.add_argument("--flush-timeout", type=float, default=30.0, help="seconds to flush")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_sign_argument(parser)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import time

    from collectors.delivery import BatchSender
    from collectors.publish import PublishStats, start_ending_now
    from collectors.simulate import Takeover, Workload
    from streams.commands._args import positive, refuse
    from streams.commands._replay import send_and_close
    from streams.topics import EVENTS

    speed = math.inf if args.fast else args.rate
    signer = signer_or_exit(args, "simulate")
    if isinstance(signer, int):
        return signer
    if refuse(
        "simulate",
        [
            (positive(args.rate), "--rate must be a positive number"),
            # Not `positive`: the default, inf, is "until interrupted".
            (args.seconds > 0, "--seconds must be a positive number"),
            (
                speed <= 1.0 or math.isfinite(args.seconds),
                "--fast and --rate above 1 need --seconds: simulated time would run ahead of"
                " the clock for ever, and the worker dead-letters batches sent more than"
                " 5 minutes in the future",
            ),
        ],
    ):
        return 2
    try:
        takeovers = [
            dataclasses.replace(
                Takeover.parse(text),
                new_session=args.takeover_mode == "new-session",
                new_device=args.takeover_mode == "new-device",
            )
            for text in args.takeover
        ]
        workload = Workload(
            users=args.users,
            seed=args.seed,
            takeovers=takeovers,
            run=args.run_id if args.run_id is not None else str(int(time.time())),
            # Wall-clock event times: a real-time run starts now and looks live to the
            # pipeline, a faster one ends now; the truth file states the same start.
            start_wall_ms=start_ending_now(args.seconds, speed),
        )
    except ValueError as exc:
        print(f"cadence simulate: {exc}", file=sys.stderr)
        return 2
    truth = [dataclasses.asdict(t) for t in workload.truth]
    for row in truth:
        print(json.dumps({"takeover": row}), file=sys.stderr)
    if args.truth:
        try:
            truth_file = open(args.truth, "w")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            print(f"cadence simulate: cannot write --truth: {exc}", file=sys.stderr)
            return 2
        with truth_file as fh:
            json.dump(
                {
                    "seed": args.seed,
                    "start_wall_ms": workload.start_wall_ms,
                    "users": [
                        {"index": u.index, "user": u.user, "device": u.device}
                        for u in workload.users
                    ],
                    "takeovers": truth,
                },
                fh,
                indent=2,
            )

    def report(stats: PublishStats) -> None:
        if not args.quiet:
            print(
                f"simulate: t={stats.last_t_s:.1f}s batches={stats.batches} "
                f"events={stats.events} ({stats.events_per_s:.0f}/s) pending={sender.pending}",
                file=sys.stderr,
            )

    sender = BatchSender(
        bootstrap=args.kafka_config["bootstrap.servers"],
        topic=args.topic or EVENTS.name,
        extra_config={k: v for k, v in args.kafka_config.items() if k != "bootstrap.servers"},
        signer=signer,
    )
    timed = workload.batches(args.seconds)
    return send_and_close(timed, sender, speed, report, args.flush_timeout, "simulate")
