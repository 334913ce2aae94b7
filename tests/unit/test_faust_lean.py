"""The lean Faust parts are used only on the Faust whose private code they mirror."""

from __future__ import annotations

import faust
import pytest

from streams import faust_lean


def test_the_reviewed_faust_is_recognised() -> None:
    if faust.__version__ != "0.15.3":
        pytest.skip(
            f"faust-streaming {faust.__version__}: streams.faust_lean was derived from 0.15.3; "
            "review it against this release, then update DERIVED_FROM"
        )
    assert faust_lean.faust_drift() == []
    assert faust_lean.matches_faust()


def test_a_changed_faust_source_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = faust_lean._upstream_sources()
    changed = dict(sources, **{"Conductor.build": sources["Conductor.build"] + "\n# upstream edit"})
    monkeypatch.setattr(faust_lean, "_upstream_sources", lambda: changed)
    assert faust_lean.faust_drift() == ["Conductor.build"]
    assert not faust_lean.matches_faust()


def test_unreadable_faust_sources_count_as_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> dict[str, str]:
        raise OSError("could not get source code")

    monkeypatch.setattr(faust_lean, "_upstream_sources", unreadable)
    assert faust_lean.faust_drift() == list(faust_lean.DERIVED_FROM)


@pytest.mark.parametrize("lean", [True, False])
def test_the_app_falls_back_to_fausts_own_parts(
    monkeypatch: pytest.MonkeyPatch, lean: bool
) -> None:
    from streams import app as worker_app

    monkeypatch.setattr(worker_app, "_LEAN", lean)
    worker = worker_app.create_app(worker_app.WorkerSettings(app_id=f"lean-test-{lean}"))
    assert isinstance(worker.app.transport, faust_lean.Transport) is lean
    assert isinstance(worker.app.monitor, faust_lean.Monitor) is lean
