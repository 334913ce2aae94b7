"""The worker's configuration: every field has an environment variable and a local default.

Read by ``cadence worker`` (and every command that must agree with it, such as the
changelog's name for ``cadence profiles export``) without building a Faust app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from collectors.batch_auth import SECRET_FILE_ENV, KeyFileError, signing_secrets
from collectors.kafka_config import bootstrap_servers, kafka_client_config
from streams import revocations
from streams.env import SettingError, env_number
from streams.revocations import RevocationFileError, RevokedKeys
from streams.topics import EVENTS


@dataclass(frozen=True)
class WorkerSettings:
    """Worker configuration; every field has an environment variable and a local default."""

    app_id: str = "cadence-worker"
    broker: str = "kafka://127.0.0.1:9092"
    store: str = "memory://"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    data_dir: str = ".cache/worker"
    window_seconds: float = 5.0
    idle_flush_seconds: float = 30.0
    # How long a stopping worker waits for verdicts already sent to be acknowledged.
    shutdown_grace_seconds: float = 10.0
    table_partitions: int = EVENTS.partitions
    # Of the topics Faust creates itself (its leader topic; the changelog if not declared):
    # 1 suits the local one-broker Kafka, a cluster sets its topics' factor (3).
    topic_replication_factor: int = 1
    # librdkafka-style client settings (TLS, SASL) shared with every cadence client; never
    # printed, since they hold the SASL password.
    kafka: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # Batch tags (collectors.batch_auth): "off" reads none, "report" counts batches
    # without their user's tag and judges them, "require" dead-letters them.
    batch_auth: str = "off"
    # Current first, then the retiring ones (collectors.batch_auth).
    batch_auth_secrets: tuple[bytes, ...] = field(default=(), repr=False, compare=False)
    # Revoked key generations as read at start (streams.revocations); None without
    # CADENCE_BATCH_AUTH_REVOKED_FILE. The worker reads the file again when it changes.
    batch_auth_revoked: RevokedKeys | None = field(default=None, repr=False, compare=False)

    @property
    def retiring_secrets(self) -> int:
        """Signing secrets accepted besides the current one (0 outside a rotation)."""
        return max(0, len(self.batch_auth_secrets) - 1)

    @classmethod
    def from_env(cls) -> WorkerSettings:
        env = os.environ
        bootstrap = bootstrap_servers()
        return cls(
            app_id=env.get("CADENCE_APP_ID", cls.app_id),
            broker=";".join(f"kafka://{h}" for h in bootstrap.split(",")),
            store=env.get("CADENCE_STORE", cls.store),
            web_port=env_number("CADENCE_WEB_PORT", cls.web_port, minimum=1, maximum=65535),
            web_host=env.get("CADENCE_WEB_HOST", cls.web_host),
            data_dir=env.get("CADENCE_DATA_DIR", cls.data_dir),
            window_seconds=env_number(
                "CADENCE_WINDOW_SECONDS", cls.window_seconds, minimum=0.0, exclusive=True
            ),
            idle_flush_seconds=env_number(
                "CADENCE_IDLE_FLUSH_SECONDS", cls.idle_flush_seconds, minimum=0.0, exclusive=True
            ),
            # Not 0: the stop deadline (3 x this) would end the worker the moment it stops.
            shutdown_grace_seconds=env_number(
                "CADENCE_SHUTDOWN_GRACE_SECONDS",
                cls.shutdown_grace_seconds,
                minimum=0.0,
                exclusive=True,
            ),
            topic_replication_factor=env_number(
                "CADENCE_TOPIC_REPLICATION_FACTOR", cls.topic_replication_factor, minimum=1
            ),
            kafka=kafka_client_config(bootstrap),
            **batch_auth_from_env(env),
        )


BATCH_AUTH_MODES = ("off", "report", "require")


def batch_auth_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``CADENCE_BATCH_AUTH`` and, unless it is off, the secrets from
    ``CADENCE_BATCH_AUTH_SECRET_FILE`` (current first, then retiring ones, one per line)
    and the revocations of ``CADENCE_BATCH_AUTH_REVOKED_FILE`` if set; SettingError names
    what is wrong: a worker whose revocation file cannot be read does not start, as one
    whose secret cannot (it would accept the keys the file revokes)."""
    mode = env.get("CADENCE_BATCH_AUTH", "off").strip().lower() or "off"
    if mode not in BATCH_AUTH_MODES:
        raise SettingError(
            f"CADENCE_BATCH_AUTH={mode!r}: must be one of {', '.join(BATCH_AUTH_MODES)}"
        )
    if mode == "off":
        return {"batch_auth": mode}
    try:
        secrets = signing_secrets(env)
    except KeyFileError as exc:
        raise SettingError(str(exc)) from None
    if secrets is None:
        raise SettingError(
            f"CADENCE_BATCH_AUTH={mode} needs {SECRET_FILE_ENV}: a file holding "
            "the signing secret in hex (e.g. `python3 -c 'import secrets; "
            "print(secrets.token_hex(32))'`)"
        )
    try:
        revoked = revocations.from_env(env)
    except RevocationFileError as exc:
        raise SettingError(str(exc)) from None
    return {"batch_auth": mode, "batch_auth_secrets": secrets, "batch_auth_revoked": revoked}
