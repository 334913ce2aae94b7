"""The Kubernetes manifests agree with the code: topics, the changelog, ACLs, scaling limits.

Reads deploy/k8s/base directly; when kustomize is installed (`make deploy-check` puts it in
.cache/bin) the rendered overlays are checked too, since a patch can break what the base
gets right.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streams.settings import WorkerSettings
from streams.topics import (
    AUDIT,
    CHANGELOG_CONFIG,
    CONTROL,
    DEADLETTER,
    EVENTS,
    FINDINGS,
    TOPICS,
    VERDICTS,
)

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CHANGELOG = f"{WorkerSettings.app_id}-user-profiles-changelog"
KUSTOMIZE = ROOT / ".cache" / "bin" / "kustomize"


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def rendered(overlay: str) -> list[dict[str, Any]]:
    kustomize = str(KUSTOMIZE) if KUSTOMIZE.exists() else shutil.which("kustomize")
    if kustomize is None:
        pytest.skip("kustomize not installed (make deploy-check installs it)")
    out = subprocess.run(
        [kustomize, "build", str(K8S / overlay)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


WORKER_IMAGE = "{newName}:{newTag}".format(
    **next(
        image
        for image in load(K8S / "base" / "kustomization.yaml")[0]["images"]
        if image["name"] == "cadence-worker"
    )
)
BASE_TOPICS = by_kind(load(K8S / "base" / "kafka-topics.yaml"), "KafkaTopic")
BASE_USERS = by_kind(load(K8S / "base" / "kafka-users.yaml"), "KafkaUser")


def test_every_declared_topic_has_a_kafkatopic_and_nothing_else_does() -> None:
    assert set(BASE_TOPICS) == {t.name for t in TOPICS} | {CHANGELOG}


@pytest.mark.parametrize("spec", TOPICS, ids=lambda t: t.name)
def test_kafkatopic_matches_streams_topics(spec: Any) -> None:
    topic = BASE_TOPICS[spec.name]
    assert topic["apiVersion"] == "kafka.strimzi.io/v1"
    assert topic["spec"]["topicName"] == spec.name
    assert topic["spec"]["partitions"] == spec.partitions
    config = {k: str(v) for k, v in topic["spec"]["config"].items()}
    # Every setting the code declares is in the manifest with the same value; the
    # manifest may add cluster-side settings (min.insync.replicas).
    assert {k: config.get(k) for k in spec.config} == spec.config
    assert set(config) - set(spec.config) <= {"min.insync.replicas"}


def test_changelog_is_compacted_and_partitioned_like_its_source() -> None:
    changelog = BASE_TOPICS[CHANGELOG]["spec"]
    assert changelog["partitions"] == EVENTS.partitions == WorkerSettings.table_partitions
    assert changelog["config"]["cleanup.policy"] == "compact"
    assert "retention.ms" not in changelog["config"]
    # What the worker sets when it creates the changelog itself (outside Kubernetes).
    for setting, value in CHANGELOG_CONFIG.items():
        assert str(changelog["config"].get(setting, value)) == value, setting


def test_all_topics_belong_to_the_same_cluster() -> None:
    clusters = {
        d["metadata"]["labels"]["strimzi.io/cluster"]
        for d in [*BASE_TOPICS.values(), *BASE_USERS.values()]
    }
    assert clusters == {"cadence"}


def acls(user: str) -> dict[tuple[str, str, str], set[str]]:
    out: dict[tuple[str, str, str], set[str]] = {}
    for acl in BASE_USERS[user]["spec"]["authorization"]["acls"]:
        assert acl.get("type", "allow") == "allow"
        res = acl["resource"]
        key = (res["type"], res.get("name", ""), res.get("patternType", "literal"))
        out.setdefault(key, set()).update(acl["operations"])
    return out


def test_collectors_only_write_events() -> None:
    assert acls("cadence-collector") == {("topic", EVENTS.name, "literal"): {"Write", "Describe"}}


def test_soc_only_reads_verdicts_and_findings() -> None:
    soc = acls("cadence-soc")
    topics = {k: v for k, v in soc.items() if k[0] == "topic"}
    assert topics == {
        ("topic", VERDICTS.name, "literal"): {"Read", "Describe"},
        ("topic", FINDINGS.name, "literal"): {"Read", "Describe"},
    }
    assert {k[0] for k in soc} == {"topic", "group"}


def test_worker_reads_events_writes_outputs_and_owns_its_internal_topics() -> None:
    worker = acls("cadence-worker")
    app_id = WorkerSettings.app_id
    assert worker[("topic", EVENTS.name, "literal")] == {"Read", "Describe"}
    for out in (VERDICTS, DEADLETTER, FINDINGS, AUDIT):
        assert worker[("topic", out.name, "literal")] == {"Write", "Describe"}
    assert worker[("topic", CONTROL.name, "literal")] == {"Read", "Describe"}
    internal = worker[("topic", f"{app_id}-", "prefix")]
    assert {"Read", "Write", "Create"} <= internal
    assert CHANGELOG.startswith(f"{app_id}-")
    assert worker[("group", app_id, "literal")] >= {"Read"}
    # Nothing beyond those: no cluster-wide rights, no writes to the input.
    assert set(worker) == {
        ("topic", EVENTS.name, "literal"),
        ("topic", VERDICTS.name, "literal"),
        ("topic", DEADLETTER.name, "literal"),
        ("topic", FINDINGS.name, "literal"),
        ("topic", CONTROL.name, "literal"),
        ("topic", AUDIT.name, "literal"),
        ("topic", f"{app_id}-", "prefix"),
        ("group", app_id, "literal"),
    }


def test_control_topic_is_copartitioned_with_the_events() -> None:
    # A forget request must reach the worker that owns the user's events partition.
    assert CONTROL.partitions == EVENTS.partitions
    assert BASE_TOPICS[CONTROL.name]["spec"]["partitions"] == EVENTS.partitions


def test_privacy_officer_writes_requests_and_reads_what_exports_need() -> None:
    privacy = acls("cadence-privacy")
    assert privacy[("topic", CONTROL.name, "literal")] == {"Write", "Describe"}
    for readable in (AUDIT.name, CHANGELOG, VERDICTS.name):
        assert privacy[("topic", readable, "literal")] == {"Read", "Describe"}
    assert ("topic", EVENTS.name, "literal") not in privacy  # never raw events


def test_no_user_gets_all_or_cluster_rights() -> None:
    for name in BASE_USERS:
        for (rtype, _, _), ops in acls(name).items():
            assert rtype != "cluster", name
            assert "All" not in ops, name


def check_rendered(docs: list[dict[str, Any]]) -> None:
    config = next(
        d["data"]
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("cadence-worker-config")
    )
    app_id = config["CADENCE_APP_ID"]
    assert app_id == WorkerSettings.app_id  # the changelog name and ACLs are derived from it
    (scaled,) = [d for d in docs if d["kind"] == "ScaledObject"]
    spec = scaled["spec"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= EVENTS.partitions
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == EVENTS.name
    assert trigger["metadata"]["consumerGroup"] == app_id
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 1
    (workload,) = workloads
    assert spec["scaleTargetRef"]["kind"] == workload["kind"]
    assert spec["scaleTargetRef"]["name"] == workload["metadata"]["name"]
    # KEDA owns the count: a `replicas` here would reset it on every apply.
    assert "replicas" not in workload["spec"]
    # Every overlay runs the image the base names (an overlay's own resources are not
    # rewritten by the base's `images`: prod's StatefulSet once pulled `cadence-worker`).
    images = {c["image"] for c in workload["spec"]["template"]["spec"]["containers"]}
    assert images == {WORKER_IMAGE}
    topics = by_kind(docs, "KafkaTopic")
    assert set(topics) == {t.name for t in TOPICS} | {CHANGELOG}
    # Topics Faust creates itself are replicated like the declared ones.
    factor = int(config["CADENCE_TOPIC_REPLICATION_FACTOR"])
    assert {t["spec"]["replicas"] for t in topics.values()} == {factor}
    for spec_ in TOPICS:
        assert topics[spec_.name]["spec"]["partitions"] == spec_.partitions


@pytest.mark.parametrize("overlay", ["base", "overlays/dev", "overlays/prod"])
def test_rendered_overlay_is_consistent(overlay: str) -> None:
    check_rendered(rendered(overlay))


def test_prod_uses_rocksdb_on_a_volume_and_dev_the_memory_store() -> None:
    prod, dev = rendered("overlays/prod"), rendered("overlays/dev")

    def store(docs: list[dict[str, Any]]) -> str:
        return next(
            d["data"]["CADENCE_STORE"]
            for d in docs
            if d["kind"] == "ConfigMap" and "CADENCE_STORE" in d.get("data", {})
        )

    assert store(prod) == "rocksdb://" and store(dev) == "memory://"
    (sts,) = [d for d in prod if d["kind"] == "StatefulSet"]
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    data_dir = next(
        d for d in prod if d["kind"] == "ConfigMap" and "CADENCE_DATA_DIR" in d.get("data", {})
    )
    assert "data" in claims
    assert {"name": "data", "mountPath": data_dir["data"]["CADENCE_DATA_DIR"]} in mounts
    # A volume nobody reopens would keep profiles, erased ones too (docs/privacy.md).
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenScaled": "Delete",
        "whenDeleted": "Delete",
    }
