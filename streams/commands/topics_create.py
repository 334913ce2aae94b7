"""``cadence topics create``: create cadence's topics, idempotently."""

from __future__ import annotations

import argparse

from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser, operator=True)
    parser.add_argument(
        "--replication-factor", type=int, default=-1, help="default: the broker's default"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")


def run(args: argparse.Namespace) -> int:
    import sys

    from confluent_kafka import KafkaException

    from streams.admin import TopicsNotCreated, create_topics
    from streams.commands._kafka import context, unreachable

    try:
        outcome = create_topics(
            args.kafka_config, replication_factor=args.replication_factor, timeout=args.timeout
        )
    except TopicsNotCreated as exc:
        for name, result in exc.outcome.items():
            print(f"{name}: {result}")
        failed = sum(result.startswith("failed") for result in exc.outcome.values())
        print(
            f"cadence topics create: {failed} of {len(exc.outcome)} topics not created at "
            f"{args.kafka_config['bootstrap.servers']}{context()}",
            file=sys.stderr,
        )
        return 1
    except KafkaException as exc:
        print(unreachable(args.kafka_config, exc), file=sys.stderr)
        return 1
    for name, result in outcome.items():
        print(f"{name}: {result}")
    return 0
