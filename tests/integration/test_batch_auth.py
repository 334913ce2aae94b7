"""A worker that requires signed batches, on a real broker: a desk writes its own user's
batches only. One user's batches carry their own tag, another's the first user's tag (a
desk's key used for someone else), a third's none: only the first user is judged; every
other batch is a dead letter (``unauthenticated``), counted by why. Mid-rotation, a fourth
user's desk still signs with its key under the retiring secret: judged, and counted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from collectors.batch_auth import secret_signer, sign, user_key
from collectors.delivery import BatchSender
from collectors.simulate import Workload
from streams import deadletter
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
