"""Verdicts map to OCSF 1.3.0 Detection Findings that validate against the pinned schema."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from streams.ocsf import OCSF_VERSION, detection_finding, encode_finding, is_finding
from streams.verdict import LEVELS, Verdict, verdict_id

SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "docs"
    / "schemas"
    / "ocsf"
    / f"detection_finding-{OCSF_VERSION}.schema.json"
)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{OCSF_VERSION}/classes/detection_finding")
    return Draft202012Validator(schema)


def verdict(level: str, **changes: object) -> Verdict:
    base = Verdict(
        verdict_id=verdict_id("u" * 64, "dev-1", "s1", 10, 30),
        user="u" * 64,
        device="dev-1",
        session="s1",
        window_start_ms=1.7e12,
        window_end_ms=1.7e12 + 5000.4,
        keyboard_score=0.97,
        mouse_score=0.62,
        trust=21.37,
        level=level,
        reasons=("keyboard: hold time z=+4.2", "mouse: speed z=-3.1"),
        enrollment="active",
        model_version="cadence-profile-2",
        emitted_at_ms=1.7e12 + 5200.7,
        events=120,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def errors(validator: Draft202012Validator, record: object) -> list[str]:
    return [f"{e.json_path}: {e.message[:160]}" for e in validator.iter_errors(record)]


@pytest.mark.parametrize(
    "v",
    [
        verdict("suspicious"),
        verdict("impostor"),
        verdict("impostor", reasons=(), mouse_score=None),
        verdict("suspicious", keyboard_score=None, mouse_score=None, trust=0.0),
    ],
)
def test_findings_validate_against_the_ocsf_schema(
    validator: Draft202012Validator, v: Verdict
) -> None:
    record = json.loads(encode_finding(v))
    assert errors(validator, record) == []
    assert record["class_uid"] == 2004 and record["category_uid"] == 2
    assert record["type_uid"] == 200401 and record["activity_id"] == 1
    assert record["metadata"]["version"] == OCSF_VERSION
    assert record["finding_info"]["uid"] == v.verdict_id == record["metadata"]["uid"]
    assert 0 <= record["confidence_score"] <= 100 and 0 <= record["risk_score"] <= 100
    assert record["evidences"][0]["user"]["uid"] == v.user
    reasons = [o["value"] for o in record["observables"] if o["type_id"] == 99]
    assert reasons == list(v.reasons) == record["evidences"][0]["data"]["reasons"]


def test_severity_follows_the_level() -> None:
    assert detection_finding(verdict("suspicious"))["severity_id"] == 3
    assert detection_finding(verdict("impostor"))["severity_id"] == 4


def test_only_suspicious_and_impostor_are_findings() -> None:
    for level in LEVELS:
        assert is_finding(verdict(level)) == (level in ("suspicious", "impostor"))
    with pytest.raises(ValueError):
        detection_finding(verdict("trusted"))


def test_same_verdict_same_finding_bytes() -> None:
    # Re-emission after a crash must deduplicate downstream on finding_info.uid.
    assert encode_finding(verdict("impostor")) == encode_finding(verdict("impostor"))


def test_the_schema_is_strict_enough_to_catch_mapping_mistakes(
    validator: Draft202012Validator,
) -> None:
    good = detection_finding(verdict("impostor"))
    broken = [
        {k: v for k, v in good.items() if k != "finding_info"},
        {**good, "type_uid": 200405},
        {**good, "severity_id": 7},
        {**good, "time": "yesterday"},
        {**good, "finding_info": {"title": "no uid"}},
        {**good, "not_an_ocsf_attribute": 1},
    ]
    for record in broken:
        assert errors(validator, record), record


def test_findings_of_a_real_takeover_validate(
    validator: Draft202012Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collectors.simulate import Takeover, Workload
    from streams import judge
    from streams.pipeline import replay

    monkeypatch.setenv("CADENCE_ENROLL_MIN_PRESSES", "200")
    monkeypatch.setenv("CADENCE_ENROLL_MIN_ACTIONS", "40")
    monkeypatch.setenv("CADENCE_ENROLL_MIN_SESSIONS", "1")
    judge.enrollment_policy.cache_clear()
    try:
        # The demo's takeover (tests/integration/test_worker_takeover.py), owner and
        # victim only: profiles are per user, so the others change nothing here.
        workload = Workload(users=8, seed=7, takeovers=[Takeover(user_index=4, at_s=180.0)])
        keep = {workload.users[0].user, workload.users[4].user}
        batches = [b for _, b in workload.batches(until_s=420) if b.user in keep]
        findings = [v for v in replay(batches) if is_finding(v)]
    finally:
        monkeypatch.undo()
        judge.enrollment_policy.cache_clear()
    assert len(findings) >= 5
    for v in findings:
        assert errors(validator, json.loads(encode_finding(v))) == []
