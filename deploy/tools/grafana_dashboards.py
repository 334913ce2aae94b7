#!/usr/bin/env python3
"""Generate the Grafana dashboards in deploy/grafana/*.json.

The dashboards are plain JSON files (importable by hand, packaged as ConfigMaps by
deploy/grafana/kustomization.yaml); this script is how they are written, so
panels stay consistent (datasource variable, ids, layout) and a test can prove the
committed files are what it produces. ``--check`` exits 1 when they are stale.

Every PromQL expression here is evaluated against a real worker and collector by
tests/integration/test_prometheus_dashboards.py and must return data.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DS = {"type": "prometheus", "uid": "${datasource}"}
# Worker panels follow the dashboard's namespace (dev and prod in one Prometheus, as the
# alerts keep them apart); "All" is ".*", which also matches scrapes without the label.
W = 'job="cadence-worker", namespace=~"$namespace"'
C = 'job="cadence-collector"'


@dataclass
class Panel:
    title: str
    exprs: list[tuple[str, str]]  # (PromQL, legend)
    kind: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    thresholds: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Row:
    title: str
    panels: list[Panel]


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in panel.thresholds]
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DS,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DS,
                "expr": expr,
                "legendFormat": legend,
                "range": panel.kind == "timeseries",
                "instant": panel.kind != "timeseries",
            }
            for i, (expr, legend) in enumerate(panel.exprs)
        ],
    }
    if panel.kind == "timeseries":
        out["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        out["options"] = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    return out


NAMESPACE_VARIABLE: dict[str, Any] = {
    "name": "namespace",
    "label": "Namespace",
    "type": "query",
    "datasource": DS,
    "query": {"query": 'label_values(up{job="cadence-worker"}, namespace)', "refId": "namespace"},
    "definition": 'label_values(up{job="cadence-worker"}, namespace)',
    "refresh": 2,
    "includeAll": True,
    "allValue": ".*",
    "multi": False,
    "current": {"text": "All", "value": "$__all"},
    "hide": 0,
    "sort": 1,
    "options": [],
}


def dashboard(
    uid: str, title: str, description: str, rows: list[Row], *, namespaced: bool = False
) -> dict[str, Any]:
    """A dashboard of ``rows``; ``namespaced`` ones (worker panels) pick a namespace."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in rows:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        pid, y, x, row_h = pid + 1, y + 1, 0, 0
        for panel in row.panels:
            if x + panel.width > 24:
                x, y, row_h = 0, y + row_h, 0
            panels.append(_panel(panel, pid, x, y))
            pid, x, row_h = pid + 1, x + panel.width, max(row_h, panel.height)
        y += row_h
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["cadence"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                *([NAMESPACE_VARIABLE] if namespaced else []),
            ]
        },
        "panels": panels,
    }


def pipeline() -> dict[str, Any]:
    q = lambda name, p: f"histogram_quantile({p}, sum by (le) (rate({name}_bucket{{{W}}}[5m])))"  # noqa: E731
    return dashboard(
        "cadence-pipeline",
        "cadence / pipeline health",
        "Throughput, lag, latency, errors, dead letters and table recovery of the stream workers.",
        [
            Row(
                "Overview",
                [
                    # count()/sum() of no series is "No data", not 0: exactly when no worker or
                    # device is scraped, the moment these stats matter.
                    Panel(
                        "Workers up",
                        [(f"sum(up{{{W}}}) or vector(0)", "up")],
                        "stat",
                        width=4,
                        height=4,
                    ),
                    Panel(
                        "Consumer lag",
                        [(f"sum(cadence_consumer_lag_messages{{{W}}})", "lag")],
                        "stat",
                        width=4,
                        height=4,
                        thresholds=[(1000, "orange"), (5000, "red")],
                    ),
                    Panel(
                        "Verdict latency p99",
                        [(q("cadence_verdict_latency_seconds", 0.99), "p99")],
                        "stat",
                        unit="s",
                        width=4,
                        height=4,
                        thresholds=[(1, "orange"), (2, "red")],
                    ),
                    Panel(
                        "Verdicts / s",
                        [(f"sum(rate(cadence_verdicts_total{{{W}}}[5m]))", "verdicts")],
                        "stat",
                        unit="reqps",
                        width=4,
                        height=4,
                    ),
                    Panel(
                        "Dead letters (1h)",
                        [(f"sum(increase(cadence_dead_letters_total{{{W}}}[1h]))", "dead letters")],
                        "stat",
                        width=4,
                        height=4,
                        thresholds=[(1, "orange")],
                    ),
                    Panel(
                        "Workers recovering",
                        [(f"sum(cadence_table_recovery_in_progress{{{W}}})", "recovering")],
                        "stat",
                        width=4,
                        height=4,
                        thresholds=[(1, "orange")],
                    ),
                ],
            ),
            Row(
                "Throughput",
                [
                    Panel(
                        "Input",
                        [
                            (f"sum(rate(cadence_batches_consumed_total{{{W}}}[5m]))", "batches/s"),
                            (f"sum(rate(cadence_events_consumed_total{{{W}}}[5m]))", "events/s"),
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Windows closed by reason",
                        [
                            (
                                f"sum by (reason) (rate(cadence_windows_closed_total{{{W}}}[5m]))",
                                "{{reason}}",
                            )
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Open windows",
                        [(f"sum by (instance) (cadence_open_windows{{{W}}})", "{{instance}}")],
                    ),
                    Panel(
                        "Redeliveries and gaps",
                        [
                            (
                                f"sum(rate(cadence_duplicate_batches_total{{{W}}}[5m]))",
                                "duplicates",
                            ),
                            (
                                f"sum(rate(cadence_sequence_gap_batches_total{{{W}}}[5m]))",
                                "missing batches",
                            ),
                            (f"sum(rate(cadence_sequence_resets_total{{{W}}}[5m]))", "resets"),
                        ],
                        unit="reqps",
                        description="Duplicates are dropped redeliveries; gaps are batches a "
                        "device never delivered (spool drops, lost agents).",
                    ),
                ],
            ),
            Row(
                "Lag and latency",
                [
                    Panel(
                        "Consumer lag by partition",
                        [
                            (
                                f"sum by (partition) (cadence_consumer_lag_messages{{{W}}})",
                                "partition {{partition}}",
                            )
                        ],
                    ),
                    Panel(
                        "Verdict latency",
                        [
                            (q("cadence_verdict_latency_seconds", 0.5), "p50"),
                            (q("cadence_verdict_latency_seconds", 0.9), "p90"),
                            (q("cadence_verdict_latency_seconds", 0.99), "p99"),
                        ],
                        unit="s",
                        thresholds=[(2, "red")],
                        description="From a window's last event to its verdict; target p99 < 2 s.",
                    ),
                    Panel(
                        "Window processing CPU",
                        [
                            (q("cadence_window_processing_seconds", 0.5), "p50"),
                            (q("cadence_window_processing_seconds", 0.99), "p99"),
                        ],
                        unit="s",
                    ),
                    Panel(
                        "Profile size",
                        [
                            (q("cadence_profile_bytes", 0.5), "p50"),
                            (q("cadence_profile_bytes", 0.99), "p99"),
                        ],
                        unit="bytes",
                        description="Serialised per-user state: drives changelog volume and "
                        "recovery time.",
                    ),
                ],
            ),
            Row(
                "Errors and recovery",
                [
                    Panel(
                        "Dead letters by reason",
                        [
                            (
                                f"sum by (reason) (increase(cadence_dead_letters_total{{{W}}}[5m]))",
                                "{{reason}}",
                            )
                        ],
                    ),
                    Panel(
                        "Decode, processing and delivery errors",
                        [
                            (
                                f"sum by (reason) (rate(cadence_decode_errors_total{{{W}}}[5m]))",
                                "decode {{reason}}",
                            ),
                            (
                                f"sum(rate(cadence_processing_errors_total{{{W}}}[5m]))",
                                "processing",
                            ),
                            (
                                f"sum(rate(cadence_delivery_errors_total{{{W}}}[5m]))",
                                "Kafka delivery (retried)",
                            ),
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Table recovery in progress",
                        [
                            (
                                f"max by (instance) (cadence_table_recovery_in_progress{{{W}}})",
                                "{{instance}}",
                            )
                        ],
                        description="1 while a worker restores its tables from the changelog "
                        "(not ready, judges nothing).",
                    ),
                    Panel(
                        "Scrape health",
                        [(f"up{{{W}}}", "{{instance}}")],
                    ),
                    Panel(
                        "Batch tags",
                        [
                            (
                                "sum by (reason) "
                                f"(increase(cadence_batch_auth_failures_total{{{W}}}[5m]))",
                                "without their user's tag: {{reason}}",
                            ),
                            (
                                f"sum(increase(cadence_batch_auth_retiring_total{{{W}}}[5m]))",
                                "under a retiring secret",
                            ),
                        ],
                        description="Signed batches (CADENCE_BATCH_AUTH report or require): "
                        "missing and invalid tags, and tags under a revoked key (revoked: "
                        "CADENCE_BATCH_AUTH_REVOKED_FILE); batches still signed under a retiring "
                        "secret, which must stay at 0 for as long as a desk may be offline "
                        "before the old secret is removed (docs/collectors.md).",
                    ),
                ],
            ),
        ],
        namespaced=True,
    )


def detection() -> dict[str, Any]:
    return dashboard(
        "cadence-detection",
        "cadence / detection",
        "Verdicts by level, suspicious activity and enrollment progress.",
        [
            Row(
                "Verdicts",
                [
                    Panel(
                        "Verdicts by level",
                        [
                            (
                                f"sum by (level) (rate(cadence_verdicts_total{{{W}}}[5m]))",
                                "{{level}}",
                            )
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Share of suspicious and impostor verdicts",
                        [
                            (
                                f'sum(rate(cadence_verdicts_total{{{W}, level=~"suspicious|impostor"}}[15m]))'
                                f" / sum(rate(cadence_verdicts_total{{{W}}}[15m]))",
                                "share",
                            )
                        ],
                        unit="percentunit",
                    ),
                    Panel(
                        "Suspicious verdicts (15 min)",
                        [
                            (
                                f'sum(increase(cadence_verdicts_total{{{W}, level="suspicious"}}[15m]))',
                                "suspicious",
                            )
                        ],
                        "stat",
                        width=6,
                        height=5,
                        thresholds=[(1, "orange")],
                        description="Verdicts, not accounts: 'Accounts by current level' "
                        "(Enrollment row) counts accounts.",
                    ),
                    Panel(
                        "Impostor verdicts (15 min)",
                        [
                            (
                                f'sum(increase(cadence_verdicts_total{{{W}, level="impostor"}}[15m]))',
                                "impostor",
                            )
                        ],
                        "stat",
                        width=6,
                        height=5,
                        thresholds=[(1, "red")],
                    ),
                    Panel(
                        "Verdicts (24 h) by level",
                        [
                            (
                                f"sum by (level) (increase(cadence_verdicts_total{{{W}}}[24h]))",
                                "{{level}}",
                            )
                        ],
                        "stat",
                        width=12,
                        height=5,
                    ),
                ],
            ),
            Row(
                "Enrollment",
                [
                    Panel(
                        "Users by enrollment state",
                        [(f"sum by (state) (cadence_users{{{W}}})", "{{state}}")],
                        width=8,
                    ),
                    Panel(
                        "Accounts by current level",
                        [(f"sum by (level) (cadence_users_at_level{{{W}}})", "{{level}}")],
                        width=8,
                        description="Active users whose latest verdict is at each level, "
                        "on the workers that own them now (cadence_users_at_level).",
                    ),
                    Panel(
                        "Enrollment progress",
                        [
                            (
                                f'sum(cadence_users{{{W}, state="active"}}) / sum(cadence_users{{{W}}})',
                                "active share",
                            )
                        ],
                        "stat",
                        unit="percentunit",
                        width=8,
                        description="Share of users whose profile judges (enrollment done).",
                    ),
                ],
            ),
            Row(
                "Calibration",
                [
                    Panel(
                        "Windows scored above the owner's 90th percentile, by modality",
                        [
                            (
                                f"1 - sum by (modality) (rate(cadence_verdict_score_bucket"
                                f'{{{W}, le="0.9"}}[1h])) / sum by (modality) '
                                f"(rate(cadence_verdict_score_count{{{W}}}[1h]))",
                                "{{modality}}",
                            )
                        ],
                        unit="percentunit",
                        width=24,
                        thresholds=[(0.2, "orange")],
                        description="Scores are calibrated on each owner's own windows: "
                        "about 10 % of an owner's windows land above 0.9. A fleet-wide rise "
                        "(new keyboards, a new application, a changed desk routine) means "
                        "profiles no longer describe their owners and alarms will follow; "
                        "a rise in one modality only points at its collectors or hardware "
                        "(cadence_verdict_score).",
                    ),
                ],
            ),
        ],
        namespaced=True,
    )


def collectors() -> dict[str, Any]:
    return dashboard(
        "cadence-collectors",
        "cadence / collectors",
        "Capture agents: devices reporting, delivery, spool depth and drops.",
        [
            Row(
                "Fleet",
                [
                    Panel(
                        "Devices reporting",
                        [(f"count(up{{{C}}} == 1) or vector(0)", "devices")],
                        "stat",
                        width=6,
                        height=5,
                    ),
                    Panel(
                        "Devices delivering (15 min)",
                        [
                            (
                                f"count(increase(cadence_collector_batches_sent_total{{{C}}}[15m]) > 0)"
                                " or vector(0)",
                                "devices",
                            )
                        ],
                        "stat",
                        width=6,
                        height=5,
                    ),
                    Panel(
                        "Spooled batches (all devices)",
                        [(f"sum(cadence_collector_spool_batches{{{C}}}) or vector(0)", "batches")],
                        "stat",
                        width=6,
                        height=5,
                    ),
                    Panel(
                        "Devices in key-identity mode",
                        [
                            (
                                f"sum(cadence_collector_key_identity_enabled{{{C}}}) or vector(0)",
                                "devices",
                            )
                        ],
                        "stat",
                        width=6,
                        height=5,
                        thresholds=[(1, "orange")],
                        description="The audited mode that records key identities; should be 0 "
                        "outside an approved investigation.",
                    ),
                ],
            ),
            Row(
                "Delivery",
                [
                    Panel(
                        "Fleet throughput",
                        [
                            (
                                f"sum(rate(cadence_collector_batches_sent_total{{{C}}}[5m]))",
                                "batches sent/s",
                            ),
                            (
                                f"sum(rate(cadence_collector_events_captured_total{{{C}}}[5m]))",
                                "events captured/s",
                            ),
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Delivery errors",
                        [
                            (
                                f"sum by (instance) (rate(cadence_collector_delivery_errors_total{{{C}}}[5m]))",
                                "{{instance}}",
                            ),
                            (
                                f"sum by (instance) (rate(cadence_collector_clock_refused_total{{{C}}}[5m]))",
                                "{{instance}} clock refused",
                            ),
                            (
                                f"sum by (instance) (rate(cadence_collector_spool_errors_total{{{C}}}[5m]))",
                                "{{instance}} spool errors",
                            ),
                        ],
                        unit="reqps",
                    ),
                    Panel(
                        "Deepest spools",
                        [
                            (
                                f"topk(10, cadence_collector_spool_bytes{{{C}}})",
                                "{{instance}}",
                            )
                        ],
                        unit="bytes",
                        description="Spools grow while a device cannot reach Kafka; past the "
                        "bound (default 256 MiB) the oldest batches are dropped.",
                    ),
                    Panel(
                        "Dropped batches (1h)",
                        [
                            (
                                f"sum by (instance) (increase(cadence_collector_dropped_batches_total{{{C}}}[1h]))",
                                "{{instance}}",
                            )
                        ],
                    ),
                ],
            ),
        ],
    )


DASHBOARDS = {
    "cadence-pipeline.json": pipeline,
    "cadence-detection.json": detection,
    "cadence-collectors.json": collectors,
}


def render() -> dict[str, str]:
    return {name: json.dumps(make(), indent=2) + "\n" for name, make in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    stale = []
    for name, text in render().items():
        path = OUT / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote deploy/grafana/{name}")
    if stale:
        print(f"stale dashboards {stale}: run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
