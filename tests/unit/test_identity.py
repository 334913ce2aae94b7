"""Pseudonyms, the deployment secret, device ids and session changes."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from collectors.capture import KeyHasher
from collectors.identity import (
    MissingPseudonymKey,
    SessionTracker,
    device_id,
    key_identity_key,
    load_pseudonym_key,
    pseudonym,
    suspended_ms,
)

KEY = b"k" * 32


def test_pseudonym_is_hmac_sha256_of_the_login() -> None:
    assert pseudonym("alice", KEY) == hmac.new(KEY, b"alice", hashlib.sha256).hexdigest()
    assert len(pseudonym("alice", KEY)) == 64
    assert pseudonym("alice", KEY) != pseudonym("bob", KEY)
    assert pseudonym("alice", KEY) != pseudonym("alice", b"x" * 32)
    # Not a plain hash: a directory of logins can't be matched without the secret.
    assert pseudonym("alice", KEY) != hashlib.sha256(b"alice").hexdigest()


def test_key_from_file_wins_over_env(tmp_path: Path) -> None:
    f = tmp_path / "key"
    f.write_text("file-secret-0123456789\n")
    env = {"CADENCE_PSEUDONYM_KEY_FILE": str(f), "CADENCE_PSEUDONYM_KEY": "env-secret-0123456789"}
    assert load_pseudonym_key(env) == b"file-secret-0123456789"
    assert (
        load_pseudonym_key({"CADENCE_PSEUDONYM_KEY": "env-secret-0123456789"})
        == b"env-secret-0123456789"
    )


def test_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingPseudonymKey, match="CADENCE_PSEUDONYM_KEY_FILE"):
        load_pseudonym_key({})
    with pytest.raises(MissingPseudonymKey, match="cannot read"):
        load_pseudonym_key({"CADENCE_PSEUDONYM_KEY_FILE": str(tmp_path / "nope")})
    with pytest.raises(MissingPseudonymKey, match="shorter"):
        load_pseudonym_key({"CADENCE_PSEUDONYM_KEY": "short"})


def test_device_id_is_stable_and_stored(tmp_path: Path) -> None:
    first = device_id(KEY, tmp_path)
    assert first.startswith("dev-") and len(first) <= 128
    assert (tmp_path / "device-id").read_text().strip() == first
    assert device_id(b"other-key-0123456789", tmp_path) == first  # stored value wins
    assert device_id(KEY, tmp_path / "fresh") == first  # same machine, same key


@pytest.mark.parametrize(
    "damage",
    [b"\xff\xfe\x00garbage", b"\x00" * 64, b"", b"dev-XYZ\n", b"dev-" + b"0" * 31 + b"\n"],
    ids=["not-utf8", "nul-bytes", "empty", "not-hex", "too-short"],
)
def test_a_damaged_stored_device_id_is_derived_again(tmp_path: Path, damage: bytes) -> None:
    expected = device_id(KEY, tmp_path / "clean")
    (tmp_path / "device-id").write_bytes(damage)
    assert device_id(KEY, tmp_path) == expected
    assert (tmp_path / "device-id").read_text() == expected + "\n"  # repaired on disk


def test_session_changes_on_idle_resume_only() -> None:
    s = SessionTracker(idle_ms=1000.0)
    first = s.session
    assert s.reason == "login" and len(first) == 32
    assert not s.observe(0.0, 100.0)
    assert not s.observe(900.0, 1000.0)
    assert s.session == first
    assert s.observe(2000.0, 2100.0)
    assert s.session != first and s.reason == "idle-resume"
    s.new_session("unlock")
    assert s.reason == "unlock"


def test_time_suspended_counts_as_idle() -> None:
    # CLOCK_MONOTONIC stops while the machine sleeps: a laptop reopened after an hour
    # showed a gap of seconds, and whoever opened it typed on in the owner's session
    # when the lock had gone unnoticed.
    slept = [0.0]
    s = SessionTracker(idle_ms=1000.0, suspended_ms=lambda: slept[0])
    first = s.session
    assert not s.observe(0.0, 100.0)
    slept[0] = 3_600_000.0  # an hour asleep, then input 50 ms of event time later
    assert s.observe(150.0, 200.0)
    assert s.session != first and s.reason == "idle-resume"
    second = s.session
    assert not s.observe(300.0, 400.0)  # no further sleep: the same session
    assert s.session == second


def test_suspended_time_is_read_from_the_clocks() -> None:
    first = suspended_ms()
    assert first >= 0.0
    # The two clocks are read one after the other: only that skew may differ.
    assert abs(suspended_ms() - first) < 50.0


def test_key_identity_hash_is_keyed_and_hides_the_key() -> None:
    h = KeyHasher(key_identity_key(KEY))
    digest = h("'q'")
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert digest != hashlib.sha256(b"'q'").hexdigest()
    assert digest != KeyHasher(key_identity_key(b"z" * 32))("'q'")
    assert key_identity_key(KEY) != KEY


def test_a_gap_of_exactly_the_idle_time_starts_a_session_whatever_the_clock_skew() -> None:
    # suspended_ms() is a few microseconds on a machine that never slept: added to both
    # sides of the comparison, it turned a gap of exactly idle_ms into 999.999... ms.
    s = SessionTracker(idle_ms=1000.0, suspended_ms=lambda: 0.002611)
    assert not s.observe(0.0, 100.0)
    assert not s.observe(900.0, 1000.0)
    assert s.observe(2000.0, 2100.0)
