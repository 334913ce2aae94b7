"""A batch on another partition than its user's is a dead letter, not a second profile.

The worker keeps a user's profile in the table partition of their events; an erasure is
sent to that partition. A batch written with another partitioner (or on purpose to
another partition) would start a second profile there, judged apart from the first and
never erased. ``Worker.handle`` runs with a stand-in for the worker's other parts.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from collectors.wire import encode_batch
from streams.app import Worker
from streams.privacy import user_partition
from tests.integration.collector_send_script import make_batch

PARTITIONS = 12


def _handled(partition_offset: int) -> tuple[list[Any], list[Any]]:
    batch = make_batch("dev-1", 0)
    home = user_partition(batch.user, PARTITIONS)
    message = SimpleNamespace(
        key=batch.user.encode(),
        value=encode_batch(batch),
        headers=[],
        partition=(home + partition_offset) % PARTITIONS,
        timestamp=batch.sent_at_ms / 1000.0,
    )
    letters: list[Any] = []
    accepted: list[Any] = []

    async def dead_letter(event: Any, reason: str, field: str, detail: str) -> None:
        letters.append((reason, field, detail))

    async def accept(b: Any, event: Any) -> None:
        accepted.append(b)

    worker = SimpleNamespace(
        settings=SimpleNamespace(table_partitions=PARTITIONS),
        tags=SimpleNamespace(checked=False),
        metrics=SimpleNamespace(pending_batches=0),
        dead_letter=dead_letter,
        accept=accept,
    )
    asyncio.run(Worker.handle(worker, SimpleNamespace(message=message)))  # type: ignore[arg-type]
    return letters, accepted


def test_a_batch_on_its_users_partition_is_accepted() -> None:
    letters, accepted = _handled(0)
    assert letters == [] and len(accepted) == 1


def test_a_batch_on_another_partition_is_a_dead_letter() -> None:
    letters, accepted = _handled(5)
    assert accepted == []
    ((reason, field, detail),) = letters
    assert (reason, field) == ("wrong_partition", "partition")
    assert "not written with the collectors' partitioner" in detail
