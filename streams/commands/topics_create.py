"""``cadence topics create``: create cadence's topics, idempotently."""

from __future__ import annotations

import argparse

from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument(
        "--replication-factor", type=int, default=-1, help="default: the broker's default"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")


def run(args: argparse.Namespace) -> int:
    from streams.admin import create_topics

    for name, outcome in create_topics(
        args.kafka_config, replication_factor=args.replication_factor, timeout=args.timeout
    ).items():
        print(f"{name}: {outcome}")
    return 0
