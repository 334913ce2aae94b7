"""Numeric settings from the environment, checked where they are read.

A mistyped value must stop a command with one line naming the variable (the CLI
prints it and exits 2), not with a traceback, and a value out of range (a negative
partition count, a NaN window) must not be passed on to Kafka or the worker.

>>> env_number("CADENCE_X", 6, minimum=1, env={"CADENCE_X": "12"})
12
>>> env_number("CADENCE_X", 6, minimum=1, env={})
6
>>> env_number("CADENCE_X", 6, minimum=1, env={"CADENCE_X": "0"})
Traceback (most recent call last):
...
streams.env.SettingError: CADENCE_X='0': must be a positive integer
>>> env_number("CADENCE_Y", 5.0, minimum=0.0, exclusive=True, env={"CADENCE_Y": "nan"})
Traceback (most recent call last):
...
streams.env.SettingError: CADENCE_Y='nan': must be a positive number
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import TypeVar

N = TypeVar("N", int, float)


class SettingError(ValueError):
    """A setting cadence reads from the environment holds a value it cannot use.

    Its own class, so that the CLI can tell a setting the operator must fix (one line,
    exit 2) from a ValueError raised by a bug (which keeps its traceback).
    """


def env_number(
    name: str,
    default: N,
    *,
    minimum: N,
    maximum: N | None = None,
    exclusive: bool = False,
    env: Mapping[str, str] | None = None,
) -> N:
    """``name``'s value as the type of ``default`` (``default`` when unset), in range.

    The range is ``minimum`` (excluded if ``exclusive``) to ``maximum`` (included);
    floats must also be finite. Raises :class:`SettingError` naming the variable.
    """
    raw = (os.environ if env is None else env).get(name)
    if raw is None:
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not _in_range(value, minimum, maximum, exclusive):
        raise SettingError(f"{name}={raw!r}: must be {_rule(kind, minimum, maximum, exclusive)}")
    return value


def _in_range(value: float, minimum: float, maximum: float | None, exclusive: bool) -> bool:
    # NaN fails every comparison, so the finite check must come first.
    if not math.isfinite(value):
        return False
    above = value > minimum if exclusive else value >= minimum
    return above and (maximum is None or value <= maximum)


def _rule(kind: type, minimum: float, maximum: float | None, exclusive: bool) -> str:
    noun = "an integer" if kind is int else "a number"
    if maximum is not None:
        return f"{noun} from {minimum:g} to {maximum:g}"
    if (kind is int and minimum == 1 and not exclusive) or (minimum == 0 and exclusive):
        return f"a positive {noun.split()[1]}"
    return f"{noun} {'>' if exclusive else '>='} {minimum:g}"
