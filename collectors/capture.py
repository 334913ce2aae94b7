"""pynput listeners that reduce every input to a wire event inside the callback.

Privacy by construction: the key object pynput hands us is turned into a key class
(:mod:`collectors.keyclass`) -- and, only in the audited key-identity mode, into a
keyed hash -- before the callback returns. Nothing downstream ever holds a key, a
character or a key code, so nothing downstream can leak one.

Times are ``time.monotonic_ns()`` in milliseconds (they never jump when the wall
clock is adjusted); the agent records the wall-clock offset once per batch.
pynput >= 1.8 passes ``injected`` (synthetic input) as the last callback argument;
older versions don't, hence the defaults.

Under X11 input is not read through pynput's listeners but through
:class:`XRecordInput`: pynput parses every event with python-xlib's generic
(pure-Python) protocol machinery, which at a few hundred pointer moves per second
was most of the agent's CPU (see docs/collectors.md, footprint). The events are cut
from the RECORD stream with ``struct``, and a key code still becomes a key through
pynput's own translation, on the reader thread, so :meth:`Capture._key` reduces the
same key objects as before, inside the same callback.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from collectors.keyclass import OTHER, classify_char, classify_named
from collectors.wire import FLAG_INJECTED, Event, KeyEvent, MouseEvent

Sink = Callable[[Event], None]

log = logging.getLogger(__name__)


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
_MOVE = "mm"


class Capture:
    """Keyboard and mouse listeners feeding ``sink`` with reduced events."""

    def __init__(
        self, sink: Sink, key_hasher: KeyHasher | None = None, *, lean_x11: bool = True
    ) -> None:
        self._sink = sink
        self._hasher = key_hasher
        self._lean_x11 = lean_x11
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
        # Positional: the hottest path in the agent, and keyword NamedTuple calls cost more.
        self._sink(MouseEvent(_MOVE, t_ns / 1e6, int(x), int(y), 0, 0, 0, 1 if injected else 0))

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
        self._listeners = []
        if self._lean_x11 and mouse.Listener.__module__.endswith("._xorg"):
            try:
                self._listeners = [
                    XRecordInput(
                        self.on_move, self.on_click, self.on_scroll, self.on_press, self.on_release
                    )
                ]
            except Exception as exc:  # noqa: BLE001 - any X trouble: pynput's path still works
                log.warning("lean X11 input capture unavailable (%s); using pynput's", exc)
        if not self._listeners:
            self._listeners = [
                keyboard.Listener(on_press=self.on_press, on_release=self.on_release),
                mouse.Listener(
                    on_move=self.on_move, on_click=self.on_click, on_scroll=self.on_scroll
                ),
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


# -- X11 input through the RECORD extension, without python-xlib's event parser --------

# Core event codes (X.h); bit 7 of the code is set for SendEvent, i.e. synthetic, input.
_KEY_PRESS, _KEY_RELEASE, _BUTTON_PRESS, _BUTTON_RELEASE, _MOTION_NOTIFY = 2, 3, 4, 5, 6
_SEND_EVENT = 0x80
# Wheel "buttons" 4-7 -> (dx, dy), as pynput reports them.
_X_SCROLL = {4: (0, 1), 5: (0, -1), 6: (-1, 0), 7: (1, 0)}
_RECORD_ENABLE_CONTEXT = 5
_FROM_SERVER, _END_OF_DATA = 0, 5
_REPLY_HEADER = struct.Struct("=BBHI")  # type, category, sequence, length (4-byte units)
_ROOT_XY = struct.Struct("=hh")  # root_x, root_y at byte 20 of a core input event
_STATE = struct.Struct("=H")  # modifier state at byte 28


class _XKeyEvent:
    """The two fields pynput's key-code translation reads from an Xlib event."""

    __slots__ = ("detail", "state")

    def __init__(self, detail: int, state: int) -> None:
        self.detail = detail
        self.state = state


class XRecordInput:
    """Keys, pointer moves, clicks and wheel steps of all X clients via RECORD.

    The same source as pynput's X11 listeners (a RECORD context over the core device
    events), but the replies are read from the socket and cut with ``struct`` instead
    of python-xlib's per-field protocol objects, on one thread instead of two.
    python-xlib still opens the connections (display name, authentication) and
    creates the context; only the enable request, whose replies stream until the
    context is disabled, is ours. Key codes become pynput keys through pynput's own
    translation (an unstarted keyboard listener's), so key classes and key-identity
    hashes are exactly those of the pynput path. Same interface as a pynput listener
    as far as :class:`Capture` needs.
    """

    def __init__(
        self,
        on_move: Callable[[float, float, bool], None],
        on_click: Callable[[float, float, Any, bool, bool], None],
        on_scroll: Callable[[float, float, float, float, bool], None],
        on_press: Callable[[Any, bool], None],
        on_release: Callable[[Any, bool], None],
    ) -> None:
        from pynput import keyboard
        from Xlib import X
        from Xlib.display import Display
        from Xlib.ext import record

        self._on_move = on_move
        self._on_click = on_click
        self._on_scroll = on_scroll
        self._on_press = on_press
        self._on_release = on_release
        # Private pynput API: if it is gone, the AttributeError sends Capture back to
        # pynput's listeners rather than to a translation of our own.
        self._to_key: Callable[[Any, Any], Any] = keyboard.Listener()._event_to_key
        self._control = Display()  # key translation; disables the context at stop
        self._record = Display()
        try:
            if not self._record.has_extension(record.extname):
                raise RuntimeError("the X server has no RECORD extension")
            self._context = self._record.record_create_context(
                0,  # no per-element headers: the data is plain 32-byte events
                [record.AllClients],
                [
                    {
                        "core_requests": (0, 0),
                        "core_replies": (0, 0),
                        "ext_requests": (0, 0, 0, 0),
                        "ext_replies": (0, 0, 0, 0),
                        "delivered_events": (0, 0),
                        "device_events": (X.KeyPress, X.MotionNotify),
                        "errors": (0, 0),
                        "client_started": False,
                        "client_died": False,
                    }
                ],
            )
            self._record.sync()  # the context exists, python-xlib's queues are empty
            self._opcode = self._record.display.get_extension_major(record.extname)
        except BaseException:
            self._close_displays()
            raise
        self._sock: socket.socket = self._record.display.socket
        self._thread = threading.Thread(target=self._run, name="cadence-x11-input", daemon=True)

    def _close_displays(self) -> None:
        for display in (self._record, self._control):
            with contextlib.suppress(Exception):
                display.close()

    # -- pynput listener interface ----------------------------------------------

    def start(self) -> None:
        # python-xlib never sees the reply stream, so its sequence counter is stale
        # from here on; the connection is only closed afterwards, never used again.
        self._sock.sendall(
            struct.pack("=BBHI", self._opcode, _RECORD_ENABLE_CONTEXT, 2, self._context)
        )
        self._thread.start()

    def wait(self) -> None:
        """Ready once started: the enable request is on the wire before the thread runs."""

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._control.record_disable_context(self._context)
            self._control.flush()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # no end-of-data from the server: cut the socket
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                self._thread.join(timeout)
        self._close_displays()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # -- reader thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._read()
        except OSError as exc:
            log.error("X11 input capture stopped: %s", exc)
        except Exception:
            log.exception("X11 input capture failed")

    def _read(self) -> None:
        recv, sock = self._sock.recv, self._sock
        sock.setblocking(True)
        buf = b""
        while True:
            chunk = recv(65536)
            if not chunk:
                return  # the X server went away
            buf = buf + chunk if buf else chunk
            pos, size = 0, len(buf)
            while size - pos >= 32:
                if buf[pos] != 1:  # an error or an event on this connection: 32 bytes, skip
                    if buf[pos] == 0:
                        log.warning("X error %d on the RECORD connection", buf[pos + 1])
                    pos += 32
                    continue
                _, category, _, length = _REPLY_HEADER.unpack_from(buf, pos)
                end = pos + 32 + 4 * length
                if end > size:
                    break  # the rest of this reply is still on its way
                if category == _FROM_SERVER:
                    self._events(buf, pos + 32, end)
                elif category == _END_OF_DATA:
                    return  # the context was disabled: stop() was called
                pos = end
            buf = buf[pos:]

    def _events(self, buf: bytes, start: int, end: int) -> None:
        for off in range(start, end - 31, 32):
            code = buf[off]
            injected = bool(code & _SEND_EVENT)
            code &= 0x7F
            x, y = _ROOT_XY.unpack_from(buf, off + 20)
            if code == _MOTION_NOTIFY:
                self._on_move(x, y, injected)
                continue
            detail = buf[off + 1]
            if code <= _KEY_RELEASE:
                self._key(code, detail, _STATE.unpack_from(buf, off + 28)[0], injected)
                continue
            scroll = _X_SCROLL.get(detail)
            if code == _BUTTON_PRESS:
                if scroll is not None:
                    self._on_scroll(x, y, scroll[0], scroll[1], injected)
                else:
                    self._on_click(x, y, _XButton(detail), True, injected)
            elif code == _BUTTON_RELEASE and scroll is None:
                self._on_click(x, y, _XButton(detail), False, injected)

    def _key(self, code: int, detail: int, state: int, injected: bool) -> None:
        try:
            key = self._to_key(self._control, _XKeyEvent(detail, state))
        except IndexError:  # an invalid key code, as pynput's listener handles it
            key = None
        (self._on_press if code == _KEY_PRESS else self._on_release)(key, injected)
        del key  # only Capture's callback reduces it; keep no reference here


class _XButton:
    """Quacks like pynput's ``Button`` for :meth:`Capture.on_click` (which reads ``name``)."""

    __slots__ = ("name",)
    _NAMES = {1: "left", 2: "middle", 3: "right"}

    def __init__(self, detail: int) -> None:
        self.name = self._NAMES.get(detail, "unknown")
