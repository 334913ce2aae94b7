"""The worker's outgoing records (verdicts, findings, profile changelog) through librdkafka.

Faust's producer (aiokafka) batches, partitions (murmur2 in Python) and writes every
record on the worker's event loop, the thread that also decodes and judges. Here
librdkafka does that work on its own threads; the loop only hands records over and,
in :meth:`RecordSender.poll`, runs the delivery callbacks, so acks still happen on the
loop, in the order Kafka acknowledged the records.

Records keep the partitions Faust's producer gave them: keyed records go through
librdkafka's ``murmur2_random`` partitioner, the Java client's and aiokafka's default,
so a user's verdicts stay on the partition they always had.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Called once per record from :meth:`RecordSender.poll`: the error (None if delivered)
# and the record's partition and offset (-1 when it failed).
Delivered = Callable[[Exception | None, int, int], None]


class RecordSender:
    """A librdkafka producer whose delivery reports run on the caller's thread."""

    def __init__(self, config: dict[str, str], linger_s: float, batch_bytes: int) -> None:
        self.config = {
            **config,
            "linger.ms": linger_s * 1000.0,
            "batch.size": batch_bytes,
            "partitioner": "murmur2_random",
            "acks": "all",
            # Retries after a passing error (a leader change) must not reorder records:
            # a user's states are written in order, an erasure's tombstone after them.
            "enable.idempotence": True,
            # A record waits for its delivery report however long the broker is away (5
            # min); then its failure is reported and the worker sends it again.
            "message.timeout.ms": 300_000,
        }
        self._producer: Any = None

    @property
    def producer(self) -> Any:
        # Made on first use: an app that is built but never runs (tests, `--help`) does
        # not start librdkafka's threads or connect.
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(self.config)
        return self._producer

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        on_delivery: Delivered,
        partition: int | None = None,
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Queue a record; raises ``BufferError`` when librdkafka's queue is full."""

        def report(error: Any, message: Any) -> None:
            if error is not None:
                on_delivery(RuntimeError(str(error)), -1, -1)
            else:
                on_delivery(None, message.partition(), message.offset())

        kwargs: dict[str, Any] = {"on_delivery": report}
        if partition is not None:
            kwargs["partition"] = partition
        if headers is not None:
            kwargs["headers"] = list(headers.items())
        self.producer.produce(topic, value, key, **kwargs)

    def poll(self) -> int:
        """Run the delivery callbacks of what Kafka acknowledged since the last poll."""
        return 0 if self._producer is None else int(self._producer.poll(0))

    def __len__(self) -> int:
        """Records queued or in flight, not yet reported."""
        return 0 if self._producer is None else len(self._producer)
