"""The cadence worker: one Faust app, declared here, from raw event batches to verdicts.

    cadence.events.v1 ──▶ judge_event_batches ──▶ cadence.verdicts.v1
                                  │      └──────▶ cadence.deadletter.v1
                                  ▼
                     user-profiles table (changelog)

``judge_event_batches`` decodes each batch, drops redeliveries by sequence number,
gathers a user's batches into windows of a few seconds of activity and, when a
window closes, scores it against the user's profile, updates the profile (unless
the window looks like someone else), writes the user's state to the table and
emits a verdict.

Processing is at-least-once with idempotent verdict ids. A batch is acked only
when the window it belongs to has been judged, its verdict is in Kafka and the
user's state after it is in the changelog (streams.ledger), and Faust commits only the
contiguous acked prefix of a partition, so a crash never skips an open window:
its batches come back, close into the same window and give the same verdict id.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast

import faust
from faust.types import TP, EventT, StreamT, TransportT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collectors.wire import (
    MAX_FUTURE_SKEW_MS,
    MAX_SEND_AGE_MS,
    EventBatch,
    UnsupportedSchemaVersion,
    WireError,
    decode_batch,
)
from streams.batch_tags import BatchTags
from streams.deadletter import dead_letter
from streams.faust_lean import Monitor as LeanMonitor
from streams.faust_lean import Transport as LeanTransport
from streams.faust_lean import faust_drift
from streams.judge import background, enrollment_policy, machine_input
from streams.kafka_auth import broker_credentials
from streams.ledger import Ledger
from streams.metrics import WorkerMetrics
from streams.ocsf import encode_finding, is_finding
from streams.outbox import DELIVERY_POLL_S, Outbox
from streams.pipeline import Judged, Pipeline
from streams.privacy import ForgetRequest, audit_record, decode_request, misdirected, misplaced
from streams.revocations import RECHECK_SECONDS
from streams.sender import ProducerFailed, RecordSender
from streams.settings import WorkerSettings
from streams.state import UserState
from streams.table_store import MARK_INTERVAL_S, ErasureSafeRocksDB, ProfileTable
from streams.topics import (
    AUDIT,
    CHANGELOG_CONFIG,
    CONTROL,
    DEADLETTER,
    EVENTS,
    FINDINGS,
    VERDICTS,
)
from streams.verdict import encode_verdict

log = logging.getLogger(__name__)

_DRIFT = faust_drift()
# The consumer's strict commits and the lean monitor rely on private Faust code: on
# another Faust, Faust's own.
_LEAN = not _DRIFT
if _DRIFT:
    log.warning(
        "installed Faust differs from the one streams.faust_lean was reviewed against (%s); "
        "using Faust's own consumer and monitor (slower, and its commits can pass an "
        "unacked batch: a crash may then skip an open window)",
        ", ".join(_DRIFT),
    )

PRODUCER_LINGER_S = 0.01
# Per partition; the default (16 KB) holds one changelog record.
PRODUCER_BATCH_BYTES = 256 * 1024
# Below the stream buffer's headroom (4096 - 4096 / 1.25 messages).
MAX_POLL_RECORDS = 500
# Closed windows judged in one call at most. The saving per window levels off by ~10
# (bench/assess.py --batch); at 200 windows/s, 16 windows wait at most ~80 ms.
JUDGE_BATCH = 16
# Windows closed by their own events (span of event time, size bound): their verdict
# latency is the pipeline's, which cadence_verdict_latency_seconds measures.
LATENCY_REASONS = frozenset({"span", "size"})
# The process's exit status when its outgoing records' producer failed for good.
EXIT_PRODUCER_FAILED = 3


class Worker:
    """The app and its collaborators; built by :func:`create_app`."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        # Read now, so a damaged CADENCE_BACKGROUND or policy stops the worker at start
        # instead of failing every window.
        background()
        enrollment_policy()
        self.metrics = WorkerMetrics()
        self.tags = BatchTags(settings, self.metrics)
        self.app = _App(
            settings.app_id,
            broker=settings.broker,
            broker_credentials=broker_credentials(settings.kafka),
            store=settings.store,
            datadir=settings.data_dir,
            web_port=settings.web_port,
            web_bind=settings.web_host,
            web_host=settings.web_host,
            # Table and router views would publish behavioural data over HTTP.
            web_tables_enabled=False,
            web_router_enabled=False,
            web_graph_enabled=False,
            topic_partitions=settings.table_partitions,
            topic_replication_factor=settings.topic_replication_factor,
            # rocksdb:// opens no partition database too old to have seen every erasure.
            Table=ProfileTable,
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
            # A rebalance waits until every consumed batch is acked, so the next owner
            # starts exactly after what this worker judged; open windows are judged
            # as the rebalance starts (see on_rebalance_start) so the wait is short.
            stream_wait_empty=True,
            processing_guarantee="at_least_once",
            monitor=LeanMonitor() if _LEAN else None,
            # Verdicts, findings and ~11 KB changelog records are sent per window; waiting
            # a few ms lets one produce request carry many of them (at linger 0 every
            # record was a request of its own and its socket write). Nothing waits on
            # them but the acks, which only gate the next commit.
            producer_linger=PRODUCER_LINGER_S,
            # A poll returns at most this many records, so pausing a partition whose
            # stream buffer is under pressure takes effect before the buffer is full:
            # a full buffer sends every further message down Faust's slow hand-off
            # (see streams.faust_lean).
            broker_max_poll_records=MAX_POLL_RECORDS,
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
        )
        self.events_topic = self.app.topic(
            EVENTS.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=EVENTS.partitions,
        )
        self.control_topic = self.app.topic(
            CONTROL.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=CONTROL.partitions,
        )
        self.audit_topic = self.app.topic(AUDIT.name, key_serializer="raw", value_serializer="raw")
        # bytes types make Faust use the raw codec both when writing the changelog
        # and when recovering from it (a Schema alone covers only the former).
        self.user_profiles = self.app.Table(
            "user-profiles",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.table_partitions,
            extra_topic_configs=dict(CHANGELOG_CONFIG),
        )
        store = self.user_profiles.data
        if isinstance(store, ErasureSafeRocksDB):
            store.on_discard = lambda partition: self.metrics.stale_tables_discarded.inc()
        self.pipeline: Pipeline[EventT] = Pipeline(
            self._load_state, window_ms=settings.window_seconds * 1000.0
        )
        self.user_partition: dict[str, int] = {}
        self.opened_at: dict[str, float] = {}
        self.enrollment: dict[str, str] = {}
        self.levels: dict[str, str] = {}
        # Events (= table) partitions assigned to this worker: a state whose partition has
        # moved away is its new owner's to write.
        self.owned_partitions: set[int] = set()
        self.stream: StreamT | None = None
        # One judging at a time (agent, idle flush, rebalance): each user's verdicts are
        # sent, and their state persisted, in the order the windows were judged.
        self.judging = asyncio.Lock()
        # Verdicts, findings, dead letters and changelog records leave through librdkafka
        # (streams.sender); Faust's own producer keeps the audit records and its internals.
        bootstrap = ",".join(h.removeprefix("kafka://") for h in settings.broker.split(";"))
        self.outbox = Outbox(
            RecordSender(
                settings.kafka or {"bootstrap.servers": bootstrap},
                PRODUCER_LINGER_S,
                PRODUCER_BATCH_BYTES,
            ),
            self.user_profiles,
            owns=lambda partition: partition in self.owned_partitions,
            on_failure=self.metrics.delivery_errors.inc,
        )
        # Each user's judged windows, until their state is written and their batches acked.
        self.ledger: Ledger[EventT] = Ledger(self.outbox.persist, self._ack_owned)
        # Set by `cadence worker`: the worker may end its process (arm_stop_deadline,
        # producer_failed); never in tests or benchmarks, which embed the app.
        self.owns_process = False
        self.outbox.sender.on_fatal = self.producer_failed
        self._register()

    # -- wiring ---------------------------------------------------------------

    def on_rebalance_start(self) -> None:
        """Judge every open window now: its batches must be acked before the rebalance ends."""
        asyncio.ensure_future(self.flush_all("rebalance"))

    def _register(self) -> None:
        app = self.app

        @app.agent(self.events_topic, name="judge_event_batches")
        async def judge_event_batches(stream: StreamT) -> None:
            self.stream = noack = cast(Any, stream).noack()
            # ``Stream.events()`` is this loop wrapped in one more async generator.
            async for _ in noack:
                event = noack.current_event
                if event is None:
                    continue
                try:
                    await self.handle(event)
                    # Closed windows wait while more batches are ready, so that the
                    # windows of many users are judged in one call (cheaper each).
                    if noack.channel.empty() or len(self.pipeline.closed) >= JUDGE_BATCH:
                        await self.judge_closed()
                except ProducerFailed:
                    # Not the input's fault, and no dead letter can be sent: the worker
                    # stops (producer_failed), the record unacked.
                    raise
                except Exception as exc:  # noqa: BLE001 - bad input never stops the worker
                    log.exception("processing a batch failed")
                    self.metrics.processing_errors.inc()
                    try:
                        await self.dead_letter(event, "processing_error", "batch", repr(exc))
                    except Exception:  # noqa: BLE001 - not even a dead letter could be sent
                        # Unacked, the record would stall the partition's commits and come
                        # back after every restart; acked, it is lost, loudly.
                        log.exception(
                            "record %s:%s@%s could not be dead-lettered either: acked unjudged",
                            event.message.topic,
                            event.message.partition,
                            event.message.offset,
                        )
                        self._ack_all([event])

        @app.agent(self.control_topic, name="privacy_requests")
        async def privacy_requests(stream: StreamT) -> None:
            async for event in stream.events():
                message = event.message
                try:
                    request = decode_request(message.value or b"")
                except ValueError as exc:
                    # Kept for whoever sent it (`profiles forget` would wait in vain).
                    await self.dead_letter(event, "malformed", "request", str(exc), _nothing)
                    continue
                key = message.key if isinstance(message.key, bytes) else None
                problem = misdirected(
                    request, key, message.partition, self.settings.table_partitions
                )
                if problem is not None:
                    reason, detail = problem
                    await self.dead_letter(event, reason, "request", detail, _nothing)
                    continue
                await self.forget(request, message.partition)

        @app.task
        async def announce_batch_tags() -> None:
            # Once logging is set up (at start), not when the app is built.
            self.tags.announce()

        if self.tags.rereads:
            # A revocation takes effect without a restart: the file's stamp is looked at
            # here, the file read only when it changed.
            @app.timer(interval=RECHECK_SECONDS)
            async def reread_revocations() -> None:
                self.tags.reread()

        @app.timer(interval=max(1.0, self.settings.idle_flush_seconds / 3))
        async def flush_idle_windows() -> None:
            await self.flush_idle()

        @app.timer(interval=DELIVERY_POLL_S)
        async def run_delivery_reports() -> None:
            self.outbox.deliver_reports()

        @app.timer(interval=5.0)
        async def update_gauges() -> None:
            self.update_gauges()

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            self.metrics.flush_pending()
            self.metrics.open_windows.set(len(self.pipeline.windower.open))
            # Timers start only after the first recovery: a worker stuck in it must still
            # show it here. /metrics is the liveness probe: it must answer whatever the
            # consumer's state (not started yet, a partition reassigned meanwhile).
            try:
                self.update_consumer_gauges()
            except Exception as exc:  # noqa: BLE001
                log.debug("consumer gauges not updated: %r", exc)
            return web.bytes(
                generate_latest(self.metrics.registry),
                content_type=CONTENT_TYPE_LATEST.split(";")[0],
            )

        @app.page("/health")
        async def health(web: Any, request: Any) -> Any:
            ready = self.tables_ready()
            return web.json(
                {"ready": ready, "assigned": self.assigned(), "recovery": app.in_recovery},
                status=200 if ready else 503,
            )

        @app.timer(interval=MARK_INTERVAL_S)
        async def mark_local_tables_in_step() -> None:
            self.mark_tables_in_step()
            await self.mark_standby_tables_in_step()

        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def assigned(self) -> bool:
        return bool(cast(Any, self.app.tables).recovery.completed.is_set())

    def tables_ready(self) -> bool:
        """Joined the group, tables recovered, streams resumed.

        Before the first assignment Faust is neither rebalancing nor recovering, which is
        not ready.
        """
        return self.assigned() and not self.app.in_recovery and not self.app.rebalancing

    def mark_tables_in_step(self) -> None:
        store = self.user_profiles.data
        if isinstance(store, ErasureSafeRocksDB) and self.tables_ready():
            store.mark_open_partitions()

    async def mark_standby_tables_in_step(self) -> None:
        store = self.user_profiles.data
        if not isinstance(store, ErasureSafeRocksDB) or self.app.rebalancing:
            return
        try:
            await store.mark_standbys_in_step()
        except MemoryError:
            raise
        except Exception:
            # Unmarked, a standby is rebuilt before use: slower, never unsafe. The
            # broker being unreachable is the usual cause, and is reported elsewhere.
            log.warning("could not check the standby tables against the broker", exc_info=True)

    async def _on_assigned(self, sender: Any, assigned: set[TP], *args: Any, **kwargs: Any) -> None:
        self.owned_partitions = {tp.partition for tp in assigned if tp.topic == EVENTS.name}

    async def _on_revoked(self, sender: Any, revoked: set[TP], *args: Any, **kwargs: Any) -> None:
        # Open windows of users we no longer own are forgotten unacked: the new
        # owner receives their batches again from the last commit.
        partitions = {tp.partition for tp in revoked if tp.topic == EVENTS.name}
        self.owned_partitions -= partitions
        users = {u for u, p in self.user_partition.items() if p in partitions}
        self.pipeline.forget(users)
        for user in users:
            self.ledger.forget(user, erased=False)
            self.user_partition.pop(user, None)
            self.opened_at.pop(user, None)
            self.enrollment.pop(user, None)
            self.levels.pop(user, None)

    # -- processing -----------------------------------------------------------

    async def handle(self, event: EventT) -> None:
        message = event.message
        self.metrics.pending_batches += 1
        if self.tags.checked:
            refused = self.tags.refusal(message)
            if refused is not None:
                await self.dead_letter(event, "unauthenticated", "cadence-mac", refused)
                return
        try:
            batch = decode_batch(message.value or b"")
        except UnsupportedSchemaVersion as exc:
            await self.dead_letter(event, "schema_version", exc.field, exc.reason)
            return
        except WireError as exc:
            await self.dead_letter(event, "malformed", exc.field, exc.reason)
            return
        if message.key != batch.user.encode():
            await self.dead_letter(
                event, "key_mismatch", "user", "record key is not the batch user"
            )
            return
        wrong = misplaced(
            batch.user, message.partition, self.settings.table_partitions, "this batch"
        )
        if wrong is not None:
            # The user's profile lives in the table partition of their events: a batch on
            # another one would start a second profile there, which judges apart from the
            # first and which an erasure (sent to the user's partition) never reaches.
            await self.dead_letter(event, "wrong_partition", "partition", wrong)
            return
        broker_ms = float(message.timestamp) * 1000.0
        # The shipped events topic stamps records on arrival (LogAppendTime); a topic
        # left on CreateTime carries the same workstation clock as sent_at_ms, so the
        # future is also judged by this worker's clock.
        now_ms = min(broker_ms, time.time() * 1000.0)
        if batch.sent_at_ms > now_ms + MAX_FUTURE_SKEW_MS or (
            batch.sent_at_ms < broker_ms - MAX_SEND_AGE_MS
        ):
            await self.dead_letter(
                event, "absurd_timestamp", "sent_at_ms", "far from the broker's receive time"
            )
            return
        await self.accept(batch, event)

    async def accept(self, batch: EventBatch, event: EventT) -> None:
        user = batch.user
        self.user_partition[user] = event.message.partition
        result = self.pipeline.close(batch, event)
        if result.gap:
            self.metrics.sequence_gaps.inc(result.gap)
        if result.reset:
            self.metrics.sequence_resets.inc()
        if result.status == "duplicate":
            self.metrics.duplicates.inc()
            self._ack_all([event])
        elif result.status == "conflict":
            # Not a redelivery: judged as the device's, these events would be counted
            # twice or pass for someone else's; the record is kept for the SOC.
            await self.dead_letter(
                event,
                "sequence_conflict",
                "seq",
                f"sequence number {batch.seq} of this device and session was already "
                "taken by a batch with other events (cloned agent, restored snapshot, "
                "forged record)",
            )
        else:
            self.metrics.pending_events += len(batch.events)
        active = result.status == "accepted" and batch.events
        if user in self.pipeline.windower.open and (active or user not in self.opened_at):
            # Last activity, not opening time: only a window nobody adds to is flushed early.
            # Empty batches are not activity, nor are records dropped (duplicates, conflicts):
            # a stream of them, replayed, must not hold a window (and its verdict) back.
            self.opened_at[user] = time.monotonic()

    async def publish(self, judged: Judged[EventT]) -> None:
        """Emit the verdict; once Kafka has it, persist the user's state, then ack the batches.

        The verdict and the changelog record go to different partitions, which a
        crash can deliver one without the other. Writing the state only after the
        verdict is acknowledged means the worst a crash does is judge the window
        again from the older state: the same verdict, with the same id. The order
        across a user's windows, and the acks, are the ledger's (streams.ledger).
        """
        window, verdict = judged.window, judged.verdict
        partition = self.user_partition.get(window.user)
        if partition is None or partition not in self.owned_partitions:
            # Revoked while earlier verdicts of the group waited for librdkafka's queue:
            # the batches stay unacked here, and the partition's new owner judges them.
            return
        if window.user not in self.pipeline.windower.open:
            self.opened_at.pop(window.user, None)
        key = window.user.encode()
        value = judged.state_bytes
        self.metrics.windows_closed.labels(window.reason if window.events else "empty").inc()
        user = window.user
        if verdict is None and judged.error is None:
            # Heartbeats only: nothing to judge; the state keeps the cursor they moved.
            self.ledger.judged(user, key, value, partition, window.tokens, records=0)
            return
        if verdict is None:
            log.error(
                "judging window %s..%s of %s failed: %r",
                window.first_seq,
                window.last_seq,
                window.user[:12],
                judged.error,
            )
            self.metrics.processing_errors.inc()
            # The state (its cursor past these batches) is written once every dead letter
            # is in Kafka: before, a crash would drop the redelivered batches as duplicates.
            tokens = window.tokens
            delivered = self.ledger.judged(user, key, value, partition, tokens, len(tokens))
            for token in tokens:
                await self.dead_letter(
                    token, "processing_error", "window", repr(judged.error), delivered
                )
            return
        if judged.profile_reset:
            self.metrics.profile_resets.inc()
        self.metrics.observe_verdict(
            verdict, machine_input(verdict), judged.cpu_seconds, judged.together, len(value)
        )
        self.enrollment[window.user] = verdict.enrollment
        self.levels[window.user] = verdict.level if verdict.enrollment == "active" else ""

        # A suspicious/impostor verdict is also an OCSF finding; the state is written
        # only once Kafka has both, so a crash re-emits both with the same id. Written once
        # per closed window, not per batch: one changelog record per verdict at most.
        finding = is_finding(verdict)
        delivered = self.ledger.judged(
            user, key, value, partition, window.tokens, records=2 if finding else 1
        )
        if finding:
            await self.outbox.emit(FINDINGS.name, key, encode_finding(verdict), delivered)
        await self.outbox.emit(VERDICTS.name, key, encode_verdict(verdict), delivered)
        latency_s = (verdict.emitted_at_ms - window.wall_end_ms) / 1000.0
        # Only windows closed by their own events: one cut by a pause, a session change or
        # a flush waits for it by design (the idle flush: 30 s and more), and would make the
        # p99 alert fire for every user who stops typing.
        if window.reason in LATENCY_REASONS and math.isfinite(latency_s):
            self.metrics.verdict_latency.observe(max(0.0, latency_s))

    async def forget(self, request: ForgetRequest, partition: int) -> None:
        """Erase a user's profile: table, changelog (tombstone), caches; then audit it.

        ``partition`` is the control record's, which is the user's events and table
        partition (the control topic is co-partitioned with the events).
        """
        user = request.user
        key = user.encode()
        erased: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        # Under the judging lock: a window judged before the erasure but published after
        # it (a publish waits while librdkafka's queue is full) would write the profile
        # back after the tombstone.
        async with self.judging:
            # The open window's batches are acked unjudged: they go with the profile; and
            # the state of a window judged before the erasure is never written after it.
            for window in self.pipeline.forget({user}):
                self._ack_all(window.tokens)
            self.ledger.forget(user, erased=True)
            for cache in (self.opened_at, self.enrollment, self.levels):
                cache.pop(user, None)
            had_profile = key in self.user_profiles.data
            # The same (idempotent) producer as the profile's records, in order: the
            # tombstone cannot overtake them. Audited only once Kafka has it: a crash in
            # between would otherwise leave an erasure on record that never happened.
            self.outbox.persist(key, None, partition, partial(_settle, erased))
        await self.outbox.while_delivering(erased)
        if not erased.result():
            log.warning(
                "erasure of %s (request %s) left to the partition's new owner",
                user[:12],
                request.request_id,
            )
            return
        record = audit_record(
            request,
            had_profile=had_profile,
            partition=partition,
            worker=self.settings.app_id,
            done_at_ms=time.time() * 1000.0,
        )
        log.warning(
            "forgot the profile of %s (request %s by %s, had profile: %s)",
            user[:12],
            request.request_id,
            request.requested_by,
            had_profile,
        )
        # Awaited: the control record is acked only once the audit record is in Kafka.
        await (await self.audit_topic.send(key=key, value=record))

    def _ack_owned(self, events: list[EventT]) -> None:
        # After a rebalance took the partition away, its new owner reads these again.
        if events and events[0].message.partition in self.owned_partitions:
            self._ack_all(events)

    def _ack_all(self, events: list[EventT]) -> None:
        # What ``Stream.ack`` does, without a task per event: it never awaits anything.
        assert self.stream is not None
        sensors = self.app.sensors
        stream = self.stream
        for event in events:
            last_stream_to_ack = event.ack()
            message = event.message
            sensors.on_stream_event_out(message.tp, message.offset, stream, event)
            if last_stream_to_ack:
                sensors.on_message_out(message.tp, message.offset, message)

    async def judge_closed(self) -> None:
        """Judge the windows closed so far, together, and publish their verdicts."""
        async with self.judging:
            await self._publish_closed()

    async def _publish_closed(self) -> None:
        # Under self.judging: the verdicts leave in the order the windows were judged.
        for judged in self.pipeline.judge_closed():
            await self.publish(judged)
        self.outbox.deliver_reports()

    async def flush_idle(self) -> None:
        now = time.monotonic()
        async with self.judging:
            for user, opened in list(self.opened_at.items()):
                if now - opened >= self.settings.idle_flush_seconds:
                    self.opened_at.pop(user, None)
                    self.pipeline.close_open(user)
            await self._publish_closed()
        self.metrics.open_windows.set(len(self.pipeline.windower.open))

    async def flush_all(self, reason: str) -> None:
        async with self.judging:
            for user in list(self.pipeline.windower.open):
                self.opened_at.pop(user, None)
                self.pipeline.close_open(user, reason)
            await self._publish_closed()
        self.metrics.open_windows.set(len(self.pipeline.windower.open))

    async def dead_letter(
        self,
        event: EventT,
        reason: str,
        field: str,
        detail: str,
        delivered: Callable[[], None] | None = None,
    ) -> None:
        """Send ``event``'s record to the dead letters; once Kafka has it, ack the event
        (or call ``delivered``, which then owns the ack)."""
        message = event.message
        if reason in ("malformed", "schema_version"):
            self.metrics.decode_errors.labels(reason).inc()
        self.metrics.dead_letters.labels(reason).inc()
        log.warning(
            "dead letter %s:%s@%s reason=%s field=%s: %s",
            message.topic,
            message.partition,
            message.offset,
            reason,
            field,
            detail,
        )
        letter = dead_letter(
            message.topic,
            message.partition,
            message.offset,
            message.key if isinstance(message.key, bytes) else None,
            message.value if isinstance(message.value, bytes) else b"",
            reason,
            field,
            detail,
        )
        await self.outbox.emit(
            DEADLETTER.name,
            letter.key,
            letter.value,
            # A report that comes after a rebalance took the partition away must not
            # ack there: the new owner reads the record again (and dead-letters it).
            delivered or (lambda: self._ack_owned([event])),
            headers=letter.headers,
        )

    async def wait_for_shutdown(self, wait_empty: Callable[[], Awaitable[None]]) -> None:
        """Finish what was consumed, as a rebalance does, but for a bounded time.

        Faust's stop waits until every consumed message is acked, and a batch is acked
        only once its window is judged and its verdict is in Kafka: so the open windows
        are judged now (reason ``shutdown``, as ``rebalance`` on a rebalance), and the
        wait is bounded by ``shutdown_grace_seconds`` because with the broker gone it
        would never end. What is not acked by then is not committed: the next owner of
        the partition receives those batches again (at-least-once).
        """
        await self.flush_all("shutdown")
        grace = self.settings.shutdown_grace_seconds
        try:
            await asyncio.wait_for(self.outbox.while_delivering(wait_empty()), timeout=grace)
        except TimeoutError:
            log.warning(
                "stopping with %d record(s) still unacknowledged after %.0f s: their batches "
                "are redelivered to the partition's next owner",
                self.outbox.in_flight,
                grace,
            )

    def producer_failed(self, reason: str) -> None:
        """The producer of verdicts, dead letters and states failed for good: stop.

        Nothing can leave through it any more, so no window's batches would ever be acked
        again (every partition's commits stalled, silently). A new process has a new
        producer and reads every unacked batch again; its states come from the changelog.
        """
        if self.owns_process:
            log.critical(
                "exiting with status %d: the outgoing records' producer failed (%s); "
                "nothing unacknowledged was committed, the next start re-reads it",
                EXIT_PRODUCER_FAILED,
                reason,
            )
            _exit_now(EXIT_PRODUCER_FAILED)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # reported outside the loop (a final flush): the worker is stopping
        asyncio.ensure_future(self.app.crash(ProducerFailed(reason)))

    def arm_stop_deadline(self) -> None:
        """Exit at the latest ``3 x shutdown_grace_seconds`` after a stop began.

        Some of Faust's and aiokafka's stop steps (closing the fetcher, flushing the
        producer) wait for the broker without a bound; with the broker gone the process
        would hang until a SIGKILL. Exiting instead loses nothing: a batch is committed
        only once its verdict is in Kafka, so the next owner re-reads the rest.
        """
        if not self.owns_process:
            return
        limit = 3 * self.settings.shutdown_grace_seconds

        def hard_exit() -> None:
            log.error(
                "still stopping %.0f s after the stop began (broker unreachable?): exiting "
                "now; nothing unacknowledged was committed, the next owner re-reads it",
                limit,
            )
            _exit_now(1)

        timer = threading.Timer(limit, hard_exit)
        timer.daemon = True
        timer.start()

    def _load_state(self, user: str) -> UserState | None:
        raw = self.user_profiles.data.get(user.encode())
        if not raw:
            return None
        try:
            return UserState.from_bytes(raw)
        except Exception as exc:  # noqa: BLE001 - any damage: start the user over
            # Raising here would fail every later batch of this user, for good; as for
            # an unreadable profile (streams.judge.load_profile), the user enrolls again.
            log.warning("stored state of %s unusable (%r): the user starts over", user[:12], exc)
            self.metrics.profile_resets.inc()
            return UserState()

    def update_gauges(self) -> None:
        self.metrics.flush_pending()
        self.metrics.open_windows.set(len(self.pipeline.windower.open))
        self.metrics.count_users(self.enrollment.values(), self.levels.values())
        self.update_consumer_gauges()

    def update_consumer_gauges(self) -> None:
        self.metrics.recovery_in_progress.set(1 if self.app.in_recovery else 0)
        consumer = self.app.consumer
        lags: dict[int, int] = {}
        for tp in consumer.assignment():
            if tp.topic != EVENTS.name:
                continue
            highwater = consumer.highwater(tp)
            committed = getattr(consumer, "_committed_offset", {}).get(tp)
            if highwater is not None:
                lag = (
                    max(0, highwater - (committed or 0) - 1) if committed is not None else highwater
                )
                lags[tp.partition] = lag
        self.metrics.set_consumer_lag(EVENTS.name, lags)


def _exit_now(status: int) -> None:
    """End the process at once (no stop steps: they would wait on Kafka), logs flushed."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(status)


def _nothing() -> None:
    """A control record's dead letter acks nothing: its agent acks as it iterates."""


def _settle(future: asyncio.Future[bool], ok: bool) -> None:
    if not future.done():
        future.set_result(ok)


class _App(faust.App):
    """A Faust app that tells its cadence worker when a rebalance starts.

    Its consumer and monitor are the leaner ones of :mod:`streams.faust_lean`.
    """

    cadence: Worker | None = None
    _shutting_down = False

    async def _stop_consumer(self) -> None:
        self._shutting_down = True
        if self.cadence is not None:
            self.cadence.arm_stop_deadline()
            # Judged while the tables still hold the partitions, as on a rebalance.
            await self.cadence.flush_all("shutdown")
        await super()._stop_consumer()

    async def _consumer_wait_empty(self, consumer: Any, logger: Any) -> None:
        parent = super()._consumer_wait_empty
        if self.cadence is None:
            await parent(consumer, logger)
        elif self._shutting_down:
            await self.cadence.wait_for_shutdown(lambda: parent(consumer, logger))
        else:
            await self.cadence.outbox.while_delivering(parent(consumer, logger))

    async def _producer_flush(self, logger: Any) -> None:
        # aiokafka's flush waits for every pending batch; with the broker gone that is forever.
        settings = self.cadence.settings if self.cadence else WorkerSettings
        grace = settings.shutdown_grace_seconds
        try:
            await asyncio.wait_for(super()._producer_flush(logger), timeout=grace)
        except TimeoutError:
            logger.warning("producer not flushed within %.0f s; unsent records are resent", grace)
        if self.cadence is not None:
            await self.cadence.outbox.drain(grace, logger)

    def _new_transport(self) -> TransportT:
        if not _LEAN:
            return super()._new_transport()
        return LeanTransport(self.conf.broker_consumer, self)

    def on_rebalance_start(self) -> None:
        super().on_rebalance_start()
        # Leaving the group on shutdown revokes every partition too: already judged.
        if self.cadence is not None and not self._shutting_down:
            self.cadence.on_rebalance_start()


def create_app(settings: WorkerSettings | None = None) -> Worker:
    worker = Worker(settings or WorkerSettings.from_env())
    assert isinstance(worker.app, _App)
    worker.app.cadence = worker
    return worker
