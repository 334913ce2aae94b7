"""A gate that opens at most once per interval: for log lines that would repeat per event.

A full disk fails every batch, a refused clock every delivery, a broken input every
key: the first line says it all, and a line a minute says it still holds.

>>> clock = iter([0.0, 10.0, 61.0]).__next__
>>> gate = Throttle(60.0, clock=clock)
>>> [gate(), gate(), gate()]
[True, False, True]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Throttle:
    """``gate()`` is True the first time and then at most once per ``seconds``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last = -math.inf

    def __call__(self) -> bool:
        now = self._clock()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True
