"""An input event the capture path cannot handle never stops capture or leaks the key.

pynput stops a listener whose callback raises, i.e. all capture of that device; on
Windows it hands characters outside the BMP (emoji) over as lone UTF-16 surrogates.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from collectors.capture import Capture, KeyHasher
from collectors.keyclass import OTHER
from collectors.metrics import CollectorMetrics
from collectors.wire import Event, EventBatch, KeyEvent, decode_batch, encode_batch

LONE_SURROGATE = "\ud83d"  # the first half of an emoji, as pynput on Windows reports it


class _Char:
    def __init__(self, char: str) -> None:
        self.char = char


class _Unreadable:
    """A key object whose character cannot be read: its error text names the key."""

    @property
    def char(self) -> str:
        raise ValueError("typed-secret-x")


def test_a_lone_surrogate_is_hashed_in_key_identity_mode() -> None:
    events: list[Event] = []
    capture = Capture(events.append, KeyHasher(b"k" * 32))
    capture.on_press(_Char(LONE_SURROGATE))
    capture.on_release(_Char(LONE_SURROGATE))
    assert [e.kind for e in events] == ["kd", "ku"]
    first = events[0]
    assert isinstance(first, KeyEvent) and first.key_hash is not None
    assert first.key_hash == KeyHasher(b"k" * 32)("'" + LONE_SURROGATE + "'")
    assert capture.errors == 0


def test_a_key_that_cannot_be_reduced_is_kept_unclassified_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[Event] = []
    metrics = CollectorMetrics()
    capture = Capture(events.append, KeyHasher(b"k" * 32), metrics=metrics)
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            capture.on_press(_Unreadable())
    assert len(events) == 5  # the timing still counts
    assert all(isinstance(e, KeyEvent) and e.key_class == OTHER for e in events)
    assert metrics.registry.get_sample_value("cadence_collector_capture_errors_total") == 5
    text = caplog.text
    assert "typed-secret-x" not in text
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None  # once a minute, no traceback


def test_an_unreducible_key_in_key_identity_mode_still_crosses_the_wire() -> None:
    # A key_identity batch needs a hash on every key event: the fallback had none, so the
    # decoder rejected the whole batch (every event in it dead-lettered).
    events: list[Event] = []
    hasher = KeyHasher(b"k" * 32)
    capture = Capture(events.append, hasher)
    capture.on_press(_Char("a"))
    capture.on_release(_Char("a"))
    capture.on_press(_Unreadable())
    capture.on_release(None)  # the other key nothing is known of: the same hash
    unreadable, unknown = events[2], events[3]
    assert isinstance(unreadable, KeyEvent) and unreadable.key_class == OTHER
    assert unreadable.key_hash == hasher("?") == getattr(unknown, "key_hash", None)
    t0 = events[0].t_ms
    batch = EventBatch(
        device="dev-1",
        user="u" * 64,
        session="s",
        seq=1,
        sent_at_ms=1.7634e12,
        clock_offset_ms=1.7634e12 - t0 - 1000.0,
        events=tuple(events),
        key_identity=True,
    )
    assert decode_batch(encode_batch(batch)) == batch


@pytest.mark.parametrize(
    ("callback", "args"),
    [
        ("on_press", (_Char("a"),)),
        ("on_release", (_Char("a"),)),
        ("on_move", (10, 20)),
        ("on_click", (10, 20, None, True)),
        ("on_scroll", (10, 20, 0, 1)),
    ],
)
def test_a_failing_sink_does_not_escape_a_listener_callback(
    callback: str, args: tuple[Any, ...], caplog: pytest.LogCaptureFixture
) -> None:
    def sink(event: Event) -> None:
        raise RuntimeError("typed-secret-y")

    metrics = CollectorMetrics()
    capture = Capture(sink, metrics=metrics)
    with caplog.at_level(logging.DEBUG):
        getattr(capture, callback)(*args)  # must not raise: pynput would stop listening
    assert capture.errors == 1
    assert metrics.registry.get_sample_value("cadence_collector_capture_errors_total") == 1
    assert "typed-secret-y" not in caplog.text
