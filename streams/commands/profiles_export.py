"""``cadence profiles export PSEUDONYM``: what cadence holds about one person (GDPR art. 15).

Reads the worker's profile changelog (``<app id>-user-profiles-changelog``) and the
person's recent verdicts; never raw events. Text by default, ``--json`` for machines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from typing import Any

from streams.config import add_kafka_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser, operator=True)
    parser.add_argument("pseudonym", help="the user's pseudonym (`cadence pseudonym LOGIN`)")
    parser.add_argument(
        "--verdict-hours",
        type=float,
        default=None,
        help="only verdicts of the last N hours (default: every verdict the topic still holds)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    import orjson

    from streams.commands._args import positive, refuse
    from streams.privacy import PSEUDONYM
    from streams.profile_export import describe, render
    from streams.settings import WorkerSettings
    from streams.topics import VERDICTS
    from streams.verdict import Verdict, decode_verdict

    if refuse(
        "profiles export",
        [
            (
                args.verdict_hours is None or positive(args.verdict_hours),
                "--verdict-hours must be a positive number",
            )
        ],
    ):
        return 2
    if not PSEUDONYM.fullmatch(args.pseudonym):
        # A login here would find nothing and read as "never enrolled".
        print("not a pseudonym (64 hex digits): use `cadence pseudonym LOGIN`", file=sys.stderr)
        return 2
    app_id = os.environ.get("CADENCE_APP_ID", WorkerSettings.app_id)
    key = args.pseudonym.encode()
    state: bytes | None = None
    for _, value in _read(args.kafka_config, f"{app_id}-user-profiles-changelog", key):
        state = value  # compacted log: the last record for the key is the current one
    since_ms = (
        None
        if args.verdict_hours is None
        # From the epoch at the earliest: more hours than that mean every verdict.
        else max(0, int(time.time() * 1000 - args.verdict_hours * 3_600_000))
    )
    verdicts: list[Verdict] = []
    unreadable = 0
    for _, value in _read(args.kafka_config, VERDICTS.name, key, since_ms=since_ms):
        try:
            verdicts.append(decode_verdict(value or b""))
        except ValueError:
            unreadable += 1  # one bad record must not withhold the rest of the answer
    if unreadable:
        print(f"skipped {unreadable} verdict records that could not be read", file=sys.stderr)
    report = describe(args.pseudonym, state or None, verdicts)
    report["verdicts_covered"] = (
        f"every verdict {VERDICTS.name} still holds (retention "
        f"{int(VERDICTS.config['retention.ms']) // 86_400_000} days)"
        if args.verdict_hours is None
        else f"the last {args.verdict_hours:g} hours"
    )
    print(
        orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if args.json else render(report)
    )
    return 0


# How long a topic's metadata, offsets and watermarks may each take to come.
METADATA_TIMEOUT_S = 30.0


def _read(
    kafka_config: dict[str, Any], topic: str, key: bytes, since_ms: int | None = None
) -> list[tuple[int, bytes | None]]:
    """Every record of ``key`` in ``topic`` (from ``since_ms``), as (timestamp, value)."""

    from confluent_kafka import (
        OFFSET_BEGINNING,
        Consumer,
        KafkaError,
        KafkaException,
        TopicPartition,
    )

    from streams.commands._kafka import patiently, unreachable

    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"cadence-privacy-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            # A partition's end also ends its read, should its last offsets hold no record.
            "enable.partition.eof": True,
        }
    )
    try:
        try:
            # In steps (patiently): Ctrl-C waited for the end of each call of 30 s.
            meta = patiently(
                consumer, consumer.list_topics, topic, timeout=METADATA_TIMEOUT_S
            ).topics.get(topic)
            if meta is None or meta.error is not None:
                reason = "missing" if meta is None else meta.error
                raise SystemExit(f"cannot read {topic}: {reason}")
            start = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            if since_ms is not None:
                start = patiently(
                    consumer,
                    consumer.offsets_for_times,
                    [TopicPartition(topic, p, since_ms) for p in meta.partitions],
                    timeout=METADATA_TIMEOUT_S,
                )
            marks = {
                tp.partition: patiently(
                    consumer, consumer.get_watermark_offsets, tp, timeout=METADATA_TIMEOUT_S
                )
                for tp in start
            }
        except KafkaException as exc:
            # As `verdicts tail`: an unreachable broker is one line, not a traceback.
            raise SystemExit(unreachable(kafka_config, exc)) from None
        ends = {p: high for p, (_, high) in marks.items()}
        # Only partitions with records left to read from the start offset: one emptied by
        # retention (low == high > 0) or with nothing since since_ms (offset -1, the end)
        # has none, and waiting for a record there would only time out.
        todo = {
            tp.partition
            for tp in start
            if (tp.offset >= 0 or tp.offset == OFFSET_BEGINNING)
            and ends[tp.partition] > max(marks[tp.partition][0], tp.offset)
        }
        consumer.assign([tp for tp in start if tp.partition in todo])
        out: list[tuple[int, bytes | None]] = []
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    todo.discard(msg.partition() or 0)
                continue
            if msg.key() == key:
                out.append((msg.timestamp()[1], msg.value()))
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
        if todo:
            # A partial read could omit the profile and report "none": no answer is better.
            raise SystemExit(
                f"could not read all of {topic} within 120 s (partitions {sorted(todo)} "
                "unfinished); no report, it would be incomplete"
            )
        return out
    finally:
        consumer.close()
