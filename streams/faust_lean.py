"""Leaner versions of the Faust parts that every message goes through.

**The consumer's hand-off.** faust-streaming 0.15.3 hands every fetched message to
its conductor through ``Service.wait_first(callback(message), suspend_flow.wait())``:
four tasks, an ``asyncio.wait`` and three cancellations per message, so that a
hand-off blocked on a full stream buffer, suspended flow control (a rebalance) or a
full producer buffer can be abandoned when the flow is suspended. With ~8 events per
message that was the largest single cost of the worker after judging itself. A
hand-off blocks only in those cases, and whether it would is known before it starts:
when none holds, the callback runs to completion without suspending, so it is
awaited directly; otherwise the message takes Faust's own path, unchanged.
Everything else in the loop is Faust's ``Consumer._drain_messages``.

**Only on the Faust it was written against.** Both parts copy or mirror private Faust
code (the drain loop, the conductor's message handler). :func:`matches_faust` compares
the installed Faust's sources with the ones they were derived from; on any other
Faust the app uses Faust's own consumer and monitor (slower, never wrong) and says so.

**The monitor.** Faust's default sensor counts and times every message, event, send
and table access (a dict of timings per event) for its own stats pages, which the
worker does not serve (its metrics are ``streams.metrics``). :class:`Monitor` keeps
only what Faust itself reads back: the time each partition last delivered an event
to a stream (its slow-processing warnings) and the commit and offset tracking.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import AsyncIterator, Callable
from time import monotonic
from typing import Any, cast

from faust.sensors.monitor import Monitor as FaustMonitor
from faust.transport import conductor as faust_conductor
from faust.transport import consumer as faust_consumer
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, EventT, StreamT
from faust.types.tuples import Message

# SHA-256 of the Faust sources this module copies or mirrors (faust-streaming 0.15.3).
DERIVED_FROM = {
    "Consumer._drain_messages": "44a2500309e83c63",
    "Conductor.build": "837cf521368c1ee4",
}


def _upstream_sources() -> dict[str, str]:
    return {
        "Consumer._drain_messages": inspect.getsource(faust_consumer.Consumer._drain_messages),
        "Conductor.build": inspect.getsource(faust_conductor.ConductorCompiler.build),
    }


def faust_drift() -> list[str]:
    """The Faust functions whose installed source differs from what this module mirrors."""
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
    """True if the installed Faust is the one the lean parts were derived from."""
    return not faust_drift()


class Consumer(faust_aiokafka.Consumer):
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
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if cannot_block(tp):
                                await callback(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
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
