"""A damaged background file is refused when it is read, and stops a worker at start."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from profiles.background import Background
from profiles.population import Population
from streams import judge
from streams.app import create_app
from streams.settings import WorkerSettings


@pytest.fixture
def fresh_background() -> Iterator[None]:
    judge.background.cache_clear()
    yield
    judge.background.cache_clear()


def shipped() -> bytes:
    return Background.default().to_bytes()


def with_keystroke_count(data: bytes, value: float) -> bytes:
    """The shipped file with its first keystroke count set to ``value``."""
    head = struct.calcsize("<4sII")
    at = head + struct.calcsize("<4sBBf")  # the keystroke population's own header
    return data[:at] + np.float32(value).tobytes() + data[at + 4 :]


def test_the_shipped_background_reads_back() -> None:
    data = shipped()
    assert Background.from_bytes(data).to_bytes() == data


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: with_keystroke_count(d, float("inf")),
        lambda d: with_keystroke_count(d, -1.0),
        lambda d: d[:-1],
        lambda d: d + b"\0",
    ],
    ids=["count-inf", "count-negative", "truncated", "padded"],
)
def test_a_damaged_background_is_refused(damage: object) -> None:
    # Accepted, an inf count gave every user -inf scores and reset profiles again and again.
    with pytest.raises(ValueError):
        Background.from_bytes(damage(shipped()))  # type: ignore[operator]


def test_a_worker_with_a_damaged_background_file_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_background: None
) -> None:
    path = tmp_path / "background.bin"
    path.write_bytes(with_keystroke_count(shipped(), float("nan")))
    monkeypatch.setenv("CADENCE_BACKGROUND", str(path))
    with pytest.raises(ValueError, match="keystroke population"):
        create_app(WorkerSettings(app_id="cadence-test-background", store="memory://"))


@pytest.mark.parametrize("edit", ["edge-nan", "edges-descending", "count-inf"])
def test_a_damaged_mouse_population_is_refused(edit: str) -> None:
    bg = Background.default()
    edges, counts = bg.mouse.edges.copy(), bg.mouse.counts.copy()
    if edit == "edge-nan":
        edges[0, 0] = np.nan
    elif edit == "edges-descending":
        edges[1] = edges[1][::-1]
    else:
        counts[2, 3] = np.inf
    bg.mouse.edges, bg.mouse.counts = edges, counts
    with pytest.raises(ValueError, match="population"):
        Background.from_bytes(bg.to_bytes())


def test_a_background_without_counts_per_action_type_is_refused_with_the_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_background: None
) -> None:
    # What `cadence profiles fit-background` wrote before cadence-profile-4: the
    # profile's mouse model compares each action with its own type's histograms.
    bg = Background.default()
    pooled = Population(bg.mouse.edges)
    pooled.counts, pooled.gaussian = bg.mouse.counts, bg.mouse.gaussian
    old = Background(bg.keystrokes, pooled).to_bytes()
    with pytest.raises(ValueError, match="fit-background"):
        Background.from_bytes(old)
    path = tmp_path / "background.bin"
    path.write_bytes(old)
    monkeypatch.setenv("CADENCE_BACKGROUND", str(path))
    with pytest.raises(ValueError, match="per-action-type"):
        create_app(WorkerSettings(app_id="cadence-test-background", store="memory://"))
