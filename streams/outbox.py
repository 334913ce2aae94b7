"""What leaves the worker, and what happens once Kafka has it.

Two kinds of records leave a worker, both through one librdkafka producer
(:mod:`streams.sender`), whose delivery reports run on the worker's loop in
:meth:`Outbox.deliver_reports`:

- *announcements* (verdicts, findings, dead letters): :meth:`Outbox.emit` sends one and
  calls its ``delivered`` callback once Kafka acknowledges it (this acks the batches
  behind it), retrying after a failure until Kafka has it;
- *the profile table's changelog*: :meth:`Outbox.persist` writes a user's state to the
  local store and queues its changelog record. Records go out in the order they were
  persisted, even when librdkafka's queue is full for a while, and a record that fails
  is resent *as the state is now* (never older than what failed). Nothing is written for
  a partition this worker no longer owns: it is the new owner's to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, cast

from confluent_kafka import KafkaException
from faust.types import TP

from streams.sender import ProducerFailed, RecordSender
from streams.table_store import ErasureSafeRocksDB

log = logging.getLogger(__name__)

# How often delivery reports run while something waits on them.
DELIVERY_POLL_S = 0.02
# A failed announcement is sent again after this long.
RETRY_AFTER_S = 1.0

# Told True once Kafka has a changelog record, False if its partition moved away first.
Persisted = Callable[[bool], None]


class Outbox:
    """The worker's outgoing records and their delivery reports.

    ``table`` is the profile table (a Faust table of bytes); ``owns(partition)`` says
    whether this worker still owns an events (= table) partition; ``on_failure`` is
    called once per failed delivery (a metric).
    """

    def __init__(
        self,
        sender: RecordSender,
        table: Any,
        owns: Callable[[int], bool],
        on_failure: Callable[[], None],
    ) -> None:
        self.sender = sender
        self.table = table
        self.owns = owns
        self.on_failure = on_failure
        # Announcements sent and not yet acknowledged by Kafka.
        self.in_flight = 0
        # Changelog records the producer could not take yet (its queue was full), in order.
        self.changelog_backlog: deque[tuple[bytes, bytes | None, int, Persisted | None]] = deque()
        # After librdkafka refused the backlog's first record outright: not before then.
        self.changelog_retry_at = 0.0

    def __len__(self) -> int:
        """Records not yet acknowledged or not yet handed to librdkafka."""
        return len(self.sender) + len(self.changelog_backlog)

    # -- the profile table ------------------------------------------------------

    def persist(
        self,
        key: bytes,
        value: bytes | None,
        partition: int,
        on_done: Persisted | None = None,
    ) -> None:
        """Store the user's state (``None``: erase it) and queue its changelog record;
        ``on_done(True)`` once Kafka has the record, ``on_done(False)`` if the partition
        moved to another worker first."""
        if not self.owns(partition):
            log.info("state of %s not written: partition %d moved away", key[:12], partition)
            if on_done:
                on_done(False)
            return
        store = self.table.data
        if isinstance(store, ErasureSafeRocksDB):
            store.write(key, value, partition)
        elif value is None:
            store.pop(key, None)
        else:
            store[key] = value
        self.changelog_backlog.append((key, value, partition, on_done))
        self._send_changelog()

    def stored(self, key: bytes, partition: int) -> bytes | None:
        """The state this worker holds for ``key`` (``None``: none, or erased)."""
        store = self.table.data
        if isinstance(store, ErasureSafeRocksDB):
            return store.read(key, partition)
        return cast(bytes | None, store.get(key))

    def _send_changelog(self) -> None:
        """Hand queued changelog records to the producer in order, as far as it takes them
        (a full librdkafka queue takes the rest after the next delivery reports)."""
        backlog = self.changelog_backlog
        if not backlog:  # the usual case: this runs with every delivery poll
            return
        if self.changelog_retry_at and time.monotonic() < self.changelog_retry_at:
            return
        self.changelog_retry_at = 0.0
        changelog = self.table.changelog_topic.get_topic_name()
        store = self.table.data
        while backlog:
            key, value, partition, on_done = backlog[0]
            if not self.owns(partition):
                # Moved away while it waited here: its new owner writes the partition now.
                # (Faust revokes only once every batch is acked, and a batch is acked only
                # once its state is written; this keeps the rule if that wait is cut.)
                backlog.popleft()
                log.info("state of %s not written: partition %d moved away", key[:12], partition)
                if on_done:
                    on_done(False)
                continue

            def done(
                error: Exception | None,
                at: int,
                offset: int,
                key: bytes = key,
                partition: int = partition,
                on_done: Persisted | None = on_done,
            ) -> None:
                # `at` is -1 on a failure: the record's partition is the one it was sent to.
                if error is None:
                    # What Faust's own changelog callback does: RocksDB keeps the offset.
                    # Not once the partition moved away: held here as a standby now, its
                    # replay sets the offset as it applies records, and the new owner's
                    # records before this one may not be applied yet (after a restart the
                    # replay would start past them, and a standby behind would look in step).
                    if self.owns(partition):
                        store.set_persisted_offset(TP(changelog, partition), offset)
                    if on_done:
                        on_done(True)
                    return
                self.on_failure()
                user = key.decode()
                if not self.owns(partition):
                    log.warning("changelog record of %s lost with its partition", user[:12])
                    if on_done:
                        on_done(False)
                    return
                # The state as it is now (a tombstone if erased): never older than what
                # failed, and a later record of the same user follows it in the queue.
                log.warning("changelog record of %s failed (%r); resending", user[:12], error)
                self.persist(key, self.stored(key, partition), partition, on_done)

            try:
                self.sender.send(changelog, key, value, done, partition)
            except (BufferError, ProducerFailed):
                return  # taken later; or never, and the worker stops (unacked: redelivered)
            except KafkaException as exc:
                # Refused outright (not a full queue): tried again later, still first, so
                # that no later state of the user overtakes it.
                self.on_failure()
                log.warning("changelog record of %s refused (%r); retrying", key[:12], exc)
                self.changelog_retry_at = time.monotonic() + RETRY_AFTER_S
                return
            backlog.popleft()

    # -- delivery reports -------------------------------------------------------

    def deliver_reports(self) -> None:
        """Run the delivery callbacks (acks, changelog writes) of what Kafka acknowledged."""
        self.sender.poll()
        self._send_changelog()

    async def while_delivering(self, waiting: Awaitable[object]) -> None:
        """Await ``waiting`` (e.g. every batch acked), running delivery reports meanwhile:
        acks come only from them."""
        task = asyncio.ensure_future(waiting)
        try:
            while not task.done():
                self.deliver_reports()
                await asyncio.wait([task], timeout=DELIVERY_POLL_S)
        finally:
            if not task.done():
                task.cancel()
        await task

    async def drain(self, grace: float, logger: Any) -> None:
        """Wait up to ``grace`` seconds for every outgoing record's delivery report."""
        deadline = time.monotonic() + grace
        while len(self) and time.monotonic() < deadline:
            self.deliver_reports()
            await asyncio.sleep(DELIVERY_POLL_S)
        self.deliver_reports()
        if len(self):
            logger.warning(
                "%d record(s) not delivered within %.0f s; their batches are redelivered",
                len(self),
                grace,
            )

    # -- announcements ----------------------------------------------------------

    async def emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        delivered: Callable[[], None],
        headers: dict[str, bytes] | None = None,
    ) -> None:
        """Send a record; call ``delivered`` once Kafka acknowledges it, retrying until it does.

        ``delivered`` runs from :meth:`deliver_reports`, on this loop.
        """
        self.in_flight += 1

        def done(error: Exception | None, partition: int, offset: int) -> None:
            self.in_flight -= 1
            if error is None:
                delivered()
                return
            self.on_failure()
            log.warning("delivery to %s failed (%r); retrying", topic, error)
            asyncio.ensure_future(self._retry(topic, key, value, delivered, headers))

        while True:
            try:
                self.sender.send(topic, key, value, done, None, headers)
                return
            except BufferError:
                # librdkafka's queue is full: let it drain (and its reports run).
                self.deliver_reports()
                await asyncio.sleep(DELIVERY_POLL_S)
            except KafkaException as exc:
                # Refused outright: as a failed delivery, sent again later. (ProducerFailed
                # is not caught: nothing can be sent any more, and the worker stops.)
                done(exc, -1, -1)
                return

    async def _retry(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        delivered: Callable[[], None],
        headers: dict[str, bytes] | None,
    ) -> None:
        await asyncio.sleep(RETRY_AFTER_S)
        # ProducerFailed: the worker stops; the batches behind the record stay unacked.
        with contextlib.suppress(ProducerFailed):
            await self.emit(topic, key, value, delivered, headers)
