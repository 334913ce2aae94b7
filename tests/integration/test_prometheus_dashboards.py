"""Every dashboard panel and alert rule queries real data: a real Prometheus scrapes a real
worker and a real collector sender while a simulated workload (plus a few malformed
records) flows through Kafka, and each PromQL expression is evaluated over its HTTP API.

A dashboard query must return a non-empty result with at least one finite value: an
empty panel is a broken panel (a renamed metric, a wrong label, a missing job). An
alert expression is empty when it does not fire, so for alerts the test asks that
Prometheus evaluates the rule without error and that every series selector it uses
returns data (the metric exists with those labels).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_broker import free_port

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "cadence.rules.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
PROMETHEUS = shutil.which("prometheus")
DEADLINE_S = 150.0

# ~20-40 s including the broker start; only a failing run waits out DEADLINE_S.
pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)"
    ),
]


@dataclass(frozen=True)
class Query:
    source: str  # "dashboard <file> / <panel>" or "alert <name>"
    expr: str


def dashboard_queries() -> list[Query]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                # "$namespace" as Grafana sends it with "All" picked.
                expr = target["expr"].replace("$namespace", ".*")
                out.append(Query(f"{path.name} / {panel['title']}", expr))
    return out


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def selectors(expr: str) -> set[str]:
    """The instant-vector form of every `metric{...}` selector in ``expr``."""
    return {
        f"{name}{{{labels}}}" for name, labels in re.findall(r"([a-zA-Z_:][\w:]*)\{([^}]*)\}", expr)
    }


# ------------------------------------------------------------------ processes


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"{proc.args} exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def worker_port(kafka_bootstrap: str, tmp_path: Path) -> Iterator[int]:
    from streams.admin import create_topics

    create_topics({"bootstrap.servers": kafka_bootstrap})
    port = free_port()
    env = {
        **os.environ,
        "CADENCE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CADENCE_APP_ID": f"cadence-dash-{uuid.uuid4().hex[:8]}",
        "CADENCE_WEB_PORT": str(port),
        "CADENCE_WEB_HOST": "127.0.0.1",
        "CADENCE_DATA_DIR": str(tmp_path / "worker"),
        "CADENCE_IDLE_FLUSH_SECONDS": "6",
        # Profiles activate after little data, so enrollment panels see active users.
        "CADENCE_ENROLL_MIN_PRESSES": "50",
        "CADENCE_ENROLL_MIN_ACTIONS": "10",
        "CADENCE_ENROLL_MIN_SESSIONS": "1",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--loglevel", "warning"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", 90, proc, log)
        yield port
    finally:
        stop(proc)


@pytest.fixture
def collector(kafka_bootstrap: str) -> Iterator[tuple[int, Any]]:
    from prometheus_client import start_http_server

    from collectors.delivery import BatchSender
    from collectors.metrics import CollectorMetrics
    from collectors.wire import EVENTS_TOPIC

    metrics = CollectorMetrics()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    sender = BatchSender(bootstrap=kafka_bootstrap, topic=EVENTS_TOPIC, metrics=metrics)
    try:
        yield port, sender
    finally:
        sender.close(10.0)
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def prometheus(tmp_path: Path, worker_port: int, collector: tuple[int, Any]) -> Iterator[str]:
    assert PROMETHEUS is not None
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "cadence-worker",
                "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
            },
            {
                "job_name": "cadence-collector",
                "static_configs": [{"targets": [f"127.0.0.1:{collector[0]}"]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 60, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


# ------------------------------------------------------------------ workload


def publish_workload(sender: Any, bootstrap: str) -> None:
    """Three minutes of six simulated users at 12x speed, and records the worker must reject.

    Three minutes: with the short enrolment below, profiles become active and their
    windows scored (the calibration panel reads scores) after about two.
    """
    from confluent_kafka import Producer

    from collectors.publish import publish
    from collectors.simulate import Workload
    from collectors.wire import EVENTS_TOPIC

    workload = Workload(users=6, seed=7, run=uuid.uuid4().hex[:8])
    # At most 165 s ahead of the broker's clock: within the worker's future-skew bound.
    publish(workload.batches(180.0, start_wall_ms=time.time() * 1000.0), sender, speed=12.0)
    # Delivered before the malformed records, so they are judged first.
    assert sender.flush(30.0) == 0, "batches left undelivered"
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(5):
        producer.produce(EVENTS_TOPIC, key=b"not-a-user-%d" % i, value=b"\x00garbage")
    producer.flush(30)


def query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400 for a parse error, with a JSON body
        return json.loads(exc.read())


def problem(base: str, expr: str) -> str | None:
    """None when ``expr`` evaluates and returns at least one finite value."""
    answer = query(base, expr)
    if answer.get("status") != "success":
        return f"error: {answer.get('error')}"
    result = answer["data"]["result"]
    values = [r["value"][1] for r in result] if answer["data"]["resultType"] == "vector" else []
    if answer["data"]["resultType"] == "scalar":
        values = [result[1]]
    if not values:
        return "no data"
    if not any(math.isfinite(float(v)) for v in values):
        return f"only NaN/Inf: {values}"
    return None


def test_every_dashboard_and_alert_query_returns_data(
    prometheus: str, collector: tuple[int, Any], kafka_bootstrap: str
) -> None:
    _, sender = collector
    began = time.monotonic()
    publish_workload(sender, kafka_bootstrap)
    # Scraping runs at 1 s; windows close after 5 s of event time or 6 s idle. Poll until
    # everything has data, then report whatever still lacks it.
    checks = [(q.source, q.expr) for q in dashboard_queries()]
    for rule in alert_rules():
        checks += [(f"alert {rule['alert']} selector", s) for s in sorted(selectors(rule["expr"]))]
    failures: dict[tuple[str, str], str] = {}
    while time.monotonic() - began < DEADLINE_S:
        failures = {}
        for source, expr in checks:
            why = problem(prometheus, expr)
            if why is not None:
                failures[(source, expr)] = why
        if not failures:
            break
        time.sleep(3)
    assert not failures, "queries without data:\n" + "\n".join(
        f"  {src}: {expr}\n    -> {why}" for (src, expr), why in failures.items()
    )

    # The alert expressions themselves: valid PromQL that Prometheus evaluates cleanly,
    # both as ad-hoc queries and as loaded rules.
    for rule in alert_rules():
        answer = query(prometheus, rule["expr"])
        assert answer["status"] == "success", (rule["alert"], answer)
    with urllib.request.urlopen(f"{prometheus}/api/v1/rules", timeout=10) as resp:
        groups = json.loads(resp.read())["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {r["alert"] for r in alert_rules()}
    for name, rule in loaded.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
