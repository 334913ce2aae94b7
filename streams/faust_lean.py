"""Corrections and trimmings of the Faust parts every message goes through.

**Commits never pass an unacked message.** The worker acks a batch only when the
window it belongs to is judged, so a partition's acked offsets have holes where
windows are still open. faust-streaming 0.15.3 commits the first run of consecutive
acked offsets after checking only that it starts *at most one* past the committed
offset, and not at all before a partition's first commit (committed offset ``None``
or 0): one unacked message, or all of them before the first commit, could be
committed over, and a crash then skipped their window. :class:`Consumer` commits a
run only if it starts at the committed offset (before the first commit: at the first
offset read since the assignment), or if gaps (offsets never delivered, e.g. deleted by
retention before they were read) cover the hole. Faust's own gap step counted the
message *after* the hole as part of it (done, acked or not), and after a seek missed
the offset sought (the read offset is then the next to read, not the last read): with
the strict start above, a consumer reset to the log start after retention never
committed again. The gaps here are exactly the offsets skipped.

**No stream records while a rebalance is under way.** Faust's recovery resumes the
stream partitions, seeks them to their committed offsets and only then resumes flow
control, which empties every stream buffer; the fetcher, started earlier to read the
changelogs, keeps running all the while. Stream records fetched in that window were
lost: handed to the conductor after the seek, they were emptied out of the buffer
and never fetched again (never acked: commits stall, lag stuck); handed before it,
the seek's reset of the read offset made the next record look like a gap, which
commits then passed over (events never judged). :class:`Consumer` fetches only
changelog records until the rebalance has ended. Faust's own hand-off narrows the
window to a message or two (each hand-off is a task of its own, and the agent takes
each message out of the buffer before the next one arrives); the lean hand-off below
hands up to 100 messages per turn of the event loop, which made it the common case.

**The consumer's hand-off.** faust-streaming 0.15.3 hands every fetched message to
its conductor through ``Service.wait_first(callback(message), suspend_flow.wait())``:
four tasks, an ``asyncio.wait`` and three cancellations per message, so that a
hand-off blocked on a full stream buffer, suspended flow control (a rebalance) or a
full producer buffer can be abandoned when the flow is suspended. A hand-off blocks
only in those cases, and whether it would is known before it starts: when none holds,
the callback runs to completion without suspending, so it is awaited directly;
otherwise the message takes Faust's own path, unchanged. Everything else in the loop
is Faust's ``Consumer._drain_messages``. Worth ~20 % more events per CPU second
(docs/performance.md, "The hand-off restored").

**The monitor.** Faust's default sensor counts and times every message, event, send
and table access (a dict of timings per event) for its own stats pages, which the
worker does not serve (its metrics are ``streams.metrics``). :class:`Monitor` keeps
only what Faust itself reads back: the time each partition last delivered an event
to a stream (its slow-processing warnings) and the commit and offset tracking.

**Only on the Faust it was written against.** All of these copy, mirror or rely on
private Faust code. :func:`matches_faust` compares the installed Faust's sources with
the ones this module was reviewed against; on any other Faust the app uses Faust's
own consumer and monitor and says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import AsyncIterator, Callable, Set
from time import monotonic
from typing import Any, cast

from faust.sensors.monitor import Monitor as FaustMonitor
from faust.tables import recovery as faust_recovery
from faust.transport import conductor as faust_conductor
from faust.transport import consumer as faust_consumer
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, StreamT
from faust.types.tuples import Message

# SHA-256 of the Faust sources this module relies on (faust-streaming 0.15.3).
DERIVED_FROM = {
    "Consumer._new_offset": "1d2c7ea89a7ad4f1",
    "Consumer.getmany": "4b168d84882a70d6",
    "Consumer._drain_messages": "44a2500309e83c63",
    "Consumer.ack": "5fcf41cf45153475",
    "Consumer.seek": "b86a9fe05f956b30",
    "Consumer.perform_seek": "0e8c130ff4b0afd8",
    "Consumer.on_partitions_assigned": "29ce96596f05a18c",
    "Consumer._getmany": "f9d47aa9010b5ff2",
    "Conductor.build": "837cf521368c1ee4",
    "Consumer._wait_next_records": "6218e1969a636b3f",
    "Recovery.on_recovery_completed": "6ef567acf072e46d",
    "Recovery._resume_streams": "d986a6710c1aca98",
}

# How often a fetch waiting out a rebalance looks again (Faust's own wait with nothing
# to fetch is 1 s; this delays the first stream record after a rebalance at most this).
REBALANCE_POLL_S = 0.05


def _upstream_sources() -> dict[str, str]:
    # The methods as the aiokafka driver's consumer resolves them (what ``super()`` in
    # :class:`Consumer` reaches): an override added between it and Faust's base changes
    # the source read here, not only a change of the base.
    driver = faust_aiokafka.Consumer
    return {
        "Consumer._new_offset": inspect.getsource(driver._new_offset),
        "Consumer.getmany": inspect.getsource(driver.getmany),
        "Consumer._drain_messages": inspect.getsource(driver._drain_messages),
        # What the lean parts rely on without copying: acks kept from the committed
        # offset on, the read offset a seek leaves, the fetch an empty set means "all".
        "Consumer.ack": inspect.getsource(driver.ack),
        "Consumer.seek": inspect.getsource(driver.seek),
        "Consumer.perform_seek": inspect.getsource(driver.perform_seek),
        "Consumer.on_partitions_assigned": inspect.getsource(driver.on_partitions_assigned),
        "Consumer._getmany": inspect.getsource(driver._getmany),
        "Conductor.build": inspect.getsource(faust_conductor.ConductorCompiler.build),
        "Consumer._wait_next_records": inspect.getsource(
            faust_consumer.Consumer._wait_next_records
        ),
        "Recovery.on_recovery_completed": inspect.getsource(
            faust_recovery.Recovery.on_recovery_completed
        ),
        "Recovery._resume_streams": inspect.getsource(faust_recovery.Recovery._resume_streams),
    }


def faust_drift() -> list[str]:
    """The Faust functions whose installed source differs from what this module relies on."""
    try:
        sources = _upstream_sources()
    except (OSError, TypeError, AttributeError):
        return list(DERIVED_FROM)
    return [
        name
        for name, source in sources.items()
        if hashlib.sha256(source.encode()).hexdigest()[:16] != DERIVED_FROM[name]
    ]


def matches_faust() -> bool:
    """True if the installed Faust is the one this module was reviewed against."""
    return not faust_drift()


class Consumer(faust_aiokafka.Consumer):
    # The first offset read from each partition since it was assigned.
    _first_offset: dict[TP, int]
    # The offset this consumer's loop last marked read, per partition: Faust's read
    # offset equal to it is the last offset read; otherwise a seek set it to the next.
    _last_read: dict[TP, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._first_offset = {}
        self._last_read = {}

    async def seek(self, partition: TP, offset: int) -> None:
        self._last_read.pop(partition, None)
        await super().seek(partition, offset)

    async def perform_seek(self) -> None:
        self._last_read.clear()
        await super().perform_seek()

    async def _skipped(self, tp: TP, expected: int, offset: int) -> None:
        """Offsets ``expected .. offset - 1`` will never be delivered: a gap, never
        ``offset`` itself (it is being delivered, and acked only once judged)."""
        committed = self._committed_offset[tp]
        begin = expected if committed is None else max(expected, committed)
        if begin < offset:
            gaps = self._gap[tp]
            gaps.addi(begin, offset)
            await asyncio.sleep(0)  # as Faust's own gap step: let health checks run
            gaps.merge_overlaps()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        first = self._first_offset
        async for tp, message in super().getmany(timeout):
            if tp not in first:
                first[tp] = message.offset
            yield tp, message

    async def on_partitions_assigned(self, assigned: Set[TP], generation_id: int = 0) -> None:
        for tp in assigned:
            self._first_offset.pop(tp, None)
            self._last_read.pop(tp, None)
        await super().on_partitions_assigned(assigned, generation_id)

    async def _getmany(self, active_partitions: set[TP] | None, timeout: float) -> Any:
        """Faust's fetch, but only changelog records until a rebalance has ended.

        Recovery seeks the stream partitions, then empties their buffers, with the
        fetcher running: a stream record fetched in between is lost (module docstring).
        """
        if active_partitions and self.app.rebalancing:
            changelog = self._is_changelog_tp
            active_partitions = {tp for tp in active_partitions if changelog(tp)}
            if not active_partitions:
                # aiokafka reads an empty set as "every partition".
                await self.sleep(REBALANCE_POLL_S)
                return {}
        return await super()._getmany(active_partitions, timeout)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's next offset to commit, but never past a message that is not acked."""
        acked = self._acked[tp]
        if acked:
            start = self._committed_offset[tp]
            if start is None:
                start = self._first_offset.get(tp)
            lowest = min(acked)
            gaps = self._gap[tp]
            if gaps:
                lowest = min(lowest, min(interval.begin for interval in gaps))
            if start is None or lowest > start:
                return None
        return cast("int | None", super()._new_offset(tp))

    def _hand_off_guard(self) -> Callable[[TP], bool]:
        """A test: True if the conductor's callback for a partition would not suspend.

        Mirrors what ``Conductor.on_message`` and the per-partition handler it calls
        wait for: the conductor's lock, flow control, the producer buffer's ebb and a
        free slot in every stream buffer subscribed to the partition. Runs for every
        message, hence the localised lookups.
        """
        app = self.app
        suspended = self.suspend_flow.is_set
        flow_active = app.flow_control.is_active
        conductor = cast(Any, app.topics)
        conductor_locked = conductor._tp_to_callback_lock.locked
        channels_of = conductor._tp_index.get
        buffer = cast(Any, app.producer.buffer)
        # ``ProducerBuffer.size`` reads a setting on every call; unthreaded, it is this.
        pending = buffer.pending.qsize if not app.conf.producer_threaded else lambda: buffer.size
        max_pending = buffer.max_messages

        def cannot_block(tp: TP) -> bool:
            if suspended() or not flow_active() or conductor_locked():
                return False
            if pending() > max_pending:
                return False
            return not any(channel.queue.full() for channel in channels_of(tp, ()))

        return cannot_block

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        last_read = self._last_read
        last_read_of = last_read.get
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        cannot_block = self._hand_off_guard()
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = cast(AsyncIterator[tuple[TP, Any]], getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            if r_offset is not None:
                                # Expected next: one past the last read, or after a seek
                                # the offset sought (module docstring).
                                expected = r_offset + (last_read_of(tp) == r_offset)
                                if offset > expected and acks_enabled_for(message.topic):
                                    await self._skipped(tp, expected, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if cannot_block(tp):
                                await callback(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                            last_read[tp] = offset
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class Monitor(FaustMonitor):
    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT, event: EventT
    ) -> dict[Any, Any] | None:
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(
        self,
        tp: TP,
        offset: int,
        stream: StreamT,
        event: EventT,
        state: dict[Any, Any] | None = None,
    ) -> None:
        pass

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        pass

    def on_send_initiated(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def on_send_completed(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_table_get(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_table_set(self, *args: Any, **kwargs: Any) -> None:
        pass
