"""Deliver batches to Kafka through the spool, so that nothing is lost on the way.

Every batch is written to the spool *before* it is handed to the producer, and
removed only after its delivery report succeeded. The producer is fed from the
spool in spool order through a bounded window, so

* a broker outage only grows the spool (on disk, bounded), never the producer's
  memory; on reconnect the backlog drains oldest first;
* a crash or ``kill -9`` loses nothing: the next start resends what was left;
* order per device holds: the idempotent producer (``max.in.flight`` <= 5) keeps
  order per partition, and every resend starts again from the oldest unacknowledged
  batch, so a later batch never overtakes an earlier *first* arrival. Resends can
  duplicate batches; consumers deduplicate on ``(device, seq)``.

``message.timeout.ms`` defaults to 0 (infinite): with idempotence a local timeout
would fail a batch while later ones might still succeed, i.e. reorder them; the
spool bound, not a timeout, is what limits an outage's cost.

The sender is not thread-safe: one thread calls ``send``, ``poll`` and ``flush``
(delivery callbacks run inside ``poll``/``flush`` on that thread).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from collectors.batch_auth import MAC_HEADER, Signer
from collectors.kafka_config import kafka_client_config
from collectors.metrics import CollectorMetrics
from collectors.spool import MemorySpool, Spool, SpoolError, SqliteSpool
from collectors.throttle import Throttle
from collectors.wire import EVENTS_TOPIC, SCHEMA_VERSION, EventBatch, encode_batch

log = logging.getLogger(__name__)

SCHEMA_HEADER = "cadence-schema"
_HEADERS: list[tuple[str, str | bytes | None]] = [(SCHEMA_HEADER, str(SCHEMA_VERSION).encode())]

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable.idempotence": True,
    "max.in.flight.requests.per.connection": 5,
    "compression.type": "zstd",
    "linger.ms": 5,
    "message.timeout.ms": 0,
    "log.connection.close": False,  # idle disconnects are normal; don't log them as errors
}
# Settings the delivery guarantees depend on: extra config may not weaken them.
_REQUIRED = {"acks": "all", "enable.idempotence": True}

# Rewinding after a failed delivery report re-produces the backlog; at most this often.
_REWIND_INTERVAL_S = 1.0
# Recreating a producer after a fatal error: first at once, then backing off to this.
# (A fatal error that persists, e.g. no ACL to obtain an idempotent producer id, would
# otherwise recreate a producer on every poll.)
_RESTART_BACKOFF_MAX_S = 60.0
# Errors after which resending can never succeed: the batch is dropped, counted and logged.
_PERMANENT = (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD)
# The broker refused the record's CreateTime: this workstation's clock is further from
# the broker's than the topic allows (Kafka 4 refuses more than 1 h ahead by default).
# Every resend carries a fresh timestamp from the same clock, so it can succeed only once
# the clock is corrected: the batches stay on the spool and are retried at this pace.
_CLOCK_RETRY_S = 10.0
# A refused produce() call, a failed delivery report (a refused clock fails them all) and
# a failing spool (a full disk fails every operation) are each logged at most this often.
_LOG_INTERVAL_S = 60.0


@dataclass
class SenderCounters:
    produced: int = 0  # produce() calls, including resends
    acked: int = 0  # successful delivery reports
    delivery_errors: int = 0  # failed delivery reports and producer errors
    resends: int = 0  # rewinds to the oldest unacknowledged batch
    producer_restarts: int = 0  # producers recreated after a fatal error
    rejected: int = 0  # batches removed because the broker can never accept them
    unspooled: int = 0  # batches dropped because the spool could not store them
    spool_errors: int = 0  # failed spool reads and writes


class BatchSender:
    """Send :class:`EventBatch` records to ``cadence.events.v1`` without losing any."""

    def __init__(
        self,
        spool: Spool | None = None,
        *,
        bootstrap: str | None = None,
        topic: str = EVENTS_TOPIC,
        extra_config: Mapping[str, Any] | None = None,
        metrics: CollectorMetrics | None = None,
        window: int = 2000,
        signer: Signer | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else CollectorMetrics()
        self.spool: Spool = spool if spool is not None else MemorySpool(metrics=self.metrics)
        if spool is not None and getattr(spool, "metrics", None) is None:
            self.metrics.track_spool(lambda: spool.batches, lambda: spool.nbytes)
        self.topic = topic
        self.window = window
        self.signer = signer  # tags each batch with its user's key (collectors.batch_auth)
        self.counters = SenderCounters()
        self._config: dict[str, Any] = {
            **kafka_client_config(bootstrap),
            **PRODUCER_DEFAULTS,
            **(extra_config or {}),
            **_REQUIRED,
            "error_cb": self._on_error,
            # librdkafka's own lines go through logging (served from poll()) instead of
            # raw stderr, so they share the agent's format and level settings.
            "logger": logging.getLogger("collectors.librdkafka"),
        }
        self._generation = 0
        self._producer = Producer(self._config)
        self._inflight = 0  # produced by the current producer, report not yet seen
        self._cursor = 0  # spool id of the last batch handed to the current producer
        self._backlog = True  # spool may hold batches past the cursor: read them from disk
        self._acked: list[int] = []
        self._rewind_to: int | None = None
        self._last_rewind = 0.0
        self._fatal: KafkaError | None = None
        self._closed = False
        self._retry_at = 0.0  # no produce() before this monotonic time (after a refusal)
        self._restart_at = 0.0  # no producer restart before this monotonic time
        self._restart_delay = 1.0
        self._log_refusal = Throttle(_LOG_INTERVAL_S)
        self._log_delivery = Throttle(_LOG_INTERVAL_S)
        self._log_spool = Throttle(_LOG_INTERVAL_S)
        self._pump()

    # -- public API -------------------------------------------------------------

    def next_seq(self, device: str) -> int:
        """The next sequence number for ``device`` (persisted with a durable spool)."""
        return self.spool.next_seq(device)

    def send(self, batch: EventBatch) -> None:
        """Spool ``batch`` and hand it to the producer; returns without waiting."""
        key = batch.user.encode()
        value = encode_batch(batch)
        try:
            spool_id = self.spool.put(batch.device, batch.seq, key, value)
        except SpoolError as exc:
            # Without a spool entry the batch could be neither resent nor acknowledged
            # in order: drop it, counted. Its seq was never persisted, so the next batch
            # reuses it and the pipeline sees no gap for a batch nobody sent.
            self.counters.unspooled += 1
            self.metrics.dropped_batches.inc()
            self._spool_failed(exc, f"dropped batch seq {batch.seq} ({len(batch.events)} events)")
            self._serve(0)
            self._settle()
            return
        if not self._backlog and self._inflight < self.window:
            # Common path: nothing older is waiting, produce from memory. A failed
            # delivery, a refusal or a pending retry sets _backlog (cleared only by a pump
            # that found nothing left), so this never overtakes a batch due for a resend.
            self._produce(spool_id, key, value)
        else:
            self._backlog = True
            self._pump()
        self._serve(0)
        self._settle()

    def poll(self, timeout: float = 0) -> None:
        """Serve delivery reports (removing acknowledged batches) and feed the backlog."""
        self._serve(timeout)
        self._settle()
        self.spool.tidy()

    def flush(self, timeout: float) -> int:
        """Try to deliver everything spooled within ``timeout`` s; return how many remain."""
        deadline = time.monotonic() + timeout
        while True:
            self._settle()
            if self.spool.batches == 0:
                return 0
            left = deadline - time.monotonic()
            if left <= 0:
                return self.spool.batches
            self._serve(min(left, 0.1), flush=True)

    def close(self, timeout: float = 5.0) -> int:
        """Flush for up to ``timeout`` s and release the producer and spool.

        Returns the number of batches left on the spool; a durable spool keeps them
        for the next start.
        """
        if self._closed:
            return self.spool.batches
        remaining = self.flush(timeout)
        self._closed = True
        with contextlib.suppress(KafkaException):
            self._producer.purge(in_queue=True, in_flight=False)
        self._serve(0)
        self._settle()
        remaining = self.spool.batches
        self.spool.close()
        return remaining

    @property
    def pending(self) -> int:
        """Batches on the spool, not yet acknowledged."""
        return self.spool.batches

    @property
    def dropped(self) -> int:
        return self.spool.dropped

    # -- internals --------------------------------------------------------------

    def _serve(self, timeout: float, *, flush: bool = False) -> None:
        """Serve callbacks for up to ``timeout`` s.

        A producer in a fatal state raises from ``poll``/``flush`` instead of
        serving; that becomes a (backed-off) producer restart, never an exception
        out of the agent.
        """
        try:
            if flush:
                self._producer.flush(timeout)
            else:
                self._producer.poll(timeout)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.fatal():
                self._fatal = self._fatal or err
            else:
                log.warning("kafka producer error: %s", err)
            if timeout > 0:
                time.sleep(min(timeout, 0.1))  # it raised at once: do not spin

    def _produce(self, spool_id: int, key: bytes, value: bytes) -> bool:
        """Hand one spooled batch to the producer; False if it refused it for now.

        librdkafka refuses some records in ``produce()`` itself, from what it already
        knows: a topic its metadata says we may not write (ACLs not granted *yet*, or
        revoked), an unknown topic, a record over ``message.max.bytes``. The agent must
        not die of that: the batch stays on the spool and is offered again later, in
        order, unless it can never be accepted.
        """
        generation = self._generation

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._on_delivery(generation, spool_id, err)

        headers = _HEADERS
        if self.signer is not None:
            # Signed when sent, not when spooled: the spool keeps no tag, so a key
            # issued again (rotated) signs the backlog too. A key damaged on disk is
            # signed as read, and the worker refuses it with the wrong tag.
            user = key.decode("utf-8", "replace")
            headers = [*_HEADERS, (MAC_HEADER, self.signer(user, value))]
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=headers, on_delivery=on_delivery
                )
                break
            except BufferError:
                # librdkafka's queue is full (window larger than its buffer): drain a little.
                self._producer.poll(0.05)
            except KafkaException as exc:
                if exc.args[0].fatal():
                    self._fatal = self._fatal or exc.args[0]
                    return False
                return self._refused(spool_id, exc.args[0])
        self._inflight += 1
        self._cursor = spool_id
        self.counters.produced += 1
        return True

    def _refused(self, spool_id: int, err: KafkaError) -> bool:
        self.counters.delivery_errors += 1
        self.metrics.delivery_errors.inc()
        if err.code() in _PERMANENT:
            self._cursor = spool_id
            self._drop_for_good(spool_id, err)
            return True
        if self._log_refusal():
            log.error(
                "producer refused batch (spool id %d): %s; keeping it and everything after it "
                "on the spool, retrying every %.0f s",
                spool_id,
                err,
                _REWIND_INTERVAL_S,
            )
        # The cursor stays before this batch and the backlog is read from disk again
        # after the pause, so it is retried first and order is kept.
        self._backlog = True
        self._retry_at = time.monotonic() + _REWIND_INTERVAL_S
        return False

    def _pump(self) -> None:
        if self._fatal is not None or (self._retry_at and time.monotonic() < self._retry_at):
            return
        if self._rewind_to is not None:
            # A failed batch is waiting for its (rate-limited) rewind: producing what is
            # past the cursor now would put newer batches on the topic before its resend,
            # and consumers would then drop the resend as a duplicate (lost).
            return
        while self._backlog and self._inflight < self.window:
            try:
                rows = self.spool.pending(self._cursor, min(500, self.window - self._inflight))
            except SpoolError as exc:
                self._retry_at = time.monotonic() + _REWIND_INTERVAL_S
                self._spool_failed(exc, "will read the backlog again")
                return
            if not rows:
                self._backlog = False
                return
            for row in rows:
                if not self._produce(row.id, row.key, row.value):
                    return

    def _on_delivery(self, generation: int, spool_id: int, err: KafkaError | None) -> None:
        if generation != self._generation:
            return  # a report from a producer we already replaced
        self._inflight -= 1
        if err is None:
            self._acked.append(spool_id)
            self._restart_delay = 1.0
            self.counters.acked += 1
            self.metrics.batches_sent.inc()
            return
        self.counters.delivery_errors += 1
        self.metrics.delivery_errors.inc()
        if err.code() in _PERMANENT:
            self._drop_for_good(spool_id, err)
            return
        if err.code() == KafkaError._PURGE_QUEUE:
            return  # our own purge on close/restart: the spool still holds it
        if err.code() == KafkaError.INVALID_TIMESTAMP:
            self.metrics.clock_refused.inc()
            self._retry_at = max(self._retry_at, time.monotonic() + _CLOCK_RETRY_S)
        if self._log_delivery():
            if err.code() == KafkaError.INVALID_TIMESTAMP:
                log.error(
                    "the broker refuses this workstation's clock (batch spool id %d: %s): it is "
                    "further from the broker's than the events topic allows. Batches stay on the "
                    "spool and are retried every %.0f s; correct the clock (NTP), or create the "
                    "topic with message.timestamp.type=LogAppendTime as 'cadence topics create' does",
                    spool_id,
                    err,
                    _CLOCK_RETRY_S,
                )
            else:
                log.warning(
                    "delivery of spool id %d failed: %s; will resend from the spool"
                    " (logged at most once a minute)",
                    spool_id,
                    err,
                )
        if self._rewind_to is None or spool_id < self._rewind_to:
            self._rewind_to = spool_id
        # Later sends go through the spool (send()'s fast path is closed) until the
        # rewind has resent this batch: order on the topic is spool order.
        self._backlog = True

    def _drop_for_good(self, spool_id: int, err: KafkaError) -> None:
        # Retrying can never succeed; keeping it would block the spool forever.
        log.error("batch (spool id %d) can never be accepted: %s; dropping it", spool_id, err)
        self._acked.append(spool_id)
        self.counters.rejected += 1
        self.metrics.dropped_batches.inc()

    def _spool_failed(self, exc: SpoolError, outcome: str) -> None:
        self.counters.spool_errors += 1
        self.metrics.spool_errors.labels(exc.operation).inc()
        if self._log_spool():
            log.error(
                "%s: %s (free disk space; check that no other agent uses this state directory;"
                " logged at most once a minute, %d spool errors so far)",
                exc,
                outcome,
                self.counters.spool_errors,
            )

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
        elif err.code() not in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            # Broker-down noise is expected during an outage and already logged by librdkafka.
            log.warning("kafka producer error: %s", err)

    def _settle(self) -> None:
        """Apply what the callbacks collected: removals, rewinds, producer restarts."""
        if self._acked:
            acked, self._acked = self._acked, []
            try:
                self.spool.remove(acked)
            except SpoolError as exc:
                # Kept for the next attempt; until then a rewind may resend them, and
                # consumers drop the duplicates.
                self._acked = acked + self._acked
                self._spool_failed(exc, f"{len(acked)} acknowledged batches stay until retried")
        if self._fatal is not None:
            if time.monotonic() >= self._restart_at:
                self._restart_producer()
        elif (
            self._rewind_to is not None
            and time.monotonic() - self._last_rewind >= _REWIND_INTERVAL_S
        ):
            self._cursor = min(self._cursor, self._rewind_to - 1)
            self._rewind_to = None
            self._last_rewind = time.monotonic()
            self._backlog = True
            self.counters.resends += 1
        self._pump()

    def _restart_producer(self) -> None:
        err, self._fatal = self._fatal, None
        self.counters.delivery_errors += 1
        self.counters.producer_restarts += 1
        self.metrics.delivery_errors.inc()
        log.error(
            "fatal producer error: %s; recreating the producer and resending the spool"
            " (next restart no sooner than in %.0f s)",
            err,
            self._restart_delay,
        )
        self._restart_at = time.monotonic() + self._restart_delay
        self._restart_delay = min(2 * self._restart_delay, _RESTART_BACKOFF_MAX_S)
        old = self._producer
        self._generation += 1
        with contextlib.suppress(KafkaException):
            old.purge(in_queue=True, in_flight=True)
        self._producer = Producer(self._config)
        self._inflight = 0
        self._cursor = 0
        self._rewind_to = None
        self._retry_at = 0.0
        self._backlog = True


__all__ = ["BatchSender", "SenderCounters", "SqliteSpool", "MemorySpool", "PRODUCER_DEFAULTS"]
