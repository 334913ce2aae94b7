"""`cadence pseudonym LOGIN` gives the collectors' pseudonym, only to holders of the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.identity import pseudonym
from streams.cli import main


def test_same_pseudonym_as_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = b"k" * 32
    (tmp_path / "key").write_bytes(key + b"\n")
    monkeypatch.delenv("CADENCE_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY_FILE", str(tmp_path / "key"))
    assert main(["pseudonym", "alice"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == pseudonym("alice", key)
    assert key.decode() not in out
    assert main(["pseudonym", "alice", "bob"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{pseudonym('alice', key)}  alice",
        f"{pseudonym('bob', key)}  bob",
    ]


def test_refuses_without_a_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CADENCE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("CADENCE_PSEUDONYM_KEY_FILE", raising=False)
    assert main(["pseudonym", "alice"]) == 2
    assert capsys.readouterr().out == ""


def test_refuses_an_empty_login(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.delenv("CADENCE_PSEUDONYM_KEY_FILE", raising=False)
    assert main(["pseudonym", "alice", " "]) == 2
    assert capsys.readouterr().out == ""  # nothing printed, not even alice's
