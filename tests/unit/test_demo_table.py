"""The demo's table fits the terminal it is shown in: nothing cut in an 80-column one."""

from __future__ import annotations

import argparse
import io

import pytest
from rich.console import Console

from collectors.simulate import Takeover
from streams.commands.demo import AccountRow, DemoState, _render


def widest_state() -> DemoState:
    """Rows as wide as a 600 s demo makes them (six-digit event counts, longest words)."""
    state = DemoState(published_batches=9817, published_events=233_664, sim_seconds=600.0)
    for i, (level, enrollment) in enumerate(
        [("suspicious", "enrolling"), ("impostor", "active"), ("uncertain", "active")]
    ):
        state.rows[f"user{i}"] = AccountRow(
            label=f"{i + 10:>2} 5bf5ad3e20",
            events=216_434,
            verdicts=107,
            enrollment=enrollment,
            level=level,
            trust=100.0,
            keyboard=1.0,
            mouse=0.53,
            reasons=("dwell of letters much longer than usual",) * 3,
            truth="IMPOSTOR",
        )
    return state


def rendered(width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    args = argparse.Namespace(rate=2.0)
    console.print(_render(widest_state(), args, Takeover(user_index=1, at_s=150.0), width))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 84, 100])
def test_no_cell_is_cut_in_a_narrow_terminal(width: int) -> None:
    text = rendered(width)
    assert "…" not in text
    for cell in ("10 5bf5ad3e20", "suspicious", "enrolling", "IMPOSTOR", "0.53", "107"):
        assert cell in text
    # What does not fit is left out, not cut: the event counts below 84 columns.
    assert ("216434" in text) is (width >= 84)
    assert "reasons" not in text


def test_a_wide_terminal_also_shows_the_reasons() -> None:
    text = rendered(160)
    assert "reasons" in text and "dwell of letters much longer than usual" in text
    assert "10 5bf5ad3e20" in text and "216434" in text
