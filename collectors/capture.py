"""pynput listeners that reduce every input to a wire event inside the callback.

Privacy by construction: the key object pynput hands us is turned into a key class
(:mod:`collectors.keyclass`) -- and, only in the audited key-identity mode, into a
keyed hash -- before the callback returns. Nothing downstream ever holds a key, a
character or a key code, so nothing downstream can leak one.

Times are ``time.monotonic_ns()`` in milliseconds (they never jump when the wall
clock is adjusted); the agent records the wall-clock offset once per batch.
pynput >= 1.8 passes ``injected`` (synthetic input) as the last callback argument;
older versions don't, hence the defaults.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from collectors.keyclass import OTHER, classify_char, classify_named
from collectors.wire import FLAG_INJECTED, Event, KeyEvent, MouseEvent

Sink = Callable[[Event], None]


class KeyHasher:
    """HMAC-SHA256 of a key's identity (never the character itself on the wire)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, identity: str) -> str:
        return hmac.new(self._key, identity.encode(), hashlib.sha256).hexdigest()


def _key_class_and_identity(key: Any) -> tuple[int, str]:
    """(class, identity) of a pynput key; the identity is only used for hashing."""
    if key is None:
        return OTHER, "?"
    if isinstance(key, enum.Enum):  # a keyboard.Key member: a named key
        return classify_named(key.name), "Key." + key.name
    char = getattr(key, "char", None)
    if char:
        return classify_char(char), "'" + char.lower() + "'"
    vk = getattr(key, "vk", None)
    return OTHER, f"<{vk}>"


_BUTTONS = {"left": 1, "right": 2, "middle": 3}


class Capture:
    """Keyboard and mouse listeners feeding ``sink`` with reduced events."""

    def __init__(self, sink: Sink, key_hasher: KeyHasher | None = None) -> None:
        self._sink = sink
        self._hasher = key_hasher
        self._last_move_ms = -1
        self._listeners: list[Any] = []

    # -- callbacks (run on pynput's listener threads) ----------------------------

    def _key(self, kind: str, key: Any, injected: bool) -> None:
        t_ms = time.monotonic_ns() / 1e6
        key_class, identity = _key_class_and_identity(key)
        key_hash = self._hasher(identity) if self._hasher is not None else None
        del key, identity  # the key goes no further than this frame
        self._sink(KeyEvent(kind, t_ms, key_class, FLAG_INJECTED if injected else 0, key_hash))

    def on_press(self, key: Any, injected: bool = False) -> None:
        self._key("kd", key, injected)

    def on_release(self, key: Any, injected: bool = False) -> None:
        self._key("ku", key, injected)

    def on_move(self, x: float, y: float, injected: bool = False) -> None:
        t_ns = time.monotonic_ns()
        ms = t_ns // 1_000_000
        if ms == self._last_move_ms:
            return  # at most one move per millisecond: more is noise and CPU
        self._last_move_ms = ms
        flags = FLAG_INJECTED if injected else 0
        self._sink(MouseEvent("mm", t_ns / 1e6, int(x), int(y), flags=flags))

    def on_click(
        self, x: float, y: float, button: Any, pressed: bool, injected: bool = False
    ) -> None:
        t_ms = time.monotonic_ns() / 1e6
        code = _BUTTONS.get(getattr(button, "name", ""), 0)
        flags = FLAG_INJECTED if injected else 0
        self._sink(
            MouseEvent("md" if pressed else "mu", t_ms, int(x), int(y), button=code, flags=flags)
        )

    def on_scroll(self, x: float, y: float, dx: float, dy: float, injected: bool = False) -> None:
        t_ms = time.monotonic_ns() / 1e6
        flags = FLAG_INJECTED if injected else 0
        self._sink(MouseEvent("ms", t_ms, int(x), int(y), dx=int(dx), dy=int(dy), flags=flags))

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        try:
            from pynput import keyboard, mouse
        except ImportError as exc:
            raise RuntimeError(
                "pynput cannot reach an input backend here: it needs an X11 (or XWayland) "
                "session with DISPLAY set on Linux -- Wayland is not supported -- or the "
                f"accessibility permission on macOS ({exc})"
            ) from exc
        self._listeners = [
            keyboard.Listener(on_press=self.on_press, on_release=self.on_release),
            mouse.Listener(on_move=self.on_move, on_click=self.on_click, on_scroll=self.on_scroll),
        ]
        for listener in self._listeners:
            listener.start()
        for listener in self._listeners:
            listener.wait()

    def stop(self) -> None:
        for listener in self._listeners:
            listener.stop()
        for listener in self._listeners:
            listener.join(2.0)
        self._listeners = []

    @property
    def alive(self) -> bool:
        return all(listener.is_alive() for listener in self._listeners)
