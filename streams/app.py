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
when the window it belongs to has been judged, and Faust commits only the
contiguous acked prefix of a partition, so a crash never skips an open window:
its batches come back, close into the same window and give the same verdict id.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import TP, EventT, StreamT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from collectors.kafka_config import bootstrap_servers
from collectors.wire import EventBatch, UnsupportedSchemaVersion, WireError, decode_batch
from streams.metrics import WorkerMetrics
from streams.pipeline import Judged, Pipeline
from streams.state import UserState
from streams.topics import DEADLETTER, EVENTS, VERDICTS
from streams.verdict import encode_verdict

log = logging.getLogger(__name__)

# A batch may sit in a collector's spool through a long outage, but it cannot have
# been sent after the broker received it.
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000.0
MAX_SPOOL_AGE_MS = 30 * 24 * 3600 * 1000.0


@dataclass(frozen=True)
class WorkerSettings:
    """Worker configuration; every field has an environment variable and a local default."""

    app_id: str = "cadence-worker"
    broker: str = "kafka://127.0.0.1:9092"
    store: str = "memory://"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    data_dir: str = ".cache/worker"
    window_seconds: float = 5.0
    idle_flush_seconds: float = 30.0
    table_partitions: int = EVENTS.partitions

    @classmethod
    def from_env(cls) -> WorkerSettings:
        env = os.environ
        bootstrap = bootstrap_servers()
        return cls(
            app_id=env.get("CADENCE_APP_ID", cls.app_id),
            broker=";".join(f"kafka://{h}" for h in bootstrap.split(",")),
            store=env.get("CADENCE_STORE", cls.store),
            web_port=int(env.get("CADENCE_WEB_PORT", cls.web_port)),
            web_host=env.get("CADENCE_WEB_HOST", cls.web_host),
            data_dir=env.get("CADENCE_DATA_DIR", cls.data_dir),
            window_seconds=float(env.get("CADENCE_WINDOW_SECONDS", cls.window_seconds)),
            idle_flush_seconds=float(env.get("CADENCE_IDLE_FLUSH_SECONDS", cls.idle_flush_seconds)),
        )


class Worker:
    """The app and its collaborators; built by :func:`create_app`."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.metrics = WorkerMetrics()
        self.app = faust.App(
            settings.app_id,
            broker=settings.broker,
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
            topic_allow_declare=True,
            consumer_auto_offset_reset="earliest",
            # Batches of open windows stay unacked on purpose; waiting for them to be
            # acked before a rebalance would wait for users to type again.
            stream_wait_empty=False,
            processing_guarantee="at_least_once",
        )
        self.events_topic = self.app.topic(
            EVENTS.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=EVENTS.partitions,
        )
        self.verdicts_topic = self.app.topic(
            VERDICTS.name, key_serializer="raw", value_serializer="raw"
        )
        self.deadletter_topic = self.app.topic(
            DEADLETTER.name, key_serializer="raw", value_serializer="raw"
        )
        self.user_profiles = self.app.Table(
            "user-profiles",
            schema=faust.Schema(
                key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
            ),
            partitions=settings.table_partitions,
        )
        self.pipeline: Pipeline[EventT] = Pipeline(
            self._load_state, window_ms=settings.window_seconds * 1000.0
        )
        self.user_partition: dict[str, int] = {}
        self.opened_at: dict[str, float] = {}
        self.enrollment: dict[str, str] = {}
        self.stream: StreamT | None = None
        self._register()

    # -- wiring ---------------------------------------------------------------

    def _register(self) -> None:
        app = self.app

        @app.agent(self.events_topic, name="judge_event_batches")
        async def judge_event_batches(stream: StreamT) -> None:
            self.stream = cast(Any, stream).noack()
            async for event in self.stream.events():
                try:
                    await self.handle(event)
                except Exception as exc:  # noqa: BLE001 - bad input never stops the worker
                    log.exception("processing a batch failed")
                    self.metrics.processing_errors.inc()
                    await self.dead_letter(event, "processing_error", "batch", repr(exc))

        @app.timer(interval=max(1.0, self.settings.idle_flush_seconds / 3))
        async def flush_idle_windows() -> None:
            await self.flush_idle()

        @app.timer(interval=5.0)
        async def update_gauges() -> None:
            self.update_gauges()

        @app.page("/metrics")
        async def metrics(web: Any, request: Any) -> Any:
            return web.bytes(
                generate_latest(self.metrics.registry),
                content_type=CONTENT_TYPE_LATEST.split(";")[0],
            )

        @app.page("/health")
        async def health(web: Any, request: Any) -> Any:
            ready = not app.in_recovery and app.rebalancing is False
            return web.json(
                {"ready": ready, "recovery": app.in_recovery}, status=200 if ready else 503
            )

        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]

    async def _on_revoked(self, sender: Any, revoked: set[TP], *args: Any, **kwargs: Any) -> None:
        # Open windows of users we no longer own are forgotten unacked: the new
        # owner receives their batches again from the last commit.
        partitions = {tp.partition for tp in revoked if tp.topic == EVENTS.name}
        users = {u for u, p in self.user_partition.items() if p in partitions}
        self.pipeline.forget(users)
        for user in users:
            self.user_partition.pop(user, None)
            self.opened_at.pop(user, None)

    # -- processing -----------------------------------------------------------

    async def handle(self, event: EventT) -> None:
        message = event.message
        self.metrics.batches_consumed.inc()
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
        broker_ms = float(message.timestamp) * 1000.0
        if batch.sent_at_ms > broker_ms + MAX_FUTURE_SKEW_MS or (
            batch.sent_at_ms < broker_ms - MAX_SPOOL_AGE_MS
        ):
            await self.dead_letter(
                event, "absurd_timestamp", "sent_at_ms", "far from the broker's receive time"
            )
            return
        await self.accept(batch, event)

    async def accept(self, batch: EventBatch, event: EventT) -> None:
        user = batch.user
        self.user_partition[user] = event.message.partition
        result, judged = self.pipeline.add(batch, event)
        if result.gap:
            self.metrics.sequence_gaps.inc(result.gap)
        if result.reset:
            self.metrics.sequence_resets.inc()
        if result.status == "duplicate":
            self.metrics.duplicates.inc()
            await self.ack(event)
        else:
            self.metrics.events_consumed.inc(len(batch.events))
        for item in judged:
            await self.publish(item)
        if user in self.pipeline.windower.open:
            self.opened_at.setdefault(user, time.monotonic())
        self.metrics.open_windows.set(len(self.pipeline.windower.open))

    async def publish(self, judged: Judged[EventT]) -> None:
        """Persist the user's state, emit the verdict, ack the window's batches."""
        window, verdict = judged.window, judged.verdict
        self.opened_at.pop(window.user, None)
        key = window.user.encode()
        value = judged.state.to_bytes()
        # Written once per closed window, not per batch: the table's changelog
        # carries one record per verdict. The partition is the user's own.
        self.user_profiles.data[key] = value
        self.user_profiles.send_changelog(
            self.user_partition[window.user], key, value, "raw", "raw"
        )
        self.metrics.windows_closed.labels(window.reason).inc()
        if verdict is None:
            log.error(
                "judging window %s..%s of %s failed: %r",
                window.first_seq,
                window.last_seq,
                window.user[:12],
                judged.error,
            )
            self.metrics.processing_errors.inc()
            for token in window.tokens:
                await self.dead_letter(token, "processing_error", "window", repr(judged.error))
            return
        self.metrics.window_processing.observe(judged.cpu_seconds)
        self.metrics.profile_bytes.observe(len(value))
        self.metrics.verdicts.labels(verdict.level).inc()
        self.enrollment[window.user] = verdict.enrollment
        await self.verdicts_topic.send(key=key, value=encode_verdict(verdict))
        self.metrics.verdict_latency.observe(
            max(0.0, (verdict.emitted_at_ms - window.wall_end_ms) / 1000.0)
        )
        for token in window.tokens:
            await self.ack(token)

    async def flush_idle(self) -> None:
        now = time.monotonic()
        for user, opened in list(self.opened_at.items()):
            if now - opened >= self.settings.idle_flush_seconds:
                self.opened_at.pop(user, None)
                judged = self.pipeline.flush(user)
                if judged is not None:
                    await self.publish(judged)
        self.metrics.open_windows.set(len(self.pipeline.windower.open))

    async def dead_letter(self, event: EventT, reason: str, field: str, detail: str) -> None:
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
        await self.deadletter_topic.send(
            key=message.key if isinstance(message.key, bytes) else None,
            value=message.value if isinstance(message.value, bytes) else b"",
            headers={
                "cadence-reason": reason.encode(),
                "cadence-field": field.encode(),
                "cadence-detail": detail.encode()[:1024],
                "cadence-source": f"{message.topic}:{message.partition}:{message.offset}".encode(),
            },
        )
        await self.ack(event)

    async def ack(self, event: EventT) -> None:
        assert self.stream is not None
        await self.stream.ack(event)

    def _load_state(self, user: str) -> UserState | None:
        raw = self.user_profiles.data.get(user.encode())
        return UserState.from_bytes(raw) if raw else None

    def update_gauges(self) -> None:
        self.metrics.open_windows.set(len(self.pipeline.windower.open))
        for state in ("enrolling", "active"):
            count = sum(1 for e in self.enrollment.values() if e == state)
            self.metrics.users.labels(state).set(count)
        self.metrics.recovery_in_progress.set(1 if self.app.in_recovery else 0)
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic != EVENTS.name:
                continue
            highwater = consumer.highwater(tp)
            committed = getattr(consumer, "_committed_offset", {}).get(tp)
            if highwater is not None:
                lag = (
                    max(0, highwater - (committed or 0) - 1) if committed is not None else highwater
                )
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)


def create_app(settings: WorkerSettings | None = None) -> Worker:
    return Worker(settings or WorkerSettings.from_env())
