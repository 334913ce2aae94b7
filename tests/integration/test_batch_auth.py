"""A worker that requires signed batches, on a real broker: a desk writes its own user's
batches only. One user's batches carry their own tag, another's the first user's tag (a
desk's key used for someone else), a third's none: only the first user is judged; every
other batch is a dead letter (``unauthenticated``), counted by why. Mid-rotation, a fourth
user's desk still signs with its key under the retiring secret: judged, and counted.

One user's key revoked while the worker runs (``cadence keys revoke``, the revocation
file read again without a restart): that key's later batches are dead letters, the same
user's batches under their new key and another user's are judged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collectors.batch_auth import (
    USER_KEY_FILE_ENV,
    secret_signer,
    sign,
    user_key,
    user_signer,
)
from collectors.delivery import BatchSender
from collectors.simulate import Workload
from collectors.wire import EventBatch
from streams import deadletter
from streams.cli import main as cadence
from tests.integration.worker_support import (
    Deployment,
    TopicReader,
    read_verdicts,
    running_worker,
    wait_until,
)

SECRET = bytes(range(7, 39))
RETIRING = bytes(range(40, 72))
SECONDS = 60.0


@pytest.fixture
def deployment(kafka_bootstrap: str, tmp_path: Path) -> Deployment:
    d = Deployment(kafka_bootstrap, tmp_path, partitions=2)
    d.create_topics()
    return d


def test_a_worker_requiring_tags_judges_only_the_batches_of_their_own_users_key(
    deployment: Deployment, tmp_path: Path
) -> None:
    start = time.time() * 1000.0 - (SECONDS + 30) * 1000.0
    batches = [b for _, b in Workload(users=4, seed=4, start_wall_ms=start).batches(SECONDS)]
    owner, forger, unsigned, laggard = sorted({b.user for b in batches})
    owners_key = user_key(SECRET, owner)
    # The forger's desk holds the owner's key (copied from their profile) and signs with it.
    signed = BatchSender(
        bootstrap=deployment.bootstrap,
        topic=deployment.events,
        signer=lambda user, value: sign(owners_key, value),
    )
    # The laggard's desk has not got its new key yet: its own, under the retiring secret.
    retiring = BatchSender(
        bootstrap=deployment.bootstrap,
        topic=deployment.events,
        signer=secret_signer(RETIRING),
    )
    plain = BatchSender(bootstrap=deployment.bootstrap, topic=deployment.events)
    for batch in batches:
        {unsigned: plain, laggard: retiring}.get(batch.user, signed).send(batch)
    for sender in (signed, retiring, plain):
        assert sender.flush(60) == 0
        sender.close()
    assert secret_signer(SECRET)(owner, b"v") == sign(owners_key, b"v")
    refused = {u: sum(b.user == u for b in batches) for u in (forger, unsigned)}
    judged_events = sum(len(b.events) for b in batches if b.user in (owner, laggard))
    secret_file = tmp_path / "signing.secret"
    secret_file.write_text(f"{SECRET.hex()}\n# retiring\n{RETIRING.hex()}\n")
    verdicts = TopicReader(deployment.bootstrap, deployment.verdicts)
    dead = TopicReader(deployment.bootstrap, deployment.topics.deadletter)
    with running_worker(
        deployment,
        CADENCE_BATCH_AUTH="require",
        CADENCE_BATCH_AUTH_SECRET_FILE=str(secret_file),
    ) as worker:

        def judged() -> int:
            verdicts.poll(1.0)
            return sum(v.events for v in read_verdicts(verdicts))

        wait_until(lambda: judged() >= judged_events, timeout=120, what="the signed events judged")
        wait_until(
            lambda: dead.poll(1.0) >= 0 and len(dead.records) >= sum(refused.values()),
            timeout=60,
            what="the other batches dead-lettered",
        )
        metrics = worker.metrics()
    verdicts.close()
    dead.close()
    assert {v.user for v in read_verdicts(verdicts)} == {owner, laggard}
    assert sum(v.events for v in read_verdicts(verdicts)) == judged_events
    assert len(dead.records) == sum(refused.values())
    assert {deadletter.reason_of(h) for _, _, h in dead.records} == {"unauthenticated"}
    assert {k for k, _, _ in dead.records} == {forger.encode(), unsigned.encode()}
    assert metrics['cadence_batch_auth_failures_total{reason="invalid"}'] == refused[forger]
    assert metrics['cadence_batch_auth_failures_total{reason="missing"}'] == refused[unsigned]
    assert metrics['cadence_dead_letters_total{reason="unauthenticated"}'] == sum(refused.values())
    assert metrics["cadence_batch_auth_retiring_total"] == sum(b.user == laggard for b in batches)
    assert metrics["cadence_batch_auth_retiring_secrets"] == 1


def test_a_key_revoked_while_the_worker_runs_is_refused_and_nobody_elses(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = time.time() * 1000.0 - (SECONDS + 30) * 1000.0
    batches = [b for _, b in Workload(users=2, seed=6, start_wall_ms=start).batches(SECONDS)]
    victim, colleague = sorted({b.user for b in batches})
    mine = [b for b in batches if b.user == victim]
    # Before the revocation the victim's desk signs with their first key; then the thief,
    # who copied it, goes on with it, and the victim's desk gets their next key.
    before, stolen, renewed = (
        mine[: len(mine) // 3],
        mine[len(mine) // 3 : 2 * len(mine) // 3],
        mine[2 * len(mine) // 3 :],
    )
    theirs = [b for b in batches if b.user == colleague]
    first_keys = secret_signer(SECRET)
    secret_file, revoked_file = tmp_path / "signing.secret", tmp_path / "revoked"
    secret_file.write_text(SECRET.hex() + "\n")
    revoked_file.write_text("# PSEUDONYM MIN_GENERATION\n")
    for name, value in {
        "CADENCE_BATCH_AUTH_SECRET_FILE": str(secret_file),
        "CADENCE_BATCH_AUTH_REVOKED_FILE": str(revoked_file),
    }.items():
        monkeypatch.setenv(name, value)

    def events(group: list[EventBatch]) -> int:
        return sum(len(b.events) for b in group)

    verdicts = TopicReader(deployment.bootstrap, deployment.verdicts)
    dead = TopicReader(deployment.bootstrap, deployment.topics.deadletter)

    def judged() -> int:
        verdicts.poll(1.0)
        return sum(v.events for v in read_verdicts(verdicts))

    with running_worker(deployment, CADENCE_BATCH_AUTH="require") as worker:
        deployment.send(before + theirs[: len(theirs) // 2], first_keys)
        target = events(before) + events(theirs[: len(theirs) // 2])
        wait_until(lambda: judged() >= target, timeout=120, what="the first batches judged")

        new_key = tmp_path / "victim.key"
        assert cadence(["keys", "revoke", "--pseudonym", victim, "--out", str(new_key)]) == 0
        assert revoked_file.read_text().endswith(f"{victim} 1\n")
        wait_until(
            lambda: worker.metrics()["cadence_batch_auth_revoked_users"] == 1,
            timeout=90,
            what="the worker reading the revocation file again",
        )
        desk = user_signer({USER_KEY_FILE_ENV: str(new_key)})
        assert desk is not None
        deployment.send(stolen + theirs[len(theirs) // 2 :], first_keys)
        deployment.send(renewed, desk)
        wait_until(
            lambda: judged() >= events(before) + events(renewed) + events(theirs),
            timeout=120,
            what="the batches of the new key and of the colleague judged",
        )
        wait_until(
            lambda: dead.poll(1.0) >= 0 and len(dead.records) >= len(stolen),
            timeout=60,
            what="the stolen key's batches dead-lettered",
        )
        metrics = worker.metrics()
    verdicts.close()
    dead.close()
    by_user = {
        user: sum(v.events for v in read_verdicts(verdicts) if v.user == user)
        for user in (victim, colleague)
    }
    assert by_user == {victim: events(before) + events(renewed), colleague: events(theirs)}
    assert len(dead.records) == len(stolen)
    assert {k for k, _, _ in dead.records} == {victim.encode()}
    assert {deadletter.reason_of(h) for _, _, h in dead.records} == {"unauthenticated"}
    details = {dict(h).get(deadletter.DETAIL, b"").decode() for _, _, h in dead.records}
    assert details == {
        "cadence-mac is its user's tag under a revoked key (this user's keys below "
        "generation 1 are revoked)"
    }
    assert metrics['cadence_batch_auth_failures_total{reason="revoked"}'] == len(stolen)
    assert metrics['cadence_batch_auth_failures_total{reason="invalid"}'] == 0
    assert metrics["cadence_batch_auth_revocation_read_errors_total"] == 0
