"""The worker's outgoing records (verdicts, findings, profile changelog) through librdkafka.

Faust's producer (aiokafka) batches, partitions (murmur2 in Python) and writes every
record on the worker's event loop, the thread that also decodes and judges. Here
librdkafka does that work on its own threads; the loop only hands records over and,
in :meth:`RecordSender.poll`, runs the delivery callbacks, so acks still happen on the
loop, in the order Kafka acknowledged the records.

Records keep the partitions Faust's producer gave them: keyed records go through
librdkafka's ``murmur2_random`` partitioner, the Java client's and aiokafka's default,
so a user's verdicts stay on the partition they always had.

An idempotent producer can fail for good (a *fatal* error: the broker lost records it
had acknowledged, or refuses the producer id): every later record is refused, and the
records in flight fail. Retrying through it would hold every batch unacked for ever,
so :attr:`RecordSender.on_fatal` is told once, and the worker stops (a new process has a
new producer; what was not acked is redelivered).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

log = logging.getLogger(__name__)

# Called once per record from :meth:`RecordSender.poll`: the error (None if delivered)
# and the record's partition and offset (-1 when it failed).
Delivered = Callable[[Exception | None, int, int], None]


class ProducerFailed(RuntimeError):
    """The producer failed for good (a fatal librdkafka error): nothing can be sent."""


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
            "error_cb": self._on_error,
        }
        self._producer: Any = None
        # Told once, with the reason, when the producer fails for good.
        self.on_fatal: Callable[[str], None] | None = None
        self.failed: str | None = None

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
        """Queue a record; raises ``BufferError`` when librdkafka's queue is full,
        :class:`ProducerFailed` once the producer has failed for good, and
        ``KafkaException`` for a record librdkafka refuses at once."""

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
        try:
            self.producer.produce(topic, value, key, **kwargs)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.fatal():
                self._fail(error)
                raise ProducerFailed(error.str()) from exc
            raise

    def _on_error(self, error: KafkaError) -> None:
        # Errors that are not fatal (a broker down, a connection lost) pass: librdkafka
        # logs them and retries, and deliveries that time out are reported and resent.
        if error.fatal():
            self._fail(error)

    def _fail(self, error: KafkaError) -> None:
        if self.failed is not None:
            return
        self.failed = error.str()
        log.critical("the outgoing records' producer failed for good: %s", self.failed)
        if self.on_fatal is not None:
            self.on_fatal(self.failed)

    def poll(self) -> int:
        """Run the delivery callbacks of what Kafka acknowledged since the last poll."""
        return 0 if self._producer is None else int(self._producer.poll(0))

    def __len__(self) -> int:
        """Records queued or in flight, not yet reported."""
        return 0 if self._producer is None else len(self._producer)
