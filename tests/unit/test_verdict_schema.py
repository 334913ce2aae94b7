"""The committed verdict JSON Schema matches the Verdict definition and real verdicts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import orjson
import pytest
from jsonschema import Draft202012Validator

from collectors.simulate import Takeover, Workload
from streams import judge
from streams.pipeline import replay
from streams.schema import render, verdict_schema
from streams.verdict import Verdict, encode_verdict

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "verdict.v1.json"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schema_is_generated_from_the_verdict_definition() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "docs/schemas/verdict.v1.json is stale: run "
        "`python -m streams.schema > docs/schemas/verdict.v1.json` (and read the versioning "
        "rules in streams/schema.py before changing a v1 field)"
    )


def test_schema_covers_every_field() -> None:
    assert set(verdict_schema()["properties"]) == {f.name for f in dataclasses.fields(Verdict)}


def test_real_verdicts_validate(
    validator: Draft202012Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Enrollment short enough that active verdicts with scores and reasons show up.
    monkeypatch.setenv("CADENCE_ENROLL_MIN_PRESSES", "200")
    monkeypatch.setenv("CADENCE_ENROLL_MIN_ACTIONS", "40")
    monkeypatch.setenv("CADENCE_ENROLL_MIN_SESSIONS", "1")
    judge.enrollment_policy.cache_clear()
    try:
        workload = Workload(users=2, seed=4, takeovers=[Takeover(user_index=1, at_s=150.0)])
        verdicts = list(replay(b for _, b in workload.batches(until_s=300)))
    finally:
        monkeypatch.undo()
        judge.enrollment_policy.cache_clear()
    assert {v.enrollment for v in verdicts} == {"enrolling", "active"}
    assert any(v.keyboard_score is not None for v in verdicts)
    for verdict in verdicts:
        encoded = encode_verdict(verdict)
        # The wire bytes are those of the field-by-field object, field order included.
        assert encoded == orjson.dumps(dataclasses.asdict(verdict))
        record = json.loads(encoded)
        errors = [e.message for e in validator.iter_errors(record)]
        assert not errors, (record, errors)


def test_schema_rejects_what_v1_forbids(validator: Draft202012Validator) -> None:
    verdict = next(iter(replay(b for _, b in Workload(users=1, seed=2).batches(until_s=20))))
    good = json.loads(encode_verdict(verdict))
    assert validator.is_valid({**good, "future_optional_field": 1})
    for bad in (
        {**good, "level": "maybe"},
        {**good, "v": 2},
        {**good, "trust": 101.0},
        {k: v for k, v in good.items() if k != "verdict_id"},
    ):
        assert not validator.is_valid(bad), bad


@pytest.mark.parametrize(
    ("field", "value"),
    [("trust", "20"), ("reasons", None), ("reasons", [1]), ("events", 1.5), ("user", None)],
)
def test_decode_rejects_fields_of_the_wrong_type(field: str, value: object) -> None:
    import orjson

    from streams.verdict import decode_verdict

    good = orjson.loads(_example_bytes())
    with pytest.raises(ValueError, match=field):
        decode_verdict(orjson.dumps({**good, field: value}))


@pytest.mark.parametrize(
    ("field", "value"),
    [("enrollment", "bogus"), ("verdict_id", "not-an-id"), ("trust", 500.0),
     ("mouse_score", 1.5), ("events", -1)],
)  # fmt: skip
def test_decode_rejects_what_the_schema_rejects(
    validator: Draft202012Validator, field: str, value: object
) -> None:
    # Type checks alone let a consumer be handed trust 500 or enrollment "bogus".
    import orjson

    from streams.verdict import decode_verdict

    bad = {**orjson.loads(_example_bytes()), field: value}
    assert not validator.is_valid(bad)
    with pytest.raises(ValueError, match=field):
        decode_verdict(orjson.dumps(bad))


def _example_bytes() -> bytes:
    from streams.verdict import Verdict, encode_verdict

    return encode_verdict(
        Verdict(
            verdict_id="a" * 32, user="u" * 64, device="d", session="s",
            window_start_ms=1.0, window_end_ms=2.0, keyboard_score=None, mouse_score=0.5,
            trust=50.0, level="uncertain", reasons=("dwell",), enrollment="active",
            model_version="m", emitted_at_ms=3.0, events=10,
        )
    )  # fmt: skip


def test_export_refuses_a_login_for_a_pseudonym(capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    assert main(["profiles", "export", "alice", "--bootstrap", "127.0.0.1:1"]) == 2
    assert "64 hex digits" in capsys.readouterr().err
