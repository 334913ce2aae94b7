"""``cadence verdicts tail``: print verdicts as they arrive, for analysts."""

from __future__ import annotations

import argparse
import sys

from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser, operator=True)
    parser.add_argument(
        "--level",
        choices=("trusted", "uncertain", "suspicious", "impostor"),
        help="show this level and worse",
    )
    parser.add_argument("--user", help="only this pseudonym")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep waiting for new verdicts (default: stop at the verdicts there were at start)",
    )
    parser.add_argument("--json", action="store_true", help="print raw JSON records")
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest")


# Without --follow: how many empty polls (of 1 s) in a row end a read that has not
# reached the end (a broker lost mid-read), with an error, instead of waiting for good.
STALL_POLLS = 30
# How long the topic's metadata, then each partition's watermarks, may take to come.
METADATA_TIMEOUT_S = 15.0


def run(args: argparse.Namespace) -> int:
    import uuid

    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    from streams.commands._kafka import patiently, unreachable
    from streams.privacy import PSEUDONYM
    from streams.topics import VERDICTS
    from streams.verdict import LEVELS, decode_verdict

    if args.user is not None and not PSEUDONYM.fullmatch(args.user):
        # A login, or the 12 digits the text output shows, matches nothing: an empty
        # output that reads as "no verdicts" (docs/soc.md).
        print(
            "cadence verdicts tail: --user: not a pseudonym (64 hex digits): use "
            "`cadence pseudonym LOGIN`, or the user field of --json",
            file=sys.stderr,
        )
        return 2

    floor = LEVELS.index(args.level) if args.level else 0
    consumer = Consumer(
        {
            **args.kafka_config,
            # The SOC principal may only use groups named cadence-soc* (kafka-users.yaml).
            "group.id": f"cadence-soc-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if args.from_beginning or not args.follow else "latest",
            "enable.auto.commit": False,
            # Without --follow, a partition's end also ends its read (see below).
            "enable.partition.eof": not args.follow,
        }
    )
    # Without --follow: each partition's last offset when the command started. The read
    # stops once every partition has reached it, however busy the topic is since, and
    # however long the first fetch takes (partitions are assigned, no group join).
    last: dict[int, int] | None = None
    try:
        # An unreachable broker or a missing topic must not read as "no verdicts".
        # In steps (patiently): Ctrl-C waited for the end of one call of 15 s.
        metadata = patiently(
            consumer, consumer.list_topics, VERDICTS.name, timeout=METADATA_TIMEOUT_S
        )
        meta = metadata.topics.get(VERDICTS.name)
        if meta is not None and meta.error is None and not args.follow:
            last = {}
            for partition in meta.partitions:
                low, high = patiently(
                    consumer,
                    consumer.get_watermark_offsets,
                    TopicPartition(VERDICTS.name, partition),
                    timeout=METADATA_TIMEOUT_S,
                )
                if high > low:
                    last[partition] = high - 1
    except KafkaException as exc:
        consumer.close()
        print(unreachable(args.kafka_config, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        consumer.close()
        raise
    if meta is None or meta.error is not None:
        consumer.close()
        reason = "missing" if meta is None else meta.error
        print(f"cannot read {VERDICTS.name}: {reason}", file=sys.stderr)
        return 1
    if last is None:
        consumer.subscribe([VERDICTS.name])
    else:
        consumer.assign([TopicPartition(VERDICTS.name, p, OFFSET_BEGINNING) for p in last])
    idle = 0
    try:
        while last is None or last:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1
                if last is not None and idle >= STALL_POLLS:
                    print(
                        f"no verdict for {STALL_POLLS} s before the end of {VERDICTS.name} "
                        f"(partitions {sorted(last)}): stopping",
                        file=sys.stderr,
                    )
                    return 1
                continue
            idle = 0
            partition, error = msg.partition() or 0, msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    if last is not None:
                        last.pop(partition, None)
                    continue
                print(f"error: {error}", file=sys.stderr)
                continue
            if last is not None:
                end = last.get(partition)
                if end is None or (msg.offset() or 0) > end:
                    continue  # written after the start, on a partition already read to its end
                if (msg.offset() or 0) >= end:
                    last.pop(partition)  # this record is still shown
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
        return 0
    finally:
        consumer.close()
