"""Signed batches: the desk's tag, the worker's check, the settings and the operator's commands;
one user's key revoked by its generation."""

from __future__ import annotations

import asyncio
import hmac
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from collectors import batch_auth
from collectors.batch_auth import (
    MAC_HEADER,
    MAX_GENERATION,
    KeyFileError,
    check,
    format_user_key,
    read_user_key_file,
    secret_signer,
    sign,
    user_key,
    user_signer,
)
from collectors.delivery import SCHEMA_HEADER, BatchSender
from collectors.identity import pseudonym
from collectors.spool import MemorySpool
from streams import revocations
from streams.app import Worker
from streams.batch_tags import BatchTags
from streams.cli import main as cadence
from streams.env import SettingError
from streams.metrics import WorkerMetrics
from streams.revocations import RevocationFileError, RevokedKeys
from streams.settings import WorkerSettings, batch_auth_from_env
from tests.integration.collector_send_script import make_batch

SECRET = bytes(range(32))
ALICE, BOB = "a" * 64, "b" * 64


def test_a_key_belongs_to_one_user_under_one_secret() -> None:
    assert user_key(SECRET, ALICE) == user_key(SECRET, ALICE)
    assert user_key(SECRET, ALICE) != user_key(SECRET, BOB)
    assert user_key(SECRET, ALICE) != user_key(bytes(32), ALICE)


def test_only_the_users_own_tag_on_the_same_value_passes() -> None:
    value = b'{"v":1,"user":"aaaa"}'
    tag = sign(user_key(SECRET, ALICE), value)
    assert check((SECRET,), ALICE, value, [(SCHEMA_HEADER, b"1"), (MAC_HEADER, tag)]) == "current"
    assert check((SECRET,), ALICE, value, {MAC_HEADER: tag}) == "current"  # headers as a dict
    assert check((SECRET,), BOB, value, [(MAC_HEADER, tag)]) == "invalid"
    assert check((SECRET,), ALICE, value + b" ", [(MAC_HEADER, tag)]) == "invalid"
    assert check((bytes(32),), ALICE, value, [(MAC_HEADER, tag)]) == "invalid"
    assert check((SECRET,), ALICE, value, [(MAC_HEADER, tag[:-1])]) == "invalid"
    assert check((SECRET,), ALICE, value, [(MAC_HEADER, None)]) == "invalid"
    # Two tags, one of them right: refused, not searched for a match.
    assert check((SECRET,), ALICE, value, [(MAC_HEADER, b"v1:x"), (MAC_HEADER, tag)]) == "invalid"
    assert check((SECRET,), ALICE, value, None) == "missing"
    assert check((SECRET,), ALICE, value, [(SCHEMA_HEADER, b"1")]) == "missing"


def test_key_files_hold_hex_keys_of_16_bytes_or_more(tmp_path: Path) -> None:
    good = tmp_path / "good.key"
    good.write_text(SECRET.hex() + "\n")
    assert read_user_key_file(good) == (SECRET, 0)
    for name, text, why in [
        ("short.key", "00" * 15, "shorter than 16 bytes"),
        ("text.key", "not a key", "does not hold a hex key"),
        ("raw.key", "\xff" * 32, "does not hold a hex key"),
    ]:
        (tmp_path / name).write_text(text, encoding="latin-1")
        with pytest.raises(KeyFileError, match=why) as raised:
            read_user_key_file(tmp_path / name)
        # A secret stored raw must not leak through the message (the decoder quotes bytes).
        assert "0xff" not in str(raised.value) and "position" not in str(raised.value)
    with pytest.raises(KeyFileError, match="cannot read the user key"):
        read_user_key_file(tmp_path / "absent.key")


def test_the_agent_signs_with_its_users_key_from_the_environment(tmp_path: Path) -> None:
    assert user_signer({}) is None
    path = tmp_path / "user.key"
    path.write_text(user_key(SECRET, ALICE).hex())
    signer = user_signer({batch_auth.USER_KEY_FILE_ENV: str(path)})
    assert signer is not None
    assert check((SECRET,), ALICE, b"x", [(MAC_HEADER, signer(ALICE, b"x"))]) == "current"
    # A desk holds one key: a batch under another user is tagged with it all the same,
    # and the worker refuses it.
    assert check((SECRET,), BOB, b"x", [(MAC_HEADER, signer(BOB, b"x"))]) == "invalid"
    assert (
        check((SECRET,), BOB, b"x", [(MAC_HEADER, secret_signer(SECRET)(BOB, b"x"))]) == "current"
    )


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes, Any]] = []

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        self.sent.append((key, value, headers))

    def poll(self, timeout: float = 0) -> int:
        return 0


@pytest.mark.parametrize("signed", [False, True])
def test_the_sender_tags_each_batch_when_it_has_a_signer(signed: bool) -> None:
    sender = BatchSender(
        MemorySpool(),
        bootstrap="127.0.0.1:1",
        extra_config={"log_level": 0},
        signer=secret_signer(SECRET) if signed else None,
    )
    fake = _Producer()
    sender._producer = fake  # type: ignore[assignment]
    batch = make_batch("dev-1", 0)
    sender.send(batch)
    ((key, value, headers),) = fake.sent
    assert key == batch.user.encode()
    assert check((SECRET,), batch.user, value, headers) == ("current" if signed else "missing")
    assert (SCHEMA_HEADER, b"1") in headers


class _Event:
    def __init__(self, key: bytes, value: bytes, headers: Any) -> None:
        self.message = SimpleNamespace(key=key, value=value, headers=headers)


def _gate(
    mode: str = "require",
    secrets: tuple[bytes, ...] = (SECRET,),
    revoked: RevokedKeys | None = None,
) -> BatchTags:
    settings = WorkerSettings(
        batch_auth=mode, batch_auth_secrets=secrets, batch_auth_revoked=revoked
    )
    return BatchTags(settings, WorkerMetrics())


def _judged(
    mode: str,
    headers: Any,
    user: str = ALICE,
    secrets: tuple[bytes, ...] = (SECRET,),
    revoked: RevokedKeys | None = None,
) -> tuple[bool, Any, list[Any]]:
    """(goes on to be judged, metrics, dead letters) for one record through the gate."""
    tags = _gate(mode, secrets, revoked)
    refused = tags.refusal(_Event(user.encode(), b"value", headers).message)
    # What Worker.handle sends for a refused record (the integration test sends some).
    letters = [] if refused is None else [("unauthenticated", "cadence-mac", refused)]
    return refused is None, tags.metrics, letters


def test_the_worker_dead_letters_what_the_gate_refuses_before_decoding_it() -> None:
    letters: list[Any] = []
    accepted: list[Any] = []

    async def dead_letter(event: Any, reason: str, field: str, detail: str) -> None:
        letters.append((reason, field, detail))

    async def accept(batch: Any, event: Any) -> None:
        accepted.append(batch)

    worker = SimpleNamespace(
        tags=_gate(),
        metrics=SimpleNamespace(pending_batches=0),
        dead_letter=dead_letter,
        accept=accept,
    )
    # Not even a batch: refused for its missing tag before anything parses the value.
    event = _Event(ALICE.encode(), b"not json", [])
    asyncio.run(Worker.handle(worker, event))  # type: ignore[arg-type]
    assert accepted == [] and letters == [
        ("unauthenticated", "cadence-mac", "no cadence-mac header")
    ]


def _failures(metrics: WorkerMetrics, reason: str) -> float:
    return metrics.unsigned_batches.labels(reason)._value.get()


def test_require_dead_letters_a_batch_without_its_users_tag() -> None:
    tag = sign(user_key(SECRET, ALICE), b"value")
    goes_on, metrics, letters = _judged("require", [(MAC_HEADER, tag)])
    assert goes_on and letters == [] and _failures(metrics, "invalid") == 0
    goes_on, metrics, letters = _judged("require", [(MAC_HEADER, tag)], user=BOB)
    assert not goes_on and _failures(metrics, "invalid") == 1
    assert letters == [
        (
            "unauthenticated",
            "cadence-mac",
            "cadence-mac is not the record's tag under its user's key",
        )
    ]
    goes_on, metrics, letters = _judged("require", [])
    assert not goes_on and _failures(metrics, "missing") == 1
    assert letters == [("unauthenticated", "cadence-mac", "no cadence-mac header")]


def test_a_retiring_secrets_tag_is_accepted_and_counted_until_the_secret_is_gone() -> None:
    new_secret = bytes(range(1, 33))
    old_tag = sign(user_key(SECRET, ALICE), b"value")
    rotating = (new_secret, SECRET)
    for mode in ("report", "require"):
        goes_on, metrics, letters = _judged(mode, [(MAC_HEADER, old_tag)], secrets=rotating)
        assert goes_on and letters == []
        assert metrics.retiring_tags._value.get() == 1 and _failures(metrics, "invalid") == 0
    new_tag = sign(user_key(new_secret, ALICE), b"value")
    goes_on, metrics, _ = _judged("require", [(MAC_HEADER, new_tag)], secrets=rotating)
    assert goes_on and metrics.retiring_tags._value.get() == 0
    # The old secret taken off the list: its keys' batches are refused.
    goes_on, metrics, letters = _judged("require", [(MAC_HEADER, old_tag)], secrets=(new_secret,))
    assert not goes_on and _failures(metrics, "invalid") == 1
    assert metrics.retiring_tags._value.get() == 0 and letters[0][0] == "unauthenticated"


def test_a_secret_file_holds_the_current_secret_first_then_retiring_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    new_secret, path = bytes(range(1, 33)), tmp_path / "secret"
    path.write_text(f"{new_secret.hex()}\n\n# retiring since 2026-12-07\n{SECRET.hex()}\n")
    env = {"CADENCE_BATCH_AUTH_SECRET_FILE": str(path)}
    assert batch_auth.signing_secrets(env) == (new_secret, SECRET)
    assert batch_auth.signing_secret(env) == new_secret
    monkeypatch.setenv("CADENCE_BATCH_AUTH_SECRET_FILE", str(path))
    assert cadence(["keys", "issue", "--pseudonym", ALICE]) == 0  # keys come from the first
    assert capsys.readouterr().out.strip() == user_key(new_secret, ALICE).hex()
    assert batch_auth_from_env({**env, "CADENCE_BATCH_AUTH": "report"})["batch_auth_secrets"] == (
        new_secret,
        SECRET,
    )
    for text, why in [
        (f"{SECRET.hex()}\n{SECRET.hex()}\n", "the same secret twice"),
        ("# only a note\n\n", "does not hold a hex key"),
        (f"{SECRET.hex()}\n{'ab' * 8}zz\n", r"line 2\) does not hold a hex key"),
        (f"{SECRET.hex()}\n{'00' * 15}\n", r"line 2\) is shorter than 16 bytes"),
    ]:
        path.write_text(text)
        with pytest.raises(KeyFileError, match=why) as raised:
            batch_auth.signing_secrets(env)
        assert SECRET.hex() not in str(raised.value) and "ab" * 8 not in str(raised.value)


def test_a_secret_file_read_as_one_secret_before_rotation_still_is_or_is_refused(
    tmp_path: Path,
) -> None:
    # Before rotation the file was one secret, whitespace anywhere ignored.
    path, env = tmp_path / "secret", {"CADENCE_BATCH_AUTH_SECRET_FILE": str(tmp_path / "secret")}
    spaced = " ".join(f"{b:02x}" for b in SECRET)
    for text in (f"{SECRET.hex()}\r\n", f" {spaced}\n"):  # Windows line end, spaced hex
        path.write_text(text, encoding="ascii", newline="")
        assert batch_auth.signing_secrets(env) == (SECRET,)
    # A dump wrapped over lines (od -An -tx1: 16 bytes a line) is no rotation: refused,
    # not read as two 16-byte secrets with a new current one.
    path.write_text(f"{spaced[:47]}\n{spaced[48:]}\n")
    with pytest.raises(KeyFileError, match="each secret on one line") as raised:
        batch_auth.signing_secrets(env)
    assert SECRET.hex()[:8] not in str(raised.value) and spaced[:11] not in str(raised.value)


def test_a_long_secret_wrapped_by_xxd_or_basenc_is_refused(tmp_path: Path) -> None:
    # xxd -p wraps at 60 hex digits, basenc --base16 at 76: a 48-byte secret would split
    # into a 30-byte current secret and an 18-byte retiring one, each long enough.
    path, env = tmp_path / "secret", {"CADENCE_BATCH_AUTH_SECRET_FILE": str(tmp_path / "secret")}
    long = bytes(range(48)).hex()
    for width in (60, 76):
        path.write_text("\n".join(long[i : i + width] for i in range(0, len(long), width)))
        with pytest.raises(KeyFileError, match="wrapped over lines") as raised:
            batch_auth.signing_secrets(env)
        assert long[:8] not in str(raised.value)
    # Two whole secrets of another length, or a shorter one after a wrap-width one that
    # came first by rotation, are still read as a rotation (only the wrap shape refuses).
    path.write_text(f"{bytes(range(32)).hex()}\n{bytes(range(1, 17)).hex()}\n")
    assert len(batch_auth.signing_secrets(env) or ()) == 2
    path.write_text(f"{bytes(range(30)).hex()}\n{bytes(range(1, 31)).hex()}\n")
    assert len(batch_auth.signing_secrets(env) or ()) == 2


def test_report_counts_a_batch_without_its_users_tag_and_judges_it() -> None:
    goes_on, metrics, letters = _judged("report", [])
    assert goes_on and letters == [] and _failures(metrics, "missing") == 1


def test_worker_settings_need_the_secret_unless_tags_are_off(tmp_path: Path) -> None:
    assert batch_auth_from_env({}) == {"batch_auth": "off"}
    secret = tmp_path / "secret"
    secret.write_text(SECRET.hex())
    env = {"CADENCE_BATCH_AUTH": "Require", "CADENCE_BATCH_AUTH_SECRET_FILE": str(secret)}
    assert batch_auth_from_env(env) == {
        "batch_auth": "require",
        "batch_auth_secrets": (SECRET,),
        "batch_auth_revoked": None,
    }
    with pytest.raises(SettingError, match="must be one of off, report, require"):
        batch_auth_from_env({"CADENCE_BATCH_AUTH": "on"})
    with pytest.raises(SettingError, match="needs CADENCE_BATCH_AUTH_SECRET_FILE"):
        batch_auth_from_env({"CADENCE_BATCH_AUTH": "report"})
    with pytest.raises(SettingError, match="cannot read the signing secret"):
        batch_auth_from_env({**env, "CADENCE_BATCH_AUTH_SECRET_FILE": str(tmp_path / "no")})


def test_keys_issue_gives_the_key_the_worker_derives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret, pseudonym_key = tmp_path / "secret", tmp_path / "pseudonym.key"
    secret.write_text(SECRET.hex())
    pseudonym_key.write_text("k" * 32)
    monkeypatch.delenv("CADENCE_BATCH_AUTH_SECRET_FILE", raising=False)
    assert cadence(["keys", "issue", "alice"]) == 2
    assert "set CADENCE_BATCH_AUTH_SECRET_FILE" in capsys.readouterr().err
    monkeypatch.setenv("CADENCE_BATCH_AUTH_SECRET_FILE", str(secret))
    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY_FILE", str(pseudonym_key))
    monkeypatch.delenv("CADENCE_BATCH_AUTH_REVOKED_FILE", raising=False)
    assert cadence(["keys", "issue", "alice"]) == 0
    alice = pseudonym("alice", b"k" * 32)
    printed = capsys.readouterr()
    assert printed.out.strip() == user_key(SECRET, alice).hex()
    # Without the revocation list the generation is a guess, said so.
    assert "CADENCE_BATCH_AUTH_REVOKED_FILE is unset: issuing generation 0" in printed.err
    assert cadence(["keys", "issue", "--pseudonym", alice]) == 0
    assert capsys.readouterr().out.strip() == user_key(SECRET, alice).hex()
    assert cadence(["keys", "issue", "--pseudonym", "alice"]) == 2
    out = tmp_path / "alice.key"
    assert cadence(["keys", "issue", "alice", "--out", str(out)]) == 0
    assert read_user_key_file(out) == (user_key(SECRET, alice), 0)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert cadence(["keys", "issue", "bob", "--out", str(out)]) == 2  # never overwritten
    assert "cannot create" in capsys.readouterr().err
    assert read_user_key_file(out) == (user_key(SECRET, alice), 0)


def test_sign_without_the_secret_stops_simulate_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CADENCE_BATCH_AUTH_SECRET_FILE", raising=False)
    assert cadence(["simulate", "--sign", "--seconds", "1", "--bootstrap", "127.0.0.1:1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "cadence simulate: --sign needs CADENCE_BATCH_AUTH_SECRET_FILE"
    )


# ------------------------------------------------ one user's key revoked: generations


def _tag(user: str, generation: int, value: bytes = b"value", secret: bytes = SECRET) -> bytes:
    return sign(user_key(secret, user, generation), value, generation)


def test_generation_0_is_the_key_and_tag_issued_before_generations() -> None:
    # Written out, not derived from the module: keys and tags already on desks must stay
    # what they were.
    old_key = hmac.new(SECRET, b"cadence-user-key-v1\x00" + ALICE.encode(), "sha256").digest()
    assert user_key(SECRET, ALICE) == user_key(SECRET, ALICE, 0) == old_key
    assert sign(old_key, b"value") == b"v1:" + hmac.new(old_key, b"value", "sha256").digest()
    assert check((SECRET,), ALICE, b"value", [(MAC_HEADER, _tag(ALICE, 0))], 0) == "current"


def test_each_generation_is_another_key_and_names_itself_in_the_tag() -> None:
    keys = {user_key(SECRET, ALICE, g) for g in (0, 1, 2, MAX_GENERATION)}
    assert len(keys) == 4 and user_key(SECRET, BOB, 1) not in keys
    assert _tag(ALICE, 1).startswith(b"v1g1:") and _tag(ALICE, 12).startswith(b"v1g12:")
    for generation in (1, 2, MAX_GENERATION):
        tag = _tag(ALICE, generation)
        assert check((SECRET,), ALICE, b"value", [(MAC_HEADER, tag)]) == "current"
        assert check((bytes(32), SECRET), ALICE, b"value", [(MAC_HEADER, tag)]) == "retiring"
        assert check((SECRET,), BOB, b"value", [(MAC_HEADER, tag)]) == "invalid"
    with pytest.raises(ValueError, match="key generation"):
        user_key(SECRET, ALICE, MAX_GENERATION + 1)


def test_a_tag_claiming_another_generation_than_its_key_is_invalid_not_revoked() -> None:
    mac = _tag(ALICE, 0)[3:]  # generation 0's MAC, relabelled
    for forged in (b"v1g1:" + mac, b"v1g2:" + mac):
        assert check((SECRET,), ALICE, b"value", [(MAC_HEADER, forged)]) == "invalid"
    generation_1 = _tag(ALICE, 1)[5:]
    assert check((SECRET,), ALICE, b"value", [(MAC_HEADER, b"v1:" + generation_1)]) == "invalid"
    # Made up under a revoked generation: no key, so not "revoked" (which means the key is used).
    assert check((SECRET,), ALICE, b"value", [(MAC_HEADER, b"v1:" + bytes(32))], 1) == "invalid"
    # One spelling per generation: none of these is read as generation 1 (or at all).
    for prefix in (b"v1g01:", b"v1g0:", b"v1g-1:", b"v1g+1:", b"v1g 1:", b"v1g1000000:", b"v2:"):
        tag = prefix + generation_1
        assert check((SECRET,), ALICE, b"value", [(MAC_HEADER, tag)]) == "invalid", prefix


def test_keys_below_the_users_minimum_generation_are_revoked_the_others_pass() -> None:
    headers = {g: [(MAC_HEADER, _tag(ALICE, g))] for g in (0, 1, 2, 3)}
    assert [check((SECRET,), ALICE, b"value", headers[g], 2) for g in (0, 1, 2, 3)] == [
        "revoked",
        "revoked",
        "current",
        "current",
    ]
    # Revoked whatever the secret: a key of a retiring secret is no way around it.
    old = [(MAC_HEADER, _tag(ALICE, 0, secret=bytes(32)))]
    assert check((SECRET, bytes(32)), ALICE, b"value", old, 1) == "revoked"
    assert check((SECRET,), ALICE, b"other", headers[0], 1) == "invalid"


def test_a_key_file_names_its_generation_and_the_agent_tags_with_it(tmp_path: Path) -> None:
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    old.write_text(user_key(SECRET, ALICE).hex() + "\n")  # as issued before generations
    new.write_text(format_user_key(user_key(SECRET, ALICE, 3), 3) + "\n")
    assert new.read_text().startswith("g3:")
    assert read_user_key_file(old) == (user_key(SECRET, ALICE), 0)
    assert read_user_key_file(new) == (user_key(SECRET, ALICE, 3), 3)
    assert format_user_key(user_key(SECRET, ALICE), 0) == user_key(SECRET, ALICE).hex()
    for path, generation in ((old, 0), (new, 3)):
        signer = user_signer({batch_auth.USER_KEY_FILE_ENV: str(path)})
        assert signer is not None
        assert signer(ALICE, b"x").startswith(b"v1:" if generation == 0 else b"v1g3:")
        outcome = check((SECRET,), ALICE, b"x", [(MAC_HEADER, signer(ALICE, b"x"))], 3)
        assert outcome == ("revoked" if generation == 0 else "current")
    hexkey = SECRET.hex()
    for text in (f"g0:{hexkey}", f"g01:{hexkey}", f"g:{hexkey}", f"gx:{hexkey}", "g1:", "g1"):
        new.write_text(text)
        with pytest.raises(KeyFileError, match="user key") as raised:
            read_user_key_file(new)
        assert hexkey not in str(raised.value)


# ------------------------------------------------ the worker: revoked keys, their file


def _revoked(minimum: dict[str, int]) -> RevokedKeys:
    return RevokedKeys("revoked", minimum, (0, 0, 0))


def test_require_dead_letters_a_revoked_key_and_judges_the_users_next_and_the_others() -> None:
    revoked = _revoked({ALICE: 1})
    goes_on, metrics, letters = _judged("require", [(MAC_HEADER, _tag(ALICE, 0))], revoked=revoked)
    assert not goes_on and _failures(metrics, "revoked") == 1
    assert _failures(metrics, "invalid") == 0
    assert letters == [
        (
            "unauthenticated",
            "cadence-mac",
            "cadence-mac is its user's tag under a revoked key (this user's keys below "
            "generation 1 are revoked)",
        )
    ]
    for user, generation in ((ALICE, 1), (BOB, 0)):
        goes_on, metrics, letters = _judged(
            "require", [(MAC_HEADER, _tag(user, generation))], user=user, revoked=revoked
        )
        assert goes_on and letters == [] and _failures(metrics, "revoked") == 0


def test_report_counts_a_revoked_key_and_judges_its_batch() -> None:
    goes_on, metrics, letters = _judged(
        "report", [(MAC_HEADER, _tag(ALICE, 0))], revoked=_revoked({ALICE: 1})
    )
    assert goes_on and letters == [] and _failures(metrics, "revoked") == 1


def test_a_revocation_file_holds_one_users_minimum_generation_a_line(tmp_path: Path) -> None:
    path = tmp_path / "revoked"
    path.write_text(
        f"# 2026-12-08 laptop stolen\n\n{ALICE} 1\n  {BOB}\t2  \n{ALICE} 3\n{ALICE} 2\n"
    )
    revoked = revocations.load(str(path))
    # Named twice, a user keeps the highest: revoking again only ever appends.
    assert dict(revoked.minimum) == {ALICE: 3, BOB: 2}
    assert revoked.min_generation(ALICE) == 3 and revoked.min_generation("c" * 64) == 0
    path.write_text("# nobody yet\n")
    assert revocations.load(str(path)).minimum == {}
    for text, why in [
        (f"{ALICE}\n", "line 1: expected PSEUDONYM MIN_GENERATION"),
        (f"\n{ALICE} 1 # stolen\n", "line 2: expected PSEUDONYM MIN_GENERATION"),
        ("alice 1\n", "line 1: the user must be a pseudonym"),
        (f"{ALICE.upper()} 1\n", "the user must be a pseudonym"),
        (f"{ALICE} 0\n", "MIN_GENERATION must be 1 to 999999"),
        (f"{ALICE} 01\n", "MIN_GENERATION must be 1"),
        (f"{ALICE} -1\n", "MIN_GENERATION must be 1"),
        (f"{ALICE} 1000000\n", "MIN_GENERATION must be 1"),
    ]:
        path.write_text(text)
        with pytest.raises(RevocationFileError, match=why):
            revocations.load(str(path))
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(RevocationFileError, match="is not text"):
        revocations.load(str(path))
    with pytest.raises(RevocationFileError, match="cannot read the revocation file"):
        revocations.load(str(tmp_path / "absent"))


def test_the_file_is_read_again_only_when_it_changed(tmp_path: Path) -> None:
    path = tmp_path / "revoked"
    path.write_text(f"{ALICE} 1\n")
    first = revocations.load(str(path))
    assert revocations.reload(first) is first  # unchanged: not read
    with path.open("a") as out:  # appended in place, as `cadence keys revoke` does
        out.write(f"{BOB} 1\n")
    second = revocations.reload(first)
    assert dict(second.minimum) == {ALICE: 1, BOB: 1}
    assert revocations.reload(second) is second
    # Replaced whole by a file of the same size (a Kubernetes Secret update swaps a
    # symlink; an editor renames its copy over): another inode, read again.
    replacement = tmp_path / "revoked.new"
    replacement.write_text(f"{ALICE} 2\n{BOB} 1\n")
    os.replace(replacement, path)
    assert dict(revocations.reload(second).minimum) == {ALICE: 2, BOB: 1}


def test_a_worker_keeps_the_last_list_while_its_file_cannot_be_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "revoked"
    path.write_text(f"{ALICE} 1\n")
    gate = _gate(revoked=revocations.load(str(path)))
    path.write_text(f"{ALICE} 1\n{BOB} 1\n")
    gate.reread()
    assert gate.revoked is not None and dict(gate.revoked.minimum) == {ALICE: 1, BOB: 1}
    assert gate.metrics.revoked_users._value.get() == 2
    in_force = gate.revoked
    caplog.set_level("INFO", logger="streams.batch_tags")
    for damaged in (f"{ALICE} 1\nalice 2\n", None):  # a login written, then the file gone
        caplog.clear()
        if damaged is None:
            path.unlink()
        else:
            path.write_text(damaged)
        gate.reread()
        gate.reread()
        assert gate.revoked is in_force and gate.metrics.revoked_users._value.get() == 2
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1 and "still refusing the 2 users' keys" in errors[0].getMessage()
    # Counted at every look while it stays unreadable: an alert on it keeps firing.
    assert gate.metrics.revocation_read_errors._value.get() == 4
    ok, metrics, _ = _judged(
        "require", [(MAC_HEADER, _tag(BOB, 0))], user=BOB, revoked=gate.revoked
    )
    assert not ok and _failures(metrics, "revoked") == 1
    path.write_text(f"{BOB} 2\n")  # lifts ALICE's: in force at the second look
    gate.reread()
    assert gate.revoked is in_force and gate.read_error is None
    assert "can be read again" in caplog.text
    gate.reread()
    assert gate.revoked is not None and dict(gate.revoked.minimum) == {BOB: 2}
    assert gate.metrics.revoked_users._value.get() == 1


def test_a_revocation_is_lifted_only_when_the_file_reads_the_same_twice(
    tmp_path: Path,
) -> None:
    # An editor writing the file in place (truncate, then write) can be read empty or
    # half written: a moment's read must not let a revoked key through.
    path = tmp_path / "revoked"
    path.write_text(f"{ALICE} 2\n{BOB} 1\n")
    gate = _gate(revoked=revocations.load(str(path)))
    in_force = gate.revoked
    path.write_text("")  # truncated, the rewrite not there yet
    gate.reread()
    assert gate.revoked is in_force
    path.write_text(f"{ALICE} 2\n{BOB} 1\n# stolen laptop\n")  # the rewrite lands
    gate.reread()
    assert gate.revoked is not in_force and gate.revoked is not None
    assert dict(gate.revoked.minimum) == {ALICE: 2, BOB: 1}
    # A revocation added is in force at once; one lifted (ALICE lowered) at the next look.
    path.write_text(f"{ALICE} 1\n{BOB} 2\n")
    gate.reread()
    assert dict(gate.revoked.minimum) == {ALICE: 2, BOB: 1}
    ok = _judged("require", [(MAC_HEADER, _tag(ALICE, 1))], revoked=gate.revoked)[0]
    assert not ok
    gate.reread()
    assert dict(gate.revoked.minimum) == {ALICE: 1, BOB: 2}
    path.write_text(f"{ALICE} 1\n{BOB} 3\n# again\n")
    gate.reread()
    assert dict(gate.revoked.minimum) == {ALICE: 1, BOB: 3}


def test_a_worker_with_a_bad_revocation_file_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret, revoked = tmp_path / "secret", tmp_path / "revoked"
    secret.write_text(SECRET.hex())
    env = {
        "CADENCE_BATCH_AUTH": "require",
        "CADENCE_BATCH_AUTH_SECRET_FILE": str(secret),
        "CADENCE_BATCH_AUTH_REVOKED_FILE": str(revoked),
    }
    revoked.write_text(f"{ALICE} 2\n")
    settings = batch_auth_from_env(env)["batch_auth_revoked"]
    assert settings is not None and dict(settings.minimum) == {ALICE: 2}
    # Off, the file is not read (as the secret is not).
    assert batch_auth_from_env({**env, "CADENCE_BATCH_AUTH": "off"}) == {"batch_auth": "off"}
    revoked.write_text("alice 2\n")
    with pytest.raises(SettingError, match="line 1: the user must be a pseudonym"):
        batch_auth_from_env(env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cadence(["worker"]) == 2  # before any Kafka client is made
    assert "cadence worker: the revocation file" in capsys.readouterr().err
    revoked.unlink()
    assert cadence(["worker"]) == 2
    assert "cannot read the revocation file" in capsys.readouterr().err


# ------------------------------------------------ the operator's commands


@pytest.fixture
def operator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The signing secret and the pseudonym key set; returns the revocation file's path."""
    secret, pseudonym_key = tmp_path / "secret", tmp_path / "pseudonym.key"
    secret.write_text(SECRET.hex())
    pseudonym_key.write_text("k" * 32)
    monkeypatch.setenv("CADENCE_BATCH_AUTH_SECRET_FILE", str(secret))
    monkeypatch.setenv("CADENCE_PSEUDONYM_KEY_FILE", str(pseudonym_key))
    monkeypatch.delenv("CADENCE_BATCH_AUTH_REVOKED_FILE", raising=False)
    return tmp_path / "revoked"


def test_keys_issue_gives_a_generations_key_never_a_revoked_one(
    operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = pseudonym("alice", b"k" * 32)
    assert cadence(["keys", "issue", "alice", "--generation", "1"]) == 0
    assert capsys.readouterr().out.strip() == format_user_key(user_key(SECRET, alice, 1), 1)
    with pytest.raises(SystemExit) as usage:  # argparse's usage error
        cadence(["keys", "issue", "alice", "--generation", "1000000"])
    assert usage.value.code == 2
    assert "a key generation is 0 to 999999" in capsys.readouterr().err
    operator_env.write_text(f"{alice} 3\n")
    monkeypatch.setenv("CADENCE_BATCH_AUTH_REVOKED_FILE", str(operator_env))
    # The file knows each user's current generation: issuing again gives that key.
    assert cadence(["keys", "issue", "alice"]) == 0
    assert capsys.readouterr().out.strip() == format_user_key(user_key(SECRET, alice, 3), 3)
    assert cadence(["keys", "issue", "bob"]) == 0  # not revoked: generation 0, as ever
    bob = pseudonym("bob", b"k" * 32)
    assert capsys.readouterr().out.strip() == user_key(SECRET, bob).hex()
    assert cadence(["keys", "issue", "alice", "--generation", "2"]) == 2
    assert "keys below generation 3 are revoked" in capsys.readouterr().err
    operator_env.write_text("alice 3\n")
    assert cadence(["keys", "issue", "bob"]) == 2
    assert "the user must be a pseudonym" in capsys.readouterr().err


def test_keys_revoke_appends_the_users_next_generation_and_issues_its_key(
    operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    alice, bob = pseudonym("alice", b"k" * 32), pseudonym("bob", b"k" * 32)
    assert cadence(["keys", "revoke", "alice"]) == 2
    assert "set CADENCE_BATCH_AUTH_REVOKED_FILE" in capsys.readouterr().err
    monkeypatch.setenv("CADENCE_BATCH_AUTH_REVOKED_FILE", str(operator_env))
    out = operator_env.parent / "alice.key"
    assert cadence(["keys", "revoke", "alice", "--out", str(out)]) == 0  # file created
    assert read_user_key_file(out) == (user_key(SECRET, alice, 1), 1)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert dict(revocations.load(str(operator_env)).minimum) == {alice: 1}
    # A last line without its line break (edited by hand) is not glued to the next.
    with operator_env.open("a") as file:
        file.write(f"{bob} 1")
    assert cadence(["keys", "revoke", "--pseudonym", alice]) == 0
    assert capsys.readouterr().out.strip() == format_user_key(user_key(SECRET, alice, 2), 2)
    assert dict(revocations.load(str(operator_env)).minimum) == {alice: 2, bob: 1}
    assert cadence(["keys", "issue", "alice"]) == 0
    assert capsys.readouterr().out.strip() == format_user_key(user_key(SECRET, alice, 2), 2)
    # Nothing is appended when the key cannot be written, or to a file that does not parse.
    before = operator_env.read_text()
    assert cadence(["keys", "revoke", "alice", "--out", str(out)]) == 2
    assert "cannot create" in capsys.readouterr().err
    operator_env.write_text(before + "alice 9\n")
    assert cadence(["keys", "revoke", "bob"]) == 2
    assert "the user must be a pseudonym" in capsys.readouterr().err
    assert operator_env.read_text() == before + "alice 9\n"


def test_keys_issue_gives_no_generation_that_keys_revoke_would_skip(
    operator_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `keys revoke` revokes below one past the generation the file names: a key issued
    # further ahead would outlive the revocation meant for it (a copied laptop's key).
    alice = pseudonym("alice", b"k" * 32)
    monkeypatch.setenv("CADENCE_BATCH_AUTH_REVOKED_FILE", str(operator_env))
    operator_env.write_text(f"{alice} 1\n")
    assert cadence(["keys", "issue", "alice", "--generation", "3"]) == 2
    assert "issue generation 1 or 2" in capsys.readouterr().err
    # The next one is issued, so that a key is installed before the old one is revoked.
    assert cadence(["keys", "issue", "alice", "--generation", "2"]) == 0
    capsys.readouterr()
    assert cadence(["keys", "revoke", "alice"]) == 0
    capsys.readouterr()
    revoked = revocations.load(str(operator_env))
    old = sign(user_key(SECRET, alice, 1), b"v", 1)
    assert check((SECRET,), alice, b"v", [(MAC_HEADER, old)], revoked.min_generation(alice)) == (
        "revoked"
    )
    # Without a revocation file, every user's current generation is 0.
    monkeypatch.delenv("CADENCE_BATCH_AUTH_REVOKED_FILE")
    assert cadence(["keys", "issue", "alice", "--generation", "2"]) == 2
    assert "issue generation 0 or 1" in capsys.readouterr().err


def test_a_user_revoked_again_shows_on_the_worker_once_it_read_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The docs' check that a revocation is in force must move when the user revoked is
    # one the list already holds (a second stolen laptop): the count of users does not.
    path = tmp_path / "revoked"
    path.write_text(f"{ALICE} 1\n")
    monkeypatch.setattr("time.time", lambda: 1000.0)
    gate = _gate(revoked=revocations.load(str(path)))
    read_at = gate.metrics.revocations_read_time
    assert read_at._value.get() == 1000.0
    monkeypatch.setattr("time.time", lambda: 2000.0)
    gate.reread()  # unchanged: not read again
    assert read_at._value.get() == 1000.0
    with path.open("a") as out:
        out.write(f"{ALICE} 2\n")
    gate.reread()
    assert gate.revoked is not None and gate.revoked.min_generation(ALICE) == 2
    assert gate.metrics.revoked_users._value.get() == 1  # the same one user
    assert read_at._value.get() == 2000.0


def test_sign_tags_a_revoked_user_with_their_current_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streams.commands._signing import signer_or_exit

    secret, revoked = tmp_path / "secret", tmp_path / "revoked"
    secret.write_text(SECRET.hex())
    revoked.write_text(f"{BOB} 2\n")
    monkeypatch.setenv("CADENCE_BATCH_AUTH_SECRET_FILE", str(secret))
    monkeypatch.setenv("CADENCE_BATCH_AUTH_REVOKED_FILE", str(revoked))
    signer = signer_or_exit(SimpleNamespace(sign=True), "simulate")
    assert callable(signer)
    for user in (ALICE, BOB):
        tag = signer(user, b"value")
        minimum = 2 if user == BOB else 0
        assert check((SECRET,), user, b"value", [(MAC_HEADER, tag)], minimum) == "current"
    revoked.write_text("alice 1\n")  # a login, not a pseudonym: refused, as by the worker
    assert signer_or_exit(SimpleNamespace(sign=True), "simulate") == 2
    assert "cadence simulate: the revocation file" in capsys.readouterr().err
