"""The operator commands' Kafka clients: quiet, interruptible, one line when unreachable.

librdkafka writes a line to stderr for every failed connection attempt: against a broker
that cannot be reached, hundreds of them before the command's own one-line error. The
operator commands (``verdicts tail``, ``profiles forget|export``, ``topics create``,
``bench pipeline``) give their clients a Python logger instead (confluent-kafka's
``logger`` setting, :func:`client_settings`), whose records are shown only with
``-v``/``--verbose``; the last error among them (a refused connection, a failed TLS
handshake or login) names the cause in the command's own message (:func:`unreachable`).
The worker and the collector agent keep their own logging.

A blocking librdkafka call (metadata, watermarks) runs in C, where Ctrl-C waits for it
to return: :func:`patiently` makes it in short steps instead.

>>> _cause("FAIL [rdkafka#consumer-1] [thrd:b:9/bootstrap]: b:9/bootstrap: Connect to "
...        "ipv4#127.0.0.1:9 failed: Connection refused")
'b:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused'
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

LOGGER_NAME = "cadence.librdkafka"
# Longest a blocking librdkafka call runs before Ctrl-C is looked at again.
STEP_S = 0.5


class _ClientLog(logging.Handler):
    """Keeps the last error librdkafka logged; with ``verbose``, prints every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.verbose = False
        self.last_error: str | None = None
        self.setFormatter(logging.Formatter("librdkafka %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno >= logging.ERROR:
                self.last_error = _cause(record.getMessage())
            if self.verbose:
                # The stderr of the moment (not the one at import): a test's capture.
                print(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


_HANDLER = _ClientLog()


def _cause(message: str) -> str:
    """A librdkafka log line without its facility, client and thread names."""
    return re.sub(r"^\S+ \[[^\]]*\] (\[thrd:[^\]]*\]: )?", "", message)


def configure(verbose: bool) -> None:
    """Route the operator commands' librdkafka log: kept, and printed only if ``verbose``."""
    logger = logging.getLogger(LOGGER_NAME)
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
    logger.setLevel(logging.DEBUG)  # librdkafka filters by its own log_level already
    logger.propagate = False  # not the root logger's handlers, nor Python's last resort
    _HANDLER.verbose = verbose
    _HANDLER.last_error = None


def client_settings() -> dict[str, Any]:
    """What an operator command adds to its clients' settings (see :func:`configure`).

    The records are served from the client's ``poll`` (and :func:`patiently`'s steps).
    """
    return {"logger": logging.getLogger(LOGGER_NAME)}


def context() -> str:
    """What librdkafka last logged as an error, and how to see all of its log."""
    note = f"; last client error: {_HANDLER.last_error}" if _HANDLER.last_error else ""
    return note + ("" if _HANDLER.verbose else " (-v shows the Kafka client's log)")


def unreachable(config: Mapping[str, Any], exc: BaseException) -> str:
    """The one line for a Kafka call that failed: the broker named, the cause if known."""
    error = exc.args[0] if exc.args else exc
    text = error.str() if hasattr(error, "str") else str(error)
    return f"cannot reach Kafka at {config.get('bootstrap.servers')}: {text}{context()}"


class _Polled(Protocol):
    def poll(self, timeout: float) -> object: ...


def patiently(client: _Polled, call: Callable[..., T], *args: object, timeout: float) -> T:
    """``call(*args, timeout=timeout)``, a blocking librdkafka call, in steps of ``STEP_S``.

    librdkafka blocks in C, where Python cannot act on Ctrl-C: one metadata request of
    15 s to a broker that cannot be reached held ``verdicts tail`` that long. Between
    steps KeyboardInterrupt is raised, and the client's queue is served (its log records
    reach the logger). An error that waiting may cure (no broker up yet, no answer yet)
    is retried until ``timeout`` has passed, then raised, as the one call would have.

    A step that ends without an answer abandons its request, and the next one asks
    again: a broker that is up but answers more slowly than a step (a far or loaded
    cluster) would never be heard. So after a step timed out (a broker is up: one that
    cannot be reached fails with a transport error instead) the next step is twice as
    long, and Ctrl-C waits for at most that step.
    """
    from confluent_kafka import KafkaError, KafkaException

    retried = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
    deadline = time.monotonic() + timeout
    step = STEP_S
    while True:
        started = time.monotonic()
        try:
            return call(*args, timeout=max(min(step, deadline - started), 0.001))
        except KafkaException as exc:
            client.poll(0)
            error = exc.args[0] if exc.args else None
            if not isinstance(error, KafkaError) or error.code() not in retried:
                raise
            if time.monotonic() >= deadline:
                raise
            if error.code() == KafkaError._TIMED_OUT:
                step *= 2
        # A step that failed at once (e.g. every broker known to be down) is not repeated
        # in a busy loop.
        time.sleep(max(0.0, min(started + STEP_S, deadline) - time.monotonic()))
