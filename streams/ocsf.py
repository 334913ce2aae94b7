"""Verdicts as OCSF Detection Findings, for SIEMs that ingest OCSF natively.

Only ``suspicious`` and ``impostor`` verdicts become findings: a finding is
something for an analyst to look at, and trusted/uncertain windows are not. The
mapping is a pure function so the worker, the tests and anyone replaying verdicts
get the same record for the same verdict; ``finding_info.uid`` and
``metadata.uid`` are the verdict id, so a finding re-emitted after a crash
deduplicates exactly like its verdict.

Target: OCSF 1.3.0, class Detection Finding (``class_uid`` 2004, category
Findings), validated in the tests against ``docs/schemas/ocsf/`` (see the README
there for where that schema comes from).

>>> from streams.verdict import Verdict
>>> v = Verdict(verdict_id="0" * 32, user="ab" * 32, device="dev-1", session="s",
...     window_start_ms=1.7e12, window_end_ms=1.7e12 + 5000, keyboard_score=0.99,
...     mouse_score=None, trust=12.0, level="impostor",
...     reasons=("keyboard: flight time z=+4.1",), enrollment="active",
...     model_version="m1", emitted_at_ms=1.7e12 + 5100, events=80)
>>> f = detection_finding(v)
>>> f["class_uid"], f["type_uid"], f["severity_id"], f["finding_info"]["uid"] == v.verdict_id
(2004, 200401, 4, True)
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from streams.verdict import Verdict

OCSF_VERSION: Final = "1.3.0"
PRODUCT_VERSION: Final = "0.1.0"

FINDING_LEVELS: Final = ("suspicious", "impostor")

CATEGORY_FINDINGS: Final = 2
CLASS_DETECTION_FINDING: Final = 2004
ACTIVITY_CREATE: Final = 1
TYPE_UID: Final = CLASS_DETECTION_FINDING * 100 + ACTIVITY_CREATE
STATUS_NEW: Final = 1
ANALYTIC_BEHAVIORAL: Final = 2
OBSERVABLE_RESOURCE_UID: Final = 10
OBSERVABLE_OTHER: Final = 99

# suspicious asks for a look, impostor for action: Medium/High, never Critical,
# because one behavioural signal alone does not prove a compromise.
_SEVERITY: Final = {"suspicious": (3, "Medium"), "impostor": (4, "High")}
_RISK_LEVEL: Final = {"suspicious": (2, "Medium"), "impostor": (3, "High")}
_TITLE: Final = {
    "suspicious": "Input behaviour unlike the account owner's (suspicious)",
    "impostor": "Someone other than the account owner is likely at the keyboard (impostor)",
}


def is_finding(verdict: Verdict) -> bool:
    return verdict.level in FINDING_LEVELS


def _ms(value: float) -> int:
    return int(round(value))


def detection_finding(verdict: Verdict) -> dict[str, Any]:
    """The OCSF 1.3.0 Detection Finding for a suspicious or impostor verdict."""
    if not is_finding(verdict):
        raise ValueError(f"a {verdict.level} verdict is not a finding")
    severity_id, severity = _SEVERITY[verdict.level]
    risk_level_id, risk_level = _RISK_LEVEL[verdict.level]
    scores = [s for s in (verdict.keyboard_score, verdict.mouse_score) if s is not None]
    modalities = [
        name
        for name, score in (("keyboard", verdict.keyboard_score), ("mouse", verdict.mouse_score))
        if score is not None
    ]
    evidence_data = {
        "keyboard_score": verdict.keyboard_score,
        "mouse_score": verdict.mouse_score,
        "trust": verdict.trust,
        "reasons": list(verdict.reasons),
        "events": verdict.events,
        "session": verdict.session,
    }
    observables: list[dict[str, Any]] = [
        {"name": "evidences.user.uid", "type_id": OBSERVABLE_RESOURCE_UID, "value": verdict.user},
        {
            "name": "evidences.device.uid",
            "type_id": OBSERVABLE_RESOURCE_UID,
            "value": verdict.device,
        },
    ]
    observables += [
        {"name": "finding_info.desc", "type": "cadence reason", "type_id": OBSERVABLE_OTHER,
         "value": reason}
        for reason in verdict.reasons
    ]  # fmt: skip
    reasons = "; ".join(verdict.reasons) or "no single feature stands out"
    return {
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_FINDINGS,
        "category_name": "Findings",
        "class_uid": CLASS_DETECTION_FINDING,
        "class_name": "Detection Finding",
        "type_uid": TYPE_UID,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": STATUS_NEW,
        "status": "New",
        "time": _ms(verdict.emitted_at_ms),
        "start_time": _ms(verdict.window_start_ms),
        "end_time": _ms(verdict.window_end_ms),
        "message": f"{_TITLE[verdict.level]}; trust {verdict.trust:.0f}/100; {reasons}",
        # How sure the detector is that this window is not the owner: the highest
        # calibrated modality score (a quantile of the owner's own windows).
        "confidence_score": _ms(100 * max(scores)) if scores else 0,
        # How much the account is at risk now: the running trust, inverted.
        "risk_score": _ms(100 - verdict.trust),
        "risk_level_id": risk_level_id,
        "risk_level": risk_level,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": verdict.verdict_id,
            "correlation_uid": verdict.session,
            "product": {
                "name": "cadence",
                "vendor_name": "cadence",
                "version": PRODUCT_VERSION,
                "feature": {"name": "behavioural-biometric verdicts"},
            },
            "labels": ["behavioural-biometrics", verdict.level],
        },
        "finding_info": {
            "uid": verdict.verdict_id,
            "title": _TITLE[verdict.level],
            "desc": reasons,
            "types": ["Behavioral Anomaly", "Account Takeover", f"cadence/{verdict.level}"],
            "first_seen_time": _ms(verdict.window_start_ms),
            "last_seen_time": _ms(verdict.window_end_ms),
            "data_sources": [f"cadence.verdicts.v1 ({', '.join(modalities) or 'no modality'})"],
            "analytic": {
                "name": "cadence per-user keystroke and mouse profile",
                "type_id": ANALYTIC_BEHAVIORAL,
                "type": "Behavioral",
                "version": verdict.model_version,
            },
        },
        "evidences": [
            {
                "user": {"uid": verdict.user, "type_id": 1, "type": "User"},
                "device": {"uid": verdict.device, "type_id": 0, "type": "Unknown"},
                "data": evidence_data,
            }
        ],
        "observables": observables,
        "unmapped": {"cadence": {"level": verdict.level, "enrollment": verdict.enrollment}},
    }


def encode_finding(verdict: Verdict) -> bytes:
    return orjson.dumps(detection_finding(verdict))
