"""No real person's typing is taken for a machine's: every window of the free-text
recordings passes :func:`profiles.keystrokes.liveness.mechanical_typing`."""

from __future__ import annotations

import numpy as np
import pytest

from profiles.keystrokes import KeystrokeEvents
from profiles.keystrokes.liveness import MIN_PRESSES, mechanical_typing
from tests.dataset.recordings import require_freetext

pytestmark = pytest.mark.dataset

FREETEXT = require_freetext()


def five_second_windows(events: KeystrokeEvents) -> list[KeystrokeEvents]:
    """The worker's windows: 5 s of event time, each opened by its first event."""
    t, windows, start = events.t_ms, [], 0
    while start < t.size:
        end = int(np.searchsorted(t, t[start] + 5000.0))
        windows.append(
            KeystrokeEvents(t[start:end], events.is_down[start:end], events.key_class[start:end])
        )
        start = end
    return windows


def test_no_window_of_real_typing_is_judged_mechanical() -> None:
    from collectors.datasets.freetext import iter_sessions
    from streams.recordings import freetext_to_keystroke_events

    judged, flagged = 0, []
    for user, session, recording in iter_sessions(FREETEXT):
        for window in five_second_windows(freetext_to_keystroke_events(recording)):
            judged += int(window.is_down.sum()) >= MIN_PRESSES
            if (reason := mechanical_typing(window)) is not None:
                flagged.append((user, session, float(window.t_ms[0]), reason))
    assert judged > 3000, "the recordings should hold thousands of windows to judge"
    assert flagged == []
