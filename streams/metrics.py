"""Prometheus metrics of a stream worker, served at ``/metrics`` on its web port.

Each worker app gets its own registry, so several apps can live in one process
(tests) without clashing registrations.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.deadletter import REASONS as DEAD_LETTER_REASONS
from streams.verdict import LEVELS, Verdict

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
PROCESSING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class WorkerMetrics:
    """Every metric the worker exports; names follow Prometheus conventions."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.batches_consumed = Counter(
            "cadence_batches_consumed_total", "Raw event batches read from Kafka", registry=r
        )
        self.events_consumed = Counter(
            "cadence_events_consumed_total", "Input events in accepted batches", registry=r
        )
        self.decode_errors = Counter(
            "cadence_decode_errors_total",
            "Records that could not be decoded as event batches",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            "cadence_dead_letters_total",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.unsigned_batches = Counter(
            "cadence_batch_auth_failures_total",
            "Batches without their user's tag (CADENCE_BATCH_AUTH report or require): "
            "missing, invalid (another key, another value, two tags), or revoked (the "
            "user's tag, under a key generation CADENCE_BATCH_AUTH_REVOKED_FILE revokes)",
            ["reason"],
            registry=r,
        )
        self.retiring_tags = Counter(
            "cadence_batch_auth_retiring_total",
            "Batches tagged under a retiring signing secret (a later line of "
            "CADENCE_BATCH_AUTH_SECRET_FILE), accepted: their desks' keys are not reissued yet",
            registry=r,
        )
        self.retiring_secrets = Gauge(
            "cadence_batch_auth_retiring_secrets",
            "Retiring signing secrets this worker accepts besides the current one (later "
            "lines of CADENCE_BATCH_AUTH_SECRET_FILE); 0 outside a rotation",
            registry=r,
        )
        self.revoked_users = Gauge(
            "cadence_batch_auth_revoked_users",
            "Users with revoked keys in the revocation list in force "
            "(CADENCE_BATCH_AUTH_REVOKED_FILE, as last read)",
            registry=r,
        )
        self.revocations_read_time = Gauge(
            "cadence_batch_auth_revocations_read_timestamp_seconds",
            "When the revocation list in force was read (Unix time; 0 without "
            "CADENCE_BATCH_AUTH_REVOKED_FILE): a revocation is in force once this is later "
            "than the file's update, even when it names a user the list already held",
            registry=r,
        )
        self.revocation_read_errors = Counter(
            "cadence_batch_auth_revocation_read_errors_total",
            "Looks at a changed CADENCE_BATCH_AUTH_REVOKED_FILE that could not read it "
            "(unreadable, or a line that is no revocation): the list read last stays in force",
            registry=r,
        )
        self.processing_errors = Counter(
            "cadence_processing_errors_total",
            "Windows whose judging failed; their batches went to the dead-letter topic",
            registry=r,
        )
        self.profile_resets = Counter(
            "cadence_profile_resets_total",
            "Stored profiles that could not be read (older model version, damage): re-enrolled",
            registry=r,
        )
        self.stale_tables_discarded = Counter(
            "cadence_table_stale_partitions_discarded_total",
            "Local table databases (RocksDB) deleted before opening because they had not "
            "followed the changelog for longer than an erasure's tombstone is kept",
            registry=r,
        )
        self.delivery_errors = Counter(
            "cadence_delivery_errors_total",
            "Verdicts or dead letters Kafka did not acknowledge (they are retried)",
            registry=r,
        )
        self.sequence_gaps = Counter(
            "cadence_sequence_gap_batches_total",
            "Batches missing between consecutive sequence numbers of a device session",
            registry=r,
        )
        self.duplicates = Counter(
            "cadence_duplicate_batches_total",
            "Batches dropped because their sequence number was already processed",
            registry=r,
        )
        self.sequence_resets = Counter(
            "cadence_sequence_resets_total",
            "Devices whose sequence counter restarted (new agent install)",
            registry=r,
        )
        self.windows_closed = Counter(
            "cadence_windows_closed_total", "User windows closed and judged", ["reason"], registry=r
        )
        self.verdicts = Counter("cadence_verdicts_total", "Verdicts emitted", ["level"], registry=r)
        self.machine_input_windows = Counter(
            "cadence_machine_input_windows_total",
            "Windows judged but not learned because their input was not a person's: flagged "
            "as injected by the OS (os_synthetic) or typed too regularly (too_regular)",
            ["kind"],
            registry=r,
        )
        self.users = Gauge(
            "cadence_users", "Users seen by this worker, by enrollment state", ["state"], registry=r
        )
        self.users_at_level = Gauge(
            "cadence_users_at_level",
            "Active users whose latest verdict is at this level",
            ["level"],
            registry=r,
        )
        self.verdict_scores = Histogram(
            "cadence_verdict_score",
            "Calibrated per-modality scores of judged windows (0 typical of the owner .. 1 beyond)",
            ["modality"],
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0),
            registry=r,
        )
        self.verdict_latency = Histogram(
            "cadence_verdict_latency_seconds",
            "Wall time from the last event of a window to its verdict, for windows closed by"
            " their own events (span or size; not by a pause, session change or flush)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.window_processing = Histogram(
            "cadence_window_processing_seconds",
            "CPU time to extract features, score, update and serialise one window "
            "(of windows judged together: their time divided by their number)",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.windows_judged_together = Histogram(
            "cadence_windows_judged_together",
            "Closed windows judged in one call, observed once per window (1 at low load; "
            "up to 16 while batches queue up)",
            buckets=(1, 2, 4, 8, 16),
            registry=r,
        )
        self.profile_bytes = Histogram(
            "cadence_profile_bytes",
            "Serialised per-user state size",
            buckets=(256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536),
            registry=r,
        )
        self.consumer_lag = Gauge(
            "cadence_consumer_lag_messages",
            "Messages between the committed offset and the end of each assigned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.recovery_in_progress = Gauge(
            "cadence_table_recovery_in_progress",
            "1 while the worker restores tables from their changelogs",
            registry=r,
        )
        self.open_windows = Gauge(
            "cadence_open_windows", "User windows currently accumulating events", registry=r
        )
        # Counted per batch as plain ints and added to the counters above before every
        # scrape (``flush_pending``): prometheus_client takes a lock per increment.
        self.pending_batches = 0
        self.pending_events = 0
        self._lag_series: set[tuple[str, str]] = set()  # (topic, partition) in consumer_lag
        # Every known label value exists from the first scrape, at 0: rate() and the
        # alerts over impostor verdicts or a dead-letter reason then have a series to
        # compare with before the first occurrence, instead of "no data".
        for level in LEVELS:
            self.verdicts.labels(level)
            self.users_at_level.labels(level)
        for modality in ("keyboard", "mouse"):
            self.verdict_scores.labels(modality)
        for kind in ("os_synthetic", "too_regular"):
            self.machine_input_windows.labels(kind)
        # The one close reason an alert watches: a series at 0 before the first.
        self.windows_closed.labels("memory")
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)
        for reason in ("malformed", "schema_version"):
            self.decode_errors.labels(reason)
        for reason in ("missing", "invalid", "revoked"):
            self.unsigned_batches.labels(reason)
        for state in ("enrolling", "active"):
            self.users.labels(state)

    def flush_pending(self) -> None:
        """Add the per-batch counts gathered since the last call to their counters."""
        if self.pending_batches:
            self.batches_consumed.inc(self.pending_batches)
            self.pending_batches = 0
        if self.pending_events:
            self.events_consumed.inc(self.pending_events)
            self.pending_events = 0

    def observe_verdict(
        self,
        verdict: Verdict,
        machine_input: str | None,
        cpu_seconds: float,
        together: int,
        state_bytes: int,
    ) -> None:
        """Count a verdict and what judging its window cost."""
        self.window_processing.observe(cpu_seconds)
        self.windows_judged_together.observe(together)
        self.profile_bytes.observe(state_bytes)
        self.verdicts.labels(verdict.level).inc()
        if machine_input is not None:
            self.machine_input_windows.labels(machine_input).inc()
        for modality, score in (
            ("keyboard", verdict.keyboard_score),
            ("mouse", verdict.mouse_score),
        ):
            if score is not None:
                self.verdict_scores.labels(modality).observe(score)

    def count_users(self, enrollment: Iterable[str], levels: Iterable[str]) -> None:
        """Users by enrollment state, and active users by their last verdict's level."""
        states = list(enrollment)
        for state in ("enrolling", "active"):
            self.users.labels(state).set(states.count(state))
        at = list(levels)
        for level in LEVELS:
            self.users_at_level.labels(level).set(at.count(level))

    def set_consumer_lag(self, topic: str, lags: dict[int, int]) -> None:
        """The lag of each partition of ``topic`` this worker consumes, and only those.

        A partition that moved to another worker is that worker's to report: a frozen
        series here would be summed with the new owner's and page on lag nobody has.
        """
        exported = {(topic, str(partition)) for partition in lags}
        for labels in self._lag_series - exported:
            self.consumer_lag.remove(*labels)
        for partition, lag in lags.items():
            self.consumer_lag.labels(topic, str(partition)).set(lag)
        self._lag_series = exported
