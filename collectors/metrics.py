"""The capture agent's local Prometheus metrics.

Metrics live on a registry owned by a :class:`CollectorMetrics` instance rather than on
prometheus-client's global default registry, so that tests and benchmarks can create
as many agents/senders in one process as they like without duplicate-registration
errors; ``serve(port)`` exposes one instance's registry over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_captured = Counter(
            "cadence_collector_events_captured_total",
            "Input events captured (after reduction to key classes)",
            registry=r,
        )
        self.batches_sent = Counter(
            "cadence_collector_batches_sent_total",
            "Batches acknowledged by the broker",
            registry=r,
        )
        self.spool_batches = Gauge(
            "cadence_collector_spool_batches",
            "Batches on the local spool, not yet acknowledged",
            registry=r,
        )
        self.spool_bytes = Gauge(
            "cadence_collector_spool_bytes",
            "Payload bytes on the local spool, not yet acknowledged",
            registry=r,
        )
        self.dropped_batches = Counter(
            "cadence_collector_dropped_batches_total",
            "Batches dropped unsent: spool past its bound, spool unwritable, held by a damaged"
            " spool file moved aside, or permanently rejected",
            registry=r,
        )
        self.delivery_errors = Counter(
            "cadence_collector_delivery_errors_total",
            "Failed delivery reports and producer errors",
            registry=r,
        )
        self.clock_refused = Counter(
            "cadence_collector_clock_refused_total",
            "Delivery reports the broker refused for the record's timestamp (workstation clock);"
            " the batches stay on the spool",
            registry=r,
        )
        self.spool_errors = Counter(
            "cadence_collector_spool_errors_total",
            "Spool reads and writes that failed (disk full, file locked or damaged), by operation;"
            " a failed put drops its batch (also counted in dropped_batches)",
            ["operation"],
            registry=r,
        )
        for operation in ("put", "remove", "read"):
            self.spool_errors.labels(operation)  # exported at 0 from the start, for rate()
        self.spool_quarantined = Counter(
            "cadence_collector_spool_quarantined_total",
            "Damaged spool files moved aside, at start or found damaged while running (their"
            " batches are lost: counted in dropped_batches, as many as can still be read)",
            registry=r,
        )
        self.capture_errors = Counter(
            "cadence_collector_capture_errors_total",
            "Input events the capture path failed on (skipped, or kept as an unclassified key)",
            registry=r,
        )
        self.key_identity_enabled = Gauge(
            "cadence_collector_key_identity_enabled",
            "1 while the audited key-identity mode is on",
            registry=r,
        )
        self.pointer_enabled = Gauge(
            "cadence_collector_pointer_enabled",
            "1 while pointer events are captured; 0 on a desk set to keys only (--no-pointer)",
            registry=r,
        )

    def track_spool(self, batches: Callable[[], float], nbytes: Callable[[], float]) -> None:
        """Read the spool's size lazily at scrape time: no per-batch gauge updates."""
        self.spool_batches.set_function(batches)
        self.spool_bytes.set_function(nbytes)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        # Loopback by default: the metrics are for the local node exporter / operator.
        start_http_server(port, addr=addr, registry=self.registry)
