"""librdkafka client settings from the environment, shared by every cadence client.

Defaults work against ``make kafka-up`` on this machine. Point cadence at another
cluster with ``CADENCE_KAFKA_BOOTSTRAP`` and, for TLS/SASL,
``CADENCE_KAFKA_SECURITY_PROTOCOL`` (e.g. ``SASL_SSL``), ``CADENCE_KAFKA_SASL_MECHANISM``
(e.g. ``SCRAM-SHA-512``), ``CADENCE_KAFKA_SASL_USERNAME``,
``CADENCE_KAFKA_SASL_PASSWORD_FILE``, ``CADENCE_KAFKA_SSL_CA``,
``CADENCE_KAFKA_SSL_CERT`` and ``CADENCE_KAFKA_SSL_KEY``. Secrets come from files,
never from flags (they would show in ``ps``), and are never logged.

>>> kafka_client_config("broker:9093", env={"CADENCE_KAFKA_SECURITY_PROTOCOL": "SSL"})
{'bootstrap.servers': 'broker:9093', 'security.protocol': 'SSL'}
>>> kafka_client_config("b:9093", env={"CADENCE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
{'bootstrap.servers': 'b:9093', 'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'SCRAM-SHA-512'}
>>> kafka_client_config("b:9093", env={"CADENCE_KAFKA_SASL_USERNAME": "svc"})
Traceback (most recent call last):
...
ValueError: SASL credentials are set but CADENCE_KAFKA_SECURITY_PROTOCOL is unset: set it to SASL_SSL (or SASL_PLAINTEXT)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
# What the shipped deployment uses, and what the worker's aiokafka login assumes: every
# client must agree (librdkafka's own default, GSSAPI, is never what we run).
DEFAULT_SASL_MECHANISM = "SCRAM-SHA-512"

_PASS_THROUGH = {
    "CADENCE_KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "CADENCE_KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "CADENCE_KAFKA_SASL_USERNAME": "sasl.username",
    "CADENCE_KAFKA_SSL_CA": "ssl.ca.location",
    "CADENCE_KAFKA_SSL_CERT": "ssl.certificate.location",
    "CADENCE_KAFKA_SSL_KEY": "ssl.key.location",
}


def bootstrap_servers(env: Mapping[str, str] | None = None) -> str:
    return (os.environ if env is None else env).get("CADENCE_KAFKA_BOOTSTRAP", DEFAULT_BOOTSTRAP)


def kafka_client_config(
    bootstrap: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """librdkafka settings for a producer, consumer or admin client."""
    env = os.environ if env is None else env
    config = {"bootstrap.servers": bootstrap or bootstrap_servers(env)}
    for variable, setting in _PASS_THROUGH.items():
        if value := env.get(variable):
            config[setting] = value
    protocol = config.get("security.protocol", "").upper()
    if protocol.startswith("SASL"):
        config.setdefault("sasl.mechanism", DEFAULT_SASL_MECHANISM)
    elif "sasl.username" in config or env.get("CADENCE_KAFKA_SASL_PASSWORD_FILE"):
        # librdkafka would connect without them (PLAINTEXT, one warning): a deployment
        # that meant to authenticate would run unauthenticated and unencrypted.
        raise ValueError(
            "SASL credentials are set but CADENCE_KAFKA_SECURITY_PROTOCOL is "
            f"{protocol or 'unset'}: set it to SASL_SSL (or SASL_PLAINTEXT)"
        )
    if password_file := env.get("CADENCE_KAFKA_SASL_PASSWORD_FILE"):
        try:
            config["sasl.password"] = Path(password_file).read_text().strip()
        except OSError as exc:
            # The message names the file, never its content.
            raise OSError(f"cannot read CADENCE_KAFKA_SASL_PASSWORD_FILE: {exc}") from None
    return config
