"""Input capture that reduces every input to a wire event before it goes anywhere.

Privacy by construction: the key object is turned into a key class
(:mod:`collectors.keyclass`) -- and, only in the audited key-identity mode, into a
keyed hash -- by :meth:`Capture.key_event`, called where the key is obtained (a
pynput callback, or the X11 parse below). Nothing downstream ever holds a key, a
character or a key code, so nothing downstream can leak one.

Times are milliseconds of this process's monotonic clock (``time.monotonic_ns``;
they never jump when the wall clock is adjusted); the agent records the wall-clock
offset once per batch. Where the time comes from differs by path:

* under X11 (:class:`XRecordInput`) it is the X server's own timestamp of the event
  (1 ms resolution), mapped onto the monotonic clock by :class:`ServerClock`; the
  input is read in bursts every few tens of milliseconds, so the moment we read an
  event says nothing precise about when it happened;
* elsewhere (pynput's listeners) it is the monotonic clock read in the callback.

pynput >= 1.8 passes ``injected`` (synthetic input) as the last callback argument;
older versions don't, hence the defaults.

Under X11 input is not read through pynput's listeners: pynput parses every event
with python-xlib's generic (pure-Python) protocol machinery and wakes a thread per
event, which at a few hundred pointer moves per second was most of the agent's CPU
(see docs/collectors.md, footprint). The RECORD stream is read in bursts and cut
with ``struct``; a key code still becomes a key through pynput's own translation, so
:meth:`Capture.key_event` reduces the same key objects as on the pynput path.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import logging
import math
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from collectors.batcher import MAX_AGE_MS
from collectors.keyclass import OTHER, classify_char, classify_named
from collectors.metrics import CollectorMetrics
from collectors.throttle import Throttle
from collectors.wire import FLAG_INJECTED, Event, KeyEvent, MouseEvent

Sink = Callable[[Event], None]
SinkMany = Callable[[list[Event]], None]
# (kind "kd"/"ku", pynput key, t_ms, flags) -> the reduced event; the key stops there.
KeyReducer = Callable[[str, Any, float, int], KeyEvent]

log = logging.getLogger(__name__)


class KeyHasher:
    """HMAC-SHA256 of a key's identity (never the character itself on the wire)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, identity: str) -> str:
        # surrogatepass: Windows hands characters outside the BMP (emoji) to pynput as
        # lone UTF-16 surrogates, which strict UTF-8 refuses.
        return hmac.new(
            self._key, identity.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).hexdigest()


# The identity hashed for a key nothing is known of (None, or one that cannot be read).
_UNKNOWN_KEY = "?"


def _key_class_and_identity(key: Any) -> tuple[int, str]:
    """(class, identity) of a pynput key; the identity is only used for hashing."""
    if key is None:
        return OTHER, _UNKNOWN_KEY
    if isinstance(key, enum.Enum):  # a keyboard.Key member: a named key
        return classify_named(key.name), "Key." + key.name
    char = getattr(key, "char", None)
    if char:
        return classify_char(char), "'" + char.lower() + "'"
    vk = getattr(key, "vk", None)
    return OTHER, f"<{vk}>"


_BUTTONS = {"left": 1, "right": 2, "middle": 3}
_MOVE = "mm"

# How long the reader gathers input before reading it in one burst: a continuous
# stream wakes it ~1/BURST_S times a second instead of once per event. The events
# carry the server's time, so this costs latency and no precision. The agent sets it
# to the batch age and closes a batch per burst, so the latency stays one batch age.
BURST_S = MAX_AGE_MS / 1000.0


class Capture:
    """Keyboard and mouse input feeding ``sink`` (or ``sink_many``) with reduced events.

    pynput's listeners hand over one event at a time (``sink``); the X11 reader a
    burst of ``burst_s`` seconds of input (``sink_many``). Without ``pointer`` the mouse
    is never listened to (a desk where the pointer types: on-screen keyboards, PIN pads).
    """

    def __init__(
        self,
        sink: Sink,
        key_hasher: KeyHasher | None = None,
        *,
        sink_many: SinkMany | None = None,
        burst_s: float = BURST_S,
        lean_x11: bool = True,
        metrics: CollectorMetrics | None = None,
        pointer: bool = True,
    ) -> None:
        self._sink = sink
        self._pointer = pointer
        self._sink_many: SinkMany = sink_many if sink_many is not None else self._each
        self._hasher = key_hasher
        self._burst_s = burst_s
        self._lean_x11 = lean_x11
        self._last_move_ms = -1
        self._listeners: list[Any] = []
        self._metrics = metrics
        self.errors = 0
        self._log_error = Throttle(60.0)

    def _each(self, events: list[Event]) -> None:
        for event in events:
            self._sink(event)

    def key_event(self, kind: str, key: Any, t_ms: float, flags: int) -> KeyEvent:
        """The wire event for ``key``: its class (and, audited, keyed hash), never the key.

        Never raises: a key that cannot be reduced is kept as an unclassified key, so
        its timing still counts and the listener thread lives on.
        """
        try:
            key_class, identity = _key_class_and_identity(key)
            key_hash = self._hasher(identity) if self._hasher is not None else None
            del identity
        except Exception as exc:  # noqa: BLE001 - a listener thread must not die of a key
            self.failed("key reduction", exc)
            key_class = OTHER
            # In key-identity mode every key event must carry a hash, or the wire decoder
            # rejects the whole batch: hash it as an unknown key, as ``key is None`` is.
            key_hash = self._hasher(_UNKNOWN_KEY) if self._hasher is not None else None
        del key  # the key goes no further than this frame
        return KeyEvent(kind, t_ms, key_class, flags, key_hash)

    def failed(self, where: str, exc: BaseException) -> None:
        """Count an input-path failure; log its type only, at most once a minute.

        Never the exception's text or traceback: on the key path it can hold the key.
        """
        self.errors += 1
        if self._metrics is not None:
            self._metrics.capture_errors.inc()
        if self._log_error():
            log.error(
                "input capture: %s failed (%s); the event was skipped or kept unclassified "
                "(%d failures so far, logged at most once a minute)",
                where,
                type(exc).__name__,
                self.errors,
            )

    # -- pynput callbacks (run on pynput's listener threads) ----------------------

    # An exception out of a callback stops pynput's listener, i.e. all capture: each
    # callback keeps its own failures (try costs nothing in CPython 3.11 until it raises).

    def on_press(self, key: Any, injected: bool = False) -> None:
        t_ms = time.monotonic_ns() / 1e6
        try:
            self._sink(self.key_event("kd", key, t_ms, FLAG_INJECTED if injected else 0))
        except Exception as exc:  # noqa: BLE001
            self.failed("key press", exc)

    def on_release(self, key: Any, injected: bool = False) -> None:
        t_ms = time.monotonic_ns() / 1e6
        try:
            self._sink(self.key_event("ku", key, t_ms, FLAG_INJECTED if injected else 0))
        except Exception as exc:  # noqa: BLE001
            self.failed("key release", exc)

    def on_move(self, x: float, y: float, injected: bool = False) -> None:
        t_ns = time.monotonic_ns()
        ms = t_ns // 1_000_000
        if ms == self._last_move_ms:
            return  # at most one move per millisecond: more is noise and CPU
        self._last_move_ms = ms
        try:
            # Positional: the hottest path in the agent; keyword NamedTuple calls cost more.
            self._sink(MouseEvent(_MOVE, t_ns / 1e6, int(x), int(y), 0, 0, 0, 1 if injected else 0))
        except Exception as exc:  # noqa: BLE001
            self.failed("pointer move", exc)

    def on_click(
        self, x: float, y: float, button: Any, pressed: bool, injected: bool = False
    ) -> None:
        t_ms = time.monotonic_ns() / 1e6
        try:
            code = _BUTTONS.get(getattr(button, "name", ""), 0)
            flags = FLAG_INJECTED if injected else 0
            kind = "md" if pressed else "mu"
            self._sink(MouseEvent(kind, t_ms, int(x), int(y), button=code, flags=flags))
        except Exception as exc:  # noqa: BLE001
            self.failed("click", exc)

    def on_scroll(self, x: float, y: float, dx: float, dy: float, injected: bool = False) -> None:
        t_ms = time.monotonic_ns() / 1e6
        try:
            flags = FLAG_INJECTED if injected else 0
            self._sink(MouseEvent("ms", t_ms, int(x), int(y), dx=int(dx), dy=int(dy), flags=flags))
        except Exception as exc:  # noqa: BLE001
            self.failed("scroll", exc)

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
                        self._sink_many,
                        self.key_event,
                        burst_s=self._burst_s,
                        pointer=self._pointer,
                    )
                ]
            except Exception as exc:  # noqa: BLE001 - any X trouble: pynput's path still works
                log.warning("lean X11 input capture unavailable (%s); using pynput's", exc)
        if not self._listeners:
            self._listeners = [
                keyboard.Listener(on_press=self.on_press, on_release=self.on_release)
            ]
            if self._pointer:
                self._listeners.append(
                    mouse.Listener(
                        on_move=self.on_move, on_click=self.on_click, on_scroll=self.on_scroll
                    )
                )
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


# -- X server time -> monotonic time ----------------------------------------------------

_WRAP = 1 << 32  # X timestamps are CARD32 milliseconds: they wrap every 49.7 days
_HALF_WRAP = 1 << 31


def _signed(delta: int) -> int:
    """A CARD32 difference as the nearest signed distance (what wraps, unwraps)."""
    delta &= _WRAP - 1
    return delta - _WRAP if delta >= _HALF_WRAP else delta


class ServerClock:
    """Maps X server event timestamps onto this process's monotonic milliseconds.

    ``t_ms = server_ms + offset``, where ``server_ms`` is the event's CARD32 time
    unwrapped next to the current estimate of the server's time, so the wrap every
    49.7 days and any idle gap are harmless. The offset is derived from the reads
    themselves: an event is never read before it happened, so every read gives an
    upper bound ``sample = monotonic_ms_at_read - server_ms_of_newest_event`` on the
    offset, and the smallest one seen is the estimate.

    * Same clock: Xorg, Xvfb and XWayland stamp events with ``GetTimeInMillis()``,
      i.e. ``CLOCK_MONOTONIC`` truncated to ms -- our clock. When the first sample
      says the server's time is within :attr:`SAME_CLOCK_MS` behind ours (modulo the
      wrap), the offset is taken as exactly the whole wraps between them: ``t_ms``
      then *is* the server's millisecond, from the first event on, with no
      convergence steps.
    * Otherwise (a server on another clock), the offset starts at the first sample
      and is lowered whenever a read proves it too high (``sample < offset``).
    * Either way it is raised only on strong evidence -- over :attr:`WINDOW_MS`, at
      least :attr:`min_samples` samples all more than :attr:`RAISE_SLACK_MS` above
      it (a server clock running slower than ours) -- so that it stays constant in
      steady state: dwell, flight and pointer intervals are differences of server
      timestamps, exact to the server's millisecond.
    """

    SAME_CLOCK_MS = 5000
    WINDOW_MS = 10_000.0
    # Evidence is reads over at least this share of a window. The reader reads once per
    # burst under input, so the count that makes that share follows the burst length.
    MIN_INPUT_SHARE = 0.4
    RAISE_SLACK_MS = 20.0

    def __init__(self, read_interval_s: float = 0.25) -> None:
        #: 16 at 0.25 s reads (or faster), 4 at the agent's 1 s bursts: a fixed 16 could
        #: never be met by 1 s bursts, whose 10 s window holds at most 10 reads.
        interval_ms = 1000.0 * max(read_interval_s, 0.25)
        self.min_samples = max(3, round(self.MIN_INPUT_SHARE * self.WINDOW_MS / interval_ms))
        self.offset: float | None = None
        self.same_clock = False
        self._window_end = 0.0
        self._window_min = math.inf
        self._window_n = 0

    def unwrap(self, raw: int, now_ms: float) -> int:
        """``raw`` on a continuous millisecond scale, next to the server's time at ``now_ms``."""
        if self.offset is None:
            return raw
        ref = int(now_ms - self.offset)
        return ref + _signed(raw - ref)

    def observe(self, now_ms: float, newest_raw: int) -> None:
        """Account for a read at ``now_ms`` whose newest event has server time ``newest_raw``."""
        if self.offset is None:
            behind = _signed(int(now_ms) - newest_raw)
            if 0 <= behind <= self.SAME_CLOCK_MS:
                self.same_clock = True
                self.offset = float(int(now_ms) - behind - newest_raw)
            else:
                self.offset = now_ms - newest_raw
            self._window_end = now_ms + self.WINDOW_MS
            return
        sample = now_ms - self.unwrap(newest_raw, now_ms)
        if sample < self.offset:
            # Read before it happened: the estimate is too high. (Never on the same
            # clock: the server's truncated millisecond is never after our reading.)
            log.debug("X server clock: offset lowered by %.3f ms", self.offset - sample)
            self.offset = sample
            self.same_clock = False
        if sample < self._window_min:
            self._window_min = sample
        self._window_n += 1
        if now_ms >= self._window_end:
            if (
                # On our own clock no sample is ever below the true offset and the clock
                # cannot run slow: a window of late reads is sparse input, not evidence.
                not self.same_clock
                and self._window_n >= self.min_samples
                and self._window_min > self.offset + self.RAISE_SLACK_MS
            ):
                log.info("X server clock: offset raised by %.1f ms", self._window_min - self.offset)
                self.offset = self._window_min
                self.same_clock = False
            self._window_end = now_ms + self.WINDOW_MS
            self._window_min = math.inf
            self._window_n = 0


# -- X11 input through the RECORD extension, without python-xlib's event parser --------

# Core event codes (X.h); bit 7 of the code is set for SendEvent, i.e. synthetic, input.
_KEY_PRESS, _KEY_RELEASE, _BUTTON_PRESS, _BUTTON_RELEASE, _MOTION_NOTIFY = 2, 3, 4, 5, 6
_SEND_EVENT = 0x80
# Wheel "buttons" 4-7 -> (dx, dy), as pynput reports them.
_X_SCROLL = {4: (0, 1), 5: (0, -1), 6: (-1, 0), 7: (1, 0)}
_BUTTON_CODES = {1: 1, 2: 3, 3: 2}  # X left, middle, right -> wire 1 left, 3 middle, 2 right
_RECORD_ENABLE_CONTEXT = 5
_FROM_SERVER, _END_OF_DATA = 0, 5
_REPLY_HEADER = struct.Struct("=BBHI")  # type, category, sequence, length (4-byte units)
# A core input event: code, detail, time, root_x, root_y, state (xEvent, X.h/Xproto.h).
_CORE_EVENT = struct.Struct("=BB2xI12xhh4xH2x")


class _XKeyEvent:
    """The two fields pynput's key-code translation reads from an Xlib event."""

    __slots__ = ("detail", "state")

    def __init__(self, detail: int, state: int) -> None:
        self.detail = detail
        self.state = state


class XRecordInput:
    """Keys, pointer moves, clicks and wheel steps of all X clients via RECORD.

    The same source as pynput's X11 listeners (a RECORD context over the core device
    events), but the replies are read from the socket in bursts and cut with
    ``struct`` instead of python-xlib's per-field protocol objects, on one thread
    instead of two. python-xlib still opens the connections (display name,
    authentication) and creates the context; only the enable request, whose replies
    stream until the context is disabled, is ours.

    The reader sleeps ``burst_s`` and then reads everything the server sent
    meanwhile, in one burst handed to ``sink``; when nothing came it blocks until
    input starts again and gathers that burst the same way. A stream of input costs
    one wake-up per burst, not one per event. Event times are the server's (see
    :class:`ServerClock`), so when an event is read does not matter.

    Key codes become pynput keys through pynput's own translation (an unstarted
    keyboard listener's), and each key is handed straight to ``key_event``, which
    returns the reduced wire event: the key never outlives the parse of its event.
    Same interface as a pynput listener as far as :class:`Capture` needs. Without
    ``pointer`` the context records key events only: the server never sends the
    pointer's.
    """

    def __init__(
        self,
        sink: SinkMany,
        key_event: KeyReducer,
        *,
        burst_s: float = BURST_S,
        pointer: bool = True,
    ) -> None:
        from pynput import keyboard
        from Xlib import X
        from Xlib.display import Display
        from Xlib.ext import record

        self._init_parser(sink, key_event, burst_s)
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
                        # KeyPress, KeyRelease, ButtonPress, ButtonRelease, MotionNotify
                        "device_events": (X.KeyPress, X.MotionNotify if pointer else X.KeyRelease),
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

    def _init_parser(self, sink: SinkMany, key_event: KeyReducer, burst_s: float) -> None:
        """The parse state (separate so tests can build a reader without an X server)."""
        self._sink = sink
        self._key_event = key_event
        self._burst_s = burst_s
        self._now_ns: Callable[[], int] = time.monotonic_ns
        self.clock = ServerClock(read_interval_s=burst_s)
        self._last_t = -math.inf  # output times never go backwards
        self._last_move_server_ms = -1
        self.reads = 0  # wake-ups that read something (the footprint bench reports it)

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
        except Exception as exc:  # noqa: BLE001 - reported, type only
            # Never the text or the traceback: on the key path either can hold the key.
            log.error("X11 input capture failed (%s)", type(exc).__name__)

    def _read(self) -> None:
        sock = self._sock
        sock.setblocking(False)
        recv, clock_ns, sleep = sock.recv, self._now_ns, time.sleep
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        buf = b""
        while True:
            sleep(self._burst_s)
            try:
                chunk = recv(1 << 18)
            except BlockingIOError:
                # Idle: block until input starts, then gather its first burst whole.
                poller.poll()
                continue
            if not chunk:
                return  # the X server went away
            now_ms = clock_ns() / 1e6
            buf = buf + chunk if buf else chunk
            pos, size = 0, len(buf)
            raw: list[tuple[int, int, int, int, int, int]] = []
            ended = False
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
                    whole = pos + 32 + (end - pos - 32) // 32 * 32  # events are 32 bytes
                    raw.extend(_CORE_EVENT.iter_unpack(memoryview(buf)[pos + 32 : whole]))
                elif category == _END_OF_DATA:
                    ended = True
                    break
                pos = end
            buf = buf[pos:] if not ended else b""
            if raw:
                self.reads += 1
                self.clock.observe(now_ms, raw[-1][2])
                events = self._events(raw, now_ms)
                del raw
                if events:
                    self._sink(events)
            if ended:
                return  # the context was disabled: stop() was called

    def _events(self, raw: list[tuple[int, int, int, int, int, int]], now_ms: float) -> list[Event]:
        """Wire events of one burst; keys are reduced here and go no further."""
        out: list[Event] = []
        append = out.append
        clock = self.clock
        assert clock.offset is not None
        # Unwrapping next to the newest event is exact for the whole burst (a burst
        # spans far less than the 24.8 days half a CARD32 wrap would need).
        ref_raw = raw[-1][2]
        ref = clock.unwrap(ref_raw, now_ms)
        offset = clock.offset
        last_t = self._last_t
        last_move = self._last_move_server_ms
        for code, detail, stime, x, y, state in raw:
            server_ms = ref + _signed(stime - ref_raw)
            t = server_ms + offset
            if t < last_t:
                t = last_t  # the offset was lowered mid-stream: keep the order
            flags = 1 if code & _SEND_EVENT else 0
            code &= 0x7F
            if code == _MOTION_NOTIFY:
                if server_ms == last_move:
                    continue  # at most one move per millisecond: more is noise and CPU
                last_move = server_ms
                append(MouseEvent(_MOVE, t, x, y, 0, 0, 0, flags))
            elif code in (_KEY_PRESS, _KEY_RELEASE):
                try:
                    key = self._to_key(self._control, _XKeyEvent(detail, state))
                except Exception:  # noqa: BLE001 - an invalid key code (pynput: IndexError)
                    # or any other failure of pynput's translation: the press is kept as
                    # an unknown key; raised, it would end the reader thread, all capture.
                    key = None
                append(self._key_event("kd" if code == _KEY_PRESS else "ku", key, t, flags))
                del key  # reduced above; no reference outlives this event
            elif code in (_BUTTON_PRESS, _BUTTON_RELEASE):
                scroll = _X_SCROLL.get(detail)
                if scroll is not None:
                    if code == _BUTTON_PRESS:  # a wheel step is its press; the release is noise
                        append(MouseEvent("ms", t, x, y, 0, scroll[0], scroll[1], flags))
                else:
                    kind = "md" if code == _BUTTON_PRESS else "mu"
                    append(MouseEvent(kind, t, x, y, _BUTTON_CODES.get(detail, 0), 0, 0, flags))
            last_t = t
        self._last_t = last_t
        self._last_move_server_ms = last_move
        return out
