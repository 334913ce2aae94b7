"""The capture agent: listeners -> batcher -> spool -> Kafka, until told to stop."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.batch_auth import USER_KEY_FILE_ENV, user_signer
from collectors.batcher import MAX_AGE_MS, MAX_EVENTS, Batcher
from collectors.capture import Capture, KeyHasher
from collectors.delivery import BatchSender
from collectors.identity import (
    DEFAULT_IDLE_MS,
    SessionTracker,
    current_login,
    device_id,
    key_identity_key,
    load_pseudonym_key,
    pseudonym,
)
from collectors.metrics import CollectorMetrics
from collectors.spool import DEFAULT_MAX_BATCHES, DEFAULT_MAX_BYTES, open_spool
from collectors.spool.copies import DEFAULT_QUARANTINE_DAYS
from collectors.unlock import LockWatcher
from collectors.wire import EVENTS_TOPIC, Event, EventBatch

log = logging.getLogger(__name__)

BUSY_WAIT_S = 0.25
IDLE_WAIT_S = 1.0


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cadence"


@dataclass
class AgentConfig:
    bootstrap: str | None = None
    kafka_extra: Mapping[str, Any] = field(default_factory=dict)
    topic: str = EVENTS_TOPIC
    state_dir: Path = field(default_factory=default_state_dir)
    spool_path: Path | None = None  # None: <state_dir>/spool.db
    memory_spool: bool = False  # non-durable: for tests and benchmarks only
    spool_max_bytes: int = DEFAULT_MAX_BYTES
    spool_max_batches: int = DEFAULT_MAX_BATCHES
    spool_quarantine_days: float = DEFAULT_QUARANTINE_DAYS  # a damaged spool's copy kept
    fsync: bool = True
    metrics_port: int | None = None
    key_identity: bool = False
    pointer: bool = True  # False: keys only, for desks where the pointer types (docs/privacy.md)
    idle_ms: float = DEFAULT_IDLE_MS
    max_events: int = MAX_EVENTS
    max_age_ms: float = MAX_AGE_MS
    login: str | None = None
    flush_timeout: float = 10.0


class Agent:
    def __init__(
        self,
        sender: BatchSender,
        *,
        device: str,
        user: str,
        metrics: CollectorMetrics,
        key_identity: bool = False,
        idle_ms: float = DEFAULT_IDLE_MS,
        batcher: Batcher | None = None,
        lock_watcher: LockWatcher | None = None,
    ) -> None:
        self.sender = sender
        self.device = device
        self.user = user
        self.metrics = metrics
        self.key_identity = key_identity
        self.sessions = SessionTracker(idle_ms)
        self.batcher = batcher if batcher is not None else Batcher()
        self.lock_watcher = lock_watcher
        self.batches = 0

    def send_events(self, events: tuple[Event, ...]) -> None:
        if self.sessions.observe(events[0].t_ms, events[-1].t_ms):
            log.info("input resumed after idle: new session")
        wall_ms = time.time() * 1000.0
        # Once per batch: maps this batch's monotonic t_ms to wall-clock time.
        offset = wall_ms - time.monotonic_ns() / 1e6
        batch = EventBatch(
            device=self.device,
            user=self.user,
            session=self.sessions.session,
            seq=self.sender.next_seq(self.device),
            sent_at_ms=wall_ms,
            clock_offset_ms=offset,
            events=events,
            key_identity=self.key_identity,
        )
        self.sender.send(batch)
        self.metrics.events_captured.inc(len(events))
        self.batches += 1

    def step(self, max_wait_s: float | None = None) -> None:
        if max_wait_s is None:
            # While batches await their acknowledgement, a quarter second bounds how
            # late delivery reports are served (under input a closed batch also wakes
            # us, once per batch age). With nothing spooled there is nothing to serve:
            # an idle desk wakes once a second, which also bounds how late the stop
            # flag is seen.
            max_wait_s = BUSY_WAIT_S if self.sender.pending else IDLE_WAIT_S
        deadline = self.batcher.next_deadline_s()
        self.batcher.wait(max_wait_s if deadline is None else min(deadline, max_wait_s))
        # Before the batches due now are sent: their input may be the unlocker's.
        if self.lock_watcher is not None and self.lock_watcher.unlocked():
            log.info("screen unlocked: new session %s", self.sessions.new_session("unlock"))
        for events in self.batcher.due():
            self.send_events(events)
        self.sender.poll(0)

    def run(self, stop: threading.Event, capture: Capture, flush_timeout: float = 10.0) -> int:
        """Capture until ``stop`` is set; return the batches left on the spool."""
        capture.start()
        log.info(
            "capturing: device %s, session %s, %d batches waiting on the spool",
            self.device,
            self.sessions.session,
            self.sender.pending,
        )
        try:
            while not stop.is_set():
                self.step()
                if not capture.alive:
                    log.error("an input listener died; stopping")
                    break
        finally:
            capture.stop()
            for events in self.batcher.drain():
                self.send_events(events)
            remaining = self.sender.close(flush_timeout)
        if remaining:
            log.warning("%d batches stay on the spool for the next start", remaining)
        else:
            log.info("stopped; spool empty")
        return remaining


def build_agent(
    config: AgentConfig, metrics: CollectorMetrics | None = None
) -> tuple[Agent, Capture]:
    """Wire identity, spool, sender, batcher and listeners from ``config``."""
    metrics = metrics if metrics is not None else CollectorMetrics()
    key = load_pseudonym_key()
    device = device_id(key, config.state_dir)
    user = pseudonym(config.login or current_login(), key)
    signer = user_signer()  # before the spool is opened (and locked): a bad file stops here
    spool_path = (
        None if config.memory_spool else (config.spool_path or config.state_dir / "spool.db")
    )
    spool = open_spool(
        spool_path,
        max_bytes=config.spool_max_bytes,
        max_batches=config.spool_max_batches,
        fsync=config.fsync,
        metrics=metrics,
        quarantine_days=config.spool_quarantine_days,
    )
    sender = BatchSender(
        spool,
        bootstrap=config.bootstrap,
        topic=config.topic,
        extra_config=config.kafka_extra,
        metrics=metrics,
        signer=signer,
    )
    if signer is None:
        # Accepted by workers in the default mode; refused by one set to require tags.
        log.info("batches unsigned (%s not set)", USER_KEY_FILE_ENV)
    hasher = None
    if config.key_identity:
        hasher = KeyHasher(key_identity_key(key))
        metrics.key_identity_enabled.set(1)
        log.warning(
            "audit: key-identity mode enabled by operator setting: key events of device %s, "
            "user %s carry a keyed hash of the key identity (never the character)",
            device,
            user,
        )
    metrics.pointer_enabled.set(1 if config.pointer else 0)
    if not config.pointer:
        log.info("pointer capture off by operator setting: key events only")
    watcher = LockWatcher()
    agent = Agent(
        sender,
        device=device,
        user=user,
        metrics=metrics,
        key_identity=config.key_identity,
        idle_ms=config.idle_ms,
        batcher=Batcher(config.max_events, config.max_age_ms),
        lock_watcher=watcher if watcher.available else None,
    )
    # The X11 reader gathers one batch age of input per burst and each burst closes a
    # batch: one wake-up of each thread per batch, the latency of one batch age.
    capture = Capture(
        agent.batcher.add,
        hasher,
        sink_many=functools.partial(agent.batcher.extend, close=True),
        burst_s=config.max_age_ms / 1000.0,
        metrics=metrics,
        pointer=config.pointer,
    )
    if config.metrics_port is not None:
        metrics.serve(config.metrics_port)
    return agent, capture
