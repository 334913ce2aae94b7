"""``cadence verdicts tail``: print verdicts as they arrive, for analysts."""

from __future__ import annotations

import argparse
import sys

from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser)
    parser.add_argument(
        "--level",
        choices=("trusted", "uncertain", "suspicious", "impostor"),
        help="show this level and worse",
    )
    parser.add_argument("--user", help="only this pseudonym")
    parser.add_argument("--follow", action="store_true", help="keep waiting for new verdicts")
    parser.add_argument("--json", action="store_true", help="print raw JSON records")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest")


def run(args: argparse.Namespace) -> int:
    import uuid

    from confluent_kafka import Consumer, KafkaException

    from streams.topics import VERDICTS
    from streams.verdict import LEVELS, decode_verdict

    floor = LEVELS.index(args.level) if args.level else 0
    consumer = Consumer(
        {
            **args.kafka_config,
            # The SOC principal may only use groups named cadence-soc* (kafka-users.yaml).
            "group.id": f"cadence-soc-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if args.from_beginning or not args.follow else "latest",
            "enable.auto.commit": False,
        }
    )
    try:
        # An unreachable broker or a missing topic must not read as "no verdicts".
        meta = consumer.list_topics(VERDICTS.name, timeout=15).topics.get(VERDICTS.name)
    except KafkaException as exc:
        consumer.close()
        print(f"cannot reach Kafka: {exc.args[0]}", file=sys.stderr)
        return 1
    if meta is None or meta.error is not None:
        consumer.close()
        reason = "missing" if meta is None else meta.error
        print(f"cannot read {VERDICTS.name}: {reason}", file=sys.stderr)
        return 1
    consumer.subscribe([VERDICTS.name])
    idle = 0
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1
                if not args.follow and idle >= 5:
                    return 0
                continue
            idle = 0
            if msg.error():
                print(f"error: {msg.error()}", file=sys.stderr)
                continue
            try:
                v = decode_verdict(msg.value() or b"")
            except ValueError as exc:
                print(
                    f"skipping undecodable verdict at offset {msg.offset()}: {exc}", file=sys.stderr
                )
                continue
            if LEVELS.index(v.level) < floor or (args.user and v.user != args.user):
                continue
            if args.json:
                print((msg.value() or b"").decode())
            else:
                kb = "-" if v.keyboard_score is None else f"{v.keyboard_score:.2f}"
                ms = "-" if v.mouse_score is None else f"{v.mouse_score:.2f}"
                print(
                    f"{v.window_end_ms / 1000:.0f} {v.user[:12]} {v.level:<10} trust={v.trust:5.1f}"
                    f" kb={kb} mouse={ms} {v.enrollment} {'; '.join(v.reasons)}"
                )
    finally:
        consumer.close()
