"""The worker's gate on batch tags (``CADENCE_BATCH_AUTH``): which records are judged.

Each record of the events topic may carry its user's tag (collectors.batch_auth). In
``report`` mode a record without it is counted and judged; in ``require`` mode it is
refused, and the worker sends it to the dead-letter topic (reason ``unauthenticated``)
with the reason this gate gives. The tag is checked before the value is parsed, under
the record's key: a batch whose user is not its key is refused after (``key_mismatch``),
so the tag binds both.

The gate also holds the revoked key generations in force (streams.revocations), read
again when their file changes; a file that can no longer be read keeps the list read
last, so a damaged file never lifts a revocation.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from collectors import batch_auth
from streams.metrics import WorkerMetrics
from streams.revocations import RevocationFileError, RevokedKeys
from streams.revocations import reload as reload_revocations
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)


class BatchTags:
    """Checks each record's tag as ``settings.batch_auth`` says, counting in ``metrics``."""

    def __init__(self, settings: WorkerSettings, metrics: WorkerMetrics) -> None:
        self.settings = settings
        # Read for every record: held here rather than looked up through the settings.
        self.mode = settings.batch_auth
        self.secrets = settings.batch_auth_secrets
        self.metrics = metrics
        # A file read as more secrets than meant (a wrapped dump) shows here and in the log.
        metrics.retiring_secrets.set(settings.retiring_secrets)
        #: Revoked key generations in force; replaced when their file changes.
        self.revoked: RevokedKeys | None = None
        self.read_error: str | None = None
        # A list read once that lifts revocations, waiting to be read the same again.
        self.lifting: RevokedKeys | None = None
        if settings.batch_auth_revoked is not None:
            self._put_in_force(settings.batch_auth_revoked)

    @property
    def checked(self) -> bool:
        """Whether records are checked at all (not ``off``)."""
        return self.mode != "off"

    @property
    def rereads(self) -> bool:
        """Whether there is a revocation file to look at again while running."""
        return self.checked and self.revoked is not None

    def announce(self) -> None:
        """Log what the gate does; once logging is set up (at start)."""
        if not self.checked:
            return
        log.info(
            "batch tags %s: 1 current signing secret, %d retiring",
            self.mode,
            self.settings.retiring_secrets,
        )
        if self.revoked is not None:
            log.info(
                "revoked keys: %d users in %s, read again when it changes",
                len(self.revoked.minimum),
                self.revoked.path,
            )

    def refusal(self, message: Any) -> str | None:
        """None if the record (a Kafka message: key, value, headers) goes on to be
        judged; else why it is refused, as the dead letter's detail."""
        user = (message.key or b"").decode("utf-8", "replace")
        minimum = 0 if self.revoked is None else self.revoked.min_generation(user)
        outcome = batch_auth.check(
            self.secrets, user, message.value or b"", message.headers, minimum
        )
        if outcome == "current":
            return None
        if outcome == "retiring":
            self.metrics.retiring_tags.inc()
            return None
        self.metrics.unsigned_batches.labels(outcome).inc()
        if self.mode != "require":
            return None
        if outcome == "missing":
            return "no cadence-mac header"
        if outcome == "revoked":
            return (
                f"cadence-mac is its user's tag under a revoked key (this user's keys "
                f"below generation {minimum} are revoked)"
            )
        return "cadence-mac is not the record's tag under its user's key"

    def reread(self) -> None:
        """Read the revocation file again if it changed. One that cannot be read leaves
        the list read last in force: counted at every look while it stays so, logged as
        an error when the failure starts or changes.

        A list that adds revocations is in force at once; one that lifts any (a user's
        minimum lower, or gone) only once the file has read the same at the next look
        too: a file edited in place can be read empty, or half written, and a moment's
        read must not let revoked keys through. An operator's lifting waits one look."""
        if self.revoked is None:
            return
        base = self.lifting or self.revoked
        try:
            revoked = reload_revocations(base)
        except RevocationFileError as exc:
            self.metrics.revocation_read_errors.inc()
            if str(exc) != self.read_error:
                log.error(
                    "%s; still refusing the %d users' keys read before",
                    exc,
                    len(self.revoked.minimum),
                )
            self.read_error = str(exc)
            return
        if self.read_error is not None:
            log.info("the revocation file %s can be read again", revoked.path)
            self.read_error = None
        if revoked is base and self.lifting is None:
            return  # unchanged
        if revoked is not base and _lifts(self.revoked, revoked):
            self.lifting = revoked
            log.info(
                "the revocation file %s lifts revocations: in force if it reads the same "
                "at the next look",
                revoked.path,
            )
            return
        self.lifting = None
        log.info("revoked keys: %d users in %s", len(revoked.minimum), revoked.path)
        self._put_in_force(revoked)

    def _put_in_force(self, revoked: RevokedKeys) -> None:
        self.revoked = revoked
        self.metrics.revoked_users.set(len(revoked.minimum))
        # The users' count stays put when a user already listed is revoked again: when
        # the list was read tells an operator whether their update is in force.
        self.metrics.revocations_read_time.set(time.time())


def _lifts(in_force: RevokedKeys, read: RevokedKeys) -> bool:
    """Whether ``read`` accepts a key generation that ``in_force`` refuses."""
    return any(read.min_generation(user) < floor for user, floor in in_force.minimum.items())
