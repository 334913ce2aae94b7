"""Static checks of the deployment files: Dockerfile, worker pod, alert rules, dashboards.

The live half (every dashboard and alert query returns data from a real worker) is
tests/integration/test_prometheus_dashboards.py; schema validation is `make deploy-check`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from collectors.metrics import CollectorMetrics
from streams.metrics import WorkerMetrics

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "cadence.rules.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
FAUST_COMMIT_INTERVAL_S = 2.8  # faust.Settings.broker_commit_interval default


def load_tool(name: str) -> ModuleType:
    path = DEPLOY / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"cadence_deploy_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def exported_names() -> set[str]:
    """Every series name the worker and the collector can export, plus Prometheus' own."""
    names = {"up"}
    for registry in (WorkerMetrics().registry, CollectorMetrics().registry):
        for family in registry.collect():
            suffixes = {
                "counter": ["_total", "_created"],
                "histogram": ["_bucket", "_sum", "_count"],
            }.get(family.type, [""])
            names.update(family.name + s for s in suffixes)
    return names


def metric_names(expr: str) -> set[str]:
    # Identifiers followed by a selector or range, minus PromQL functions and keywords.
    words = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)", expr))
    return {w for w in words if not w.startswith("$")}


def exported_series() -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every series a fresh worker and collector export at their first
    scrape, before any event: what an alert or a panel has to compare with from the start."""
    return [
        (sample.name, sample.labels)
        for registry in (WorkerMetrics().registry, CollectorMetrics().registry)
        for family in registry.collect()
        for sample in family.samples
    ]


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Every ``name{label op "value", ...}`` selector in ``expr``, its matchers parsed."""
    out = []
    for name, body in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
        matchers = re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', body)
        out.append((name, matchers))
    return out


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every alert and every dashboard target."""
    out = [(f"alert {a['alert']}", a["expr"]) for a in alerts()]
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.name} / {panel['title']}", target["expr"]))
    return out


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_is_multistage_pinned_non_root_with_healthcheck() -> None:
    dockerfile_parse = pytest.importorskip("dockerfile_parse")
    parser = dockerfile_parse.DockerfileParser(path=str(DEPLOY / "docker" / "Dockerfile"))
    instructions = parser.structure
    froms = [i["value"] for i in instructions if i["instruction"] == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    args = {
        i["value"].split("=", 1)[0]: i["value"].split("=", 1)[1]
        for i in instructions
        if i["instruction"] == "ARG" and "=" in i["value"]
    }
    image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", image), image
    users = [i["value"] for i in instructions if i["instruction"] == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [i["value"] for i in instructions if i["instruction"] == "HEALTHCHECK"]
    assert health and "/health" in health[0]
    runs = " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")
    assert '".[streams]"' in runs and "[dev]" not in runs and "[collector" not in runs
    assert "-c constraints.txt" in runs  # the versions CI tested, not the newest
    assert parser.baseimage == image or "${PYTHON_IMAGE}" in parser.baseimage


def test_ci_and_image_pin_the_faust_the_lean_consumer_was_reviewed_against() -> None:
    from importlib.metadata import version

    from streams.faust_lean import faust_drift

    pins = dict(
        line.split("==", 1)
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert pins["faust-streaming"] == version("faust-streaming")
    assert faust_drift() == []


# ---------------------------------------------------------------- worker pod


def worker_pod() -> dict[str, Any]:
    docs = list(
        yaml.safe_load_all((DEPLOY / "k8s" / "base" / "worker-deployment.yaml").read_text())
    )
    return docs[0]["spec"]["template"]["spec"]


def test_worker_pod_probes_grace_period_and_security() -> None:
    pod = worker_pod()
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    # /health is 503 during recovery: liveness must not use it (restart loop).
    assert container["livenessProbe"]["httpGet"]["path"] != "/health"
    assert pod["terminationGracePeriodSeconds"] > 10 * FAUST_COMMIT_INTERVAL_S
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's user
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_worker_secrets_are_references_only() -> None:
    pod = worker_pod()
    (container,) = pod["containers"]
    assert all("value" not in e for e in container.get("env", []))
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v}
    assert {"kafka-credentials", "kafka-ca"} <= secret_volumes
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "base" / "kustomization.yaml").read_text())
    literals = [
        lit for gen in kustomization["configMapGenerator"] for lit in gen.get("literals", [])
    ]
    assert not any(re.search(r"PASSWORD=|KEY=", lit) for lit in literals), literals
    assert "secretGenerator" not in kustomization


def test_workers_never_hold_the_pseudonym_key() -> None:
    # Workers see only pseudonyms; whoever holds the key can re-identify people
    # (docs/privacy.md), so no worker manifest may mount it or name it.
    manifests = [
        DEPLOY / "k8s" / "base" / "worker-deployment.yaml",
        DEPLOY / "k8s" / "overlays" / "prod" / "worker-statefulset.yaml",
        DEPLOY / "k8s" / "base" / "kustomization.yaml",
    ]
    for path in manifests:
        text = path.read_text()
        assert "pseudonym" not in text.lower(), path
        assert "PSEUDONYM_KEY" not in text, path
    (statefulset,) = [
        d for d in yaml.safe_load_all(manifests[1].read_text()) if d and d["kind"] == "StatefulSet"
    ]
    volumes = statefulset["spec"]["template"]["spec"]["volumes"]
    assert {"kafka-credentials", "kafka-ca"} <= {v["name"] for v in volumes if "secret" in v}


# ---------------------------------------------------------------- alert rules


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def runbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOKS.read_text(), re.M)
    # GitHub's anchor rule: lower-case, drop punctuation, spaces to dashes.
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_has_severity_summary_and_an_existing_runbook_section() -> None:
    anchors = runbook_anchors()
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    for alert in alerts():
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"]["summary"]
        url = alert["annotations"]["runbook_url"]
        assert url.split("#")[0].endswith("docs/runbooks.md")
        assert url.split("#")[1] == alert["alert"].lower()
        assert url.split("#")[1] in anchors, f"no section {alert['alert']} in docs/runbooks.md"


def test_operations_guide_lists_every_alert() -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert [a["alert"] for a in alerts() if f"`{a['alert']}`" not in guide] == []


def test_alerts_use_only_exported_metrics() -> None:
    known = exported_names()
    for alert in alerts():
        assert metric_names(alert["expr"]) <= known, alert["alert"]


def test_every_selector_matches_a_series_exported_from_the_first_scrape() -> None:
    # A label or a label value the code does not export (a renamed reason, a level that
    # is never pre-created) is a panel without data or an alert that can never fire;
    # `up` and the scrape's own labels (job, instance; namespace from a ServiceMonitor)
    # come from Prometheus.
    series = exported_series()
    wrong = []
    for where, expr in queries():
        for name, matchers in selectors(expr):
            if name == "up":
                continue
            for label, op, value in matchers:
                if label in ("job", "instance", "namespace"):
                    continue
                values = {labels.get(label) for n, labels in series if n == name}
                wanted = value.split("|") if op == "=~" else [value]
                if op in ("=", "=~") and not set(wanted) <= values:
                    wrong.append(f"{where}: {name}{{{label}{op}{value!r}}}, exported {values}")
    assert wrong == []


def test_every_alert_has_a_promtool_unit_test() -> None:
    tests = yaml.safe_load((DEPLOY / "prometheus" / "tests" / "cadence.test.yml").read_text())
    tested = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == {a["alert"] for a in alerts()}


def test_prometheusrule_manifest_is_the_rules_file() -> None:
    assert load_tool("sync_prometheusrule").main(["--check"]) == 0
    manifest = yaml.safe_load((DEPLOY / "k8s" / "base" / "prometheusrule.yaml").read_text())
    assert manifest["spec"] == yaml.safe_load(RULES.read_text())


# ---------------------------------------------------------------- dashboards


def test_dashboards_are_generated_and_current() -> None:
    tool = load_tool("grafana_dashboards")
    assert {p.name for p in DASHBOARDS} == set(tool.DASHBOARDS)
    assert tool.main(["--check"]) == 0


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and len(board["uid"]) <= 40
    assert board["title"].startswith("cadence")
    variables = [v["name"] for v in board["templating"]["list"]]
    worker_exprs = [
        t["expr"]
        for p in board["panels"]
        for t in p.get("targets", [])
        if "cadence-worker" in t["expr"]
    ]
    # Worker panels follow the namespace picked, as the alerts keep namespaces apart.
    assert variables == (["datasource", "namespace"] if worker_exprs else ["datasource"])
    for expr in worker_exprs:
        for selector in re.findall(r"\{[^}]*cadence-worker[^}]*\}", expr):
            assert 'namespace=~"$namespace"' in selector, expr
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    known = exported_names()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat")
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            names = metric_names(target["expr"])
            assert names, target["expr"]
            assert names <= known, f"{panel['title']}: unknown {names - known}"


def test_stat_panels_that_count_targets_show_zero_not_no_data() -> None:
    # count() or sum() over no series is empty, which Grafana shows as "No data": a
    # "Workers up" or "Devices reporting" stat must say 0 when none is, the moment it
    # matters most.
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            if panel["type"] != "stat":
                continue
            for target in panel["targets"]:
                expr = target["expr"]
                # The fleet's stats too: 0 devices in key-identity mode must read 0.
                fleet = path.name == "cadence-collectors.json"
                if fleet or expr.startswith("count(") or re.search(r"\bup\{", expr):
                    assert expr.endswith(" or vector(0)"), f"{path.name} / {panel['title']}"


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids)) == 3


def test_dashboards_are_packaged_as_labelled_configmaps() -> None:
    kustomization = yaml.safe_load((DEPLOY / "grafana" / "kustomization.yaml").read_text())
    assert kustomization["generatorOptions"]["labels"]["grafana_dashboard"] == "1"
    files = {f for gen in kustomization["configMapGenerator"] for f in gen["files"]}
    assert files == {p.name for p in DASHBOARDS}
