"""``cadence profiles forget PSEUDONYM``: erase one person's profile (GDPR art. 17).

Sends a forget request to the workers on the control topic, then waits for the
worker's audit record confirming the erasure (``--wait 0`` only queues it: a worker
that is down applies it when it comes back, the request outlives outages).
Verdicts already published and raw events still within their retention are not
touched here; they expire with their topics (docs/privacy.md).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

from streams.config import add_kafka_arguments
from streams.privacy import PSEUDONYM


def configure(parser: argparse.ArgumentParser) -> None:
    add_kafka_arguments(parser, operator=True)
    parser.add_argument("pseudonym", help="the user's pseudonym (`cadence pseudonym LOGIN`)")
    parser.add_argument(
        "--by", default=None, help="who requests it, for the audit record (default: your login)"
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for the worker's confirmation (0: only queue the request)",
    )


# How long the audit topic's metadata, then each partition's end offset, may take to come.
METADATA_TIMEOUT_S = 30.0


def run(args: argparse.Namespace) -> int:
    import time
    import uuid

    import orjson
    from confluent_kafka import Producer

    from streams.privacy import ForgetRequest, encode_request
    from streams.topics import CONTROL

    if not PSEUDONYM.fullmatch(args.pseudonym):
        print("not a pseudonym (64 hex digits): use `cadence pseudonym LOGIN`", file=sys.stderr)
        return 2
    request = ForgetRequest(
        user=args.pseudonym,
        request_id=uuid.uuid4().hex,
        requested_by=args.by or _login(),
        requested_at_ms=time.time() * 1000.0,
    )
    from confluent_kafka import KafkaException

    from streams.commands._kafka import context, unreachable

    try:
        audit = _AuditWatch(args.kafka_config) if args.wait > 0 else None
    except KafkaException as exc:
        print(unreachable(args.kafka_config, exc), file=sys.stderr)
        return 1
    except _NoAuditTopic as exc:
        print(str(exc), file=sys.stderr)
        return 1
    # The collectors' client and default partitioner: the request lands on the
    # partition number of the user's events, i.e. at the worker holding the profile.
    producer = Producer({**args.kafka_config, "acks": "all", "enable.idempotence": True})
    errors: list[object] = []
    producer.produce(
        CONTROL.name,
        key=request.user.encode(),
        value=encode_request(request),
        on_delivery=lambda err, _msg: errors.append(err) if err else None,
    )
    if producer.flush(30) or errors:
        print(
            f"could not send the request to {args.kafka_config['bootstrap.servers']}: "
            f"{errors or 'timed out'}{context()}",
            file=sys.stderr,
        )
        return 1
    print(f"forget request {request.request_id} for {request.user} queued")
    if audit is None:
        return 0
    try:
        record = audit.find(request.request_id, args.wait)
    finally:
        audit.close()
    if record is None:
        print(
            f"no confirmation within {args.wait:.0f} s; the request stays queued", file=sys.stderr
        )
        return 3
    print("done:", orjson.dumps(record).decode())
    if record.get("had_profile") is False:
        # Not an error (a person may never have enrolled), but a mistyped pseudonym
        # looks exactly like this: say so rather than let "done" reassure.
        print(
            "note: the worker held no profile for this pseudonym; if one was expected, check "
            "that it came from `cadence pseudonym LOGIN` with this deployment's key",
            file=sys.stderr,
        )
    return 0


class _NoAuditTopic(RuntimeError):
    """The audit topic cannot be read (missing, not authorised)."""


class _AuditWatch:
    """Reads the audit topic from its current end, looking for one request's record."""

    def __init__(self, kafka_config: dict[str, Any]) -> None:
        import uuid

        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        from streams.commands._kafka import patiently
        from streams.topics import AUDIT

        self.consumer = Consumer(
            {
                **kafka_config,
                "group.id": f"cadence-privacy-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        try:
            # In steps (patiently): Ctrl-C waited for the end of one call of 30 s.
            meta = patiently(
                self.consumer, self.consumer.list_topics, AUDIT.name, timeout=METADATA_TIMEOUT_S
            ).topics.get(AUDIT.name)
            if meta is None or meta.error is not None:
                # No confirmation could ever be read: say so before sending anything.
                reason = "missing" if meta is None else meta.error
                raise _NoAuditTopic(f"cannot read {AUDIT.name}: {reason}")
            # Positions taken before the request is sent, so its record cannot be missed.
            tps = [TopicPartition(AUDIT.name, p, OFFSET_END) for p in meta.partitions]
            ends = [
                TopicPartition(
                    AUDIT.name,
                    tp.partition,
                    patiently(
                        self.consumer,
                        self.consumer.get_watermark_offsets,
                        tp,
                        timeout=METADATA_TIMEOUT_S,
                    )[1],
                )
                for tp in tps
            ]
        except BaseException:
            self.consumer.close()
            raise
        self.consumer.assign(ends)

    def find(self, request_id: str, seconds: float) -> dict[str, object] | None:
        import time

        import orjson

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            try:
                record = orjson.loads(msg.value() or b"{}")
            except orjson.JSONDecodeError:
                continue  # not ours, whatever wrote it: keep waiting for our record
            if isinstance(record, dict) and record.get("request_id") == request_id:
                return dict(record)
        return None

    def close(self) -> None:
        self.consumer.close()


def _login() -> str:
    # Resolved only when needed: getuser() raises for a uid with no passwd entry (a
    # container's arbitrary uid), which must not break the parser of every command.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
