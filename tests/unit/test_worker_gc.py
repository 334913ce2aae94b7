"""The worker's garbage-collector setting (``cadence worker``, CADENCE_GC_GEN0_THRESHOLD)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams.commands.worker import tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_gc")
def test_threshold_sets_the_young_generation_and_freezes_what_exists() -> None:
    _, gen1, gen2 = gc.get_threshold()
    tune_gc(50_000)
    assert gc.get_threshold() == (50_000, gen1, gen2)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_zero_keeps_pythons_defaults() -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    tune_gc(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
