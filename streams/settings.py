"""The worker's configuration: every field has an environment variable and a local default.

Read by ``cadence worker`` (and every command that must agree with it, such as the
changelog's name for ``cadence profiles export``) without building a Faust app.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from collectors.kafka_config import bootstrap_servers, kafka_client_config
from streams.env import env_number
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
        )
