"""Events a profile carries from one window to the next, and their bytes.

Windows cut a person's activity every few seconds, but timing features span the
cut: the flight from the last press of one window to the first of the next, a
pointer action that starts before the cut and ends after it. A profile therefore
carries over

- its last :data:`SUMMARY_PRESSES` presses (times relative to the newest), which
  link the next window's first flight and describe recent typing;
- the pointer events after its last finished action (at most
  :data:`MAX_MOUSE_TAIL`), which the next window finishes.

Both are part of the stored state, so their encodings live here too.

>>> import numpy as np
>>> t = np.array([0.0, 10.0, 20.0, 5000.0])
>>> ev = MouseEvents(t, np.zeros(4, np.int32), np.zeros(4, np.int32),
...     np.zeros(4, np.int8), np.array([0, 0, 2, 0], np.int8))
>>> finished_prefix(ev)  # a release ends the third event's action; the fourth is carried
3
>>> len(unpack_mouse(pack_mouse(ev[3:])))
1
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from profiles.keystrokes import KeystrokePresses, KeystrokeWindow
from profiles.keystrokes.binning import window_cells_many
from profiles.keystrokes.windows import windows_from_presses
from profiles.mouse import PAUSE_MS, MouseEvents, State

#: Presses kept to link the next window's first flight and to describe recent typing.
SUMMARY_PRESSES: Final = 32
#: Pointer events of an unfinished action carried to the next window, at most. A
#: longer unfinished action (moving without a click or a 10 s pause) is scored as it
#: stands. This is what bounds the state: a carried event is 18 bytes (float64 time,
#: int32 coordinates when they do not fit int16, button, state); 512 of them were up
#: to 9.2 KB and broke the 16 KB bound of issue #3. 252, not 256 as up to the
#: enrolment anchor: its 82 bytes did not fit (``max_state_bytes``).
MAX_MOUSE_TAIL: Final = 252

_RELEASED: Final = int(State.RELEASED)
_TAIL_HEAD: Final = struct.Struct("<IB")  # events, bytes per coordinate (2 or 4)


@dataclass(frozen=True, slots=True)
class TypingWindow:
    presses: KeystrokePresses  # the remembered presses, then the window's own
    fresh: int  # the window's own presses
    new_session: bool


@dataclass(frozen=True, slots=True)
class PointerWindow:
    events: MouseEvents  # finished actions only
    new_session: bool


# -- typing ---------------------------------------------------------------------------


def no_presses() -> KeystrokePresses:
    return KeystrokePresses(np.zeros(0), np.zeros(0), np.zeros(0, np.int8))


def concat_presses(a: KeystrokePresses, a_end_ms: float, b: KeystrokePresses) -> KeystrokePresses:
    """Remembered presses (relative to ``a_end_ms``) followed by new ones (absolute)."""
    if len(a) == 0:
        return b
    return KeystrokePresses(
        np.concatenate((a.t_down_ms + a_end_ms, b.t_down_ms)),
        np.concatenate((a.dwell_ms, b.dwell_ms)),
        np.concatenate((a.key_class, b.key_class)).astype(np.int8, copy=False),
    )


def rebase(p: KeystrokePresses) -> KeystrokePresses:
    """Times relative to the newest press (what is remembered)."""
    if len(p) == 0:
        return p
    return KeystrokePresses(p.t_down_ms - p.t_down_ms[-1], p.dwell_ms, p.key_class)


def typed_windows(typing: Sequence[TypingWindow]) -> list[tuple[KeystrokeWindow, np.ndarray]]:
    """Each window over its presses, and the cells of its own presses: the tail of the
    window, including the flight from the last remembered press (flights are per pair)."""
    windows = windows_from_presses([t.presses for t in typing])
    tails = [window_tail(w, t.fresh) for w, t in zip(windows, typing, strict=True)]
    return list(zip(windows, window_cells_many(tails), strict=True))


def window_tail(window: KeystrokeWindow, fresh: int) -> KeystrokeWindow:
    """What is new in ``window``: its last ``fresh`` presses, and the flight from the
    remembered press before them, whose own dwell was scored and learned with the window
    it came in (a tail with it counted that dwell twice)."""
    start = window.n_presses - fresh - 1
    if start < 0:
        return window  # nothing remembered before the window's presses
    presses = window.presses[start:]
    dwell = presses.dwell_ms.copy()
    dwell[0] = np.nan
    return KeystrokeWindow(
        KeystrokePresses(presses.t_down_ms, dwell, presses.key_class),
        window.dd_ms[start:],
        window.ud_ms[start:],
        window.pair_code[start:],
        int(np.count_nonzero(np.isnan(window.dd_ms[start:]))),
        window.n_classes,
    )


def pack_presses(p: KeystrokePresses) -> bytes:
    # float64, as held: float32 times relative to the newest press moved flights by
    # ~0.1 ms after a long pause, and the summaries built on them with it.
    return (
        p.t_down_ms.astype(np.float64).tobytes()
        + p.dwell_ms.astype(np.float64).tobytes()
        + p.key_class.astype(np.int8).tobytes()
    )


def unpack_presses(data: bytes, n_classes: int, single: bool = False) -> KeystrokePresses:
    """Presses as packed by :func:`pack_presses`, or in float32 (``single``: CUP2)."""
    width = 4 if single else 8
    dtype = np.float32 if single else np.float64
    n, rest = divmod(len(data), 2 * width + 1)
    t = np.frombuffer(data, dtype, n, 0).astype(np.float64)
    d = np.frombuffer(data, dtype, n, width * n).astype(np.float64)
    c = np.frombuffer(data, np.int8, n, 2 * width * n).copy()
    if rest or (n and not 0 <= int(c.min()) <= int(c.max()) < n_classes):
        raise ValueError("remembered presses out of range")
    return KeystrokePresses(t, d, c)


def max_presses_bytes() -> int:
    """Largest :func:`pack_presses` of the remembered presses."""
    return SUMMARY_PRESSES * (8 + 8 + 1)  # float64 time and dwell, int8 class


# -- pointing -------------------------------------------------------------------------


def no_mouse() -> MouseEvents:
    return MouseEvents(
        np.zeros(0),
        np.zeros(0, np.int32),
        np.zeros(0, np.int32),
        np.zeros(0, np.int8),
        np.zeros(0, np.int8),
    )


def concat_mouse(a: MouseEvents, b: MouseEvents) -> MouseEvents:
    if len(a) == 0:
        return b
    return MouseEvents(
        np.concatenate((a.t_ms, b.t_ms)),
        np.concatenate((a.x, b.x)).astype(np.int32, copy=False),
        np.concatenate((a.y, b.y)).astype(np.int32, copy=False),
        np.concatenate((a.button, b.button)).astype(np.int8, copy=False),
        np.concatenate((a.state, b.state)).astype(np.int8, copy=False),
    )


def finished_prefix(ev: MouseEvents) -> int:
    """Length of the prefix made of finished actions (ends at a release or a long pause)."""
    ends = (ev.state == _RELEASED).nonzero()[0] + 1
    gaps = ((ev.t_ms[1:] - ev.t_ms[:-1]) > PAUSE_MS).nonzero()[0] + 1
    last = max(int(ends[-1]) if ends.size else 0, int(gaps[-1]) if gaps.size else 0)
    return last


def pack_mouse(ev: MouseEvents) -> bytes:
    # Times in float64, as held: features with discrete values (time steps floored at
    # 1 ms, counts of points) sit exactly on population bin edges, and times rounded
    # to float32 moved them across. Coordinates fit int16 on any real display.
    narrow = len(ev) == 0 or (
        max(int(ev.x.max()), int(ev.y.max())) <= 0x7FFF
        and min(int(ev.x.min()), int(ev.y.min())) >= -0x8000
    )
    xy = np.int16 if narrow else np.int32
    return (
        _TAIL_HEAD.pack(len(ev), 2 if narrow else 4)
        + ev.t_ms.astype(np.float64).tobytes()
        + ev.x.astype(xy).tobytes()
        + ev.y.astype(xy).tobytes()
        + ev.button.astype(np.int8).tobytes()
        + ev.state.astype(np.int8).tobytes()
    )


def unpack_mouse(data: bytes, v2: bool = False) -> MouseEvents:
    """Events as packed by :func:`pack_mouse`, or as ``CUP2`` stored them (``v2``)."""
    if v2:  # CUP2: times in float32 relative to the newest, int32 coordinates
        end, n = struct.unpack_from("<dI", data)
        t = np.frombuffer(data, np.float32, n, 12).astype(np.float64) + end
        o, width = 12 + 4 * n, 4
    else:
        n, width = _TAIL_HEAD.unpack_from(data)
        if width not in (2, 4):
            raise ValueError("carried pointer events of another layout")
        t = np.frombuffer(data, np.float64, n, _TAIL_HEAD.size).copy()
        o = _TAIL_HEAD.size + 8 * n
    xy = np.dtype(np.int16) if width == 2 else np.dtype(np.int32)
    x = np.frombuffer(data, xy, n, o).astype(np.int32)
    y = np.frombuffer(data, xy, n, o + width * n).astype(np.int32)
    o += 2 * width * n
    b = np.frombuffer(data, np.int8, n, o).copy()
    st = np.frombuffer(data, np.int8, n, o + n).copy()
    return MouseEvents(t, x, y, b, st)


def max_mouse_bytes() -> int:
    """Largest :func:`pack_mouse` of a carried tail (int32 coordinates)."""
    return _TAIL_HEAD.size + MAX_MOUSE_TAIL * (8 + 4 + 4 + 1 + 1)
