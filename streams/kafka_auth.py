"""Faust broker credentials from the same settings every other cadence client uses.

Collectors, ``cadence verdicts tail`` and the admin commands speak librdkafka, whose
settings :func:`collectors.kafka_config.kafka_client_config` reads from the
environment (``CADENCE_KAFKA_SECURITY_PROTOCOL``, ``..._SASL_*``, ``..._SSL_*``).
The worker speaks aiokafka through Faust, which wants a credentials object and an
``ssl.SSLContext`` instead; this module translates one into the other so that a
deployment configures TLS and SASL once, for every component.

The password only ever lives in the credentials object, whose ``repr`` shows the
user name alone (Faust logs its configuration at start-up).

>>> broker_credentials({"bootstrap.servers": "b:9092"}) is None
True
>>> creds = broker_credentials({"security.protocol": "SASL_PLAINTEXT",
...     "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "w", "sasl.password": "pw"})
>>> creds.mechanism.value, creds.protocol.value, "pw" in repr(creds)
('SCRAM-SHA-512', 'SASL_PLAINTEXT', False)
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from collectors.kafka_config import DEFAULT_SASL_MECHANISM


def ssl_context(config: Mapping[str, str]) -> ssl.SSLContext:
    """A client TLS context: the cluster CA (or the system store), optional client cert."""
    # OSError (ssl.SSLError is one) names no file by itself: say which setting to fix.
    ca = config.get("ssl.ca.location")
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except OSError as exc:
        raise OSError(f"CADENCE_KAFKA_SSL_CA={ca!r}: {exc.strerror or exc}") from None
    if cert := config.get("ssl.certificate.location"):
        key = config.get("ssl.key.location")
        try:
            context.load_cert_chain(cert, key)
        except OSError as exc:
            raise OSError(
                f"CADENCE_KAFKA_SSL_CERT={cert!r} / CADENCE_KAFKA_SSL_KEY={key!r}: "
                f"{exc.strerror or exc}"
            ) from None
    return context


def broker_credentials(config: Mapping[str, str]) -> Any:
    """``faust.SASLCredentials`` / ``faust.SSLCredentials`` for librdkafka-style ``config``.

    ``None`` for PLAINTEXT (the local default).
    """
    import faust

    protocol = config.get("security.protocol", "PLAINTEXT").upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(config))
    if protocol not in ("SASL_SSL", "SASL_PLAINTEXT"):
        raise ValueError(f"unsupported CADENCE_KAFKA_SECURITY_PROTOCOL {protocol!r}")
    username, password = config.get("sasl.username"), config.get("sasl.password")
    if not username or not password:
        raise ValueError(
            f"{protocol} needs CADENCE_KAFKA_SASL_USERNAME and CADENCE_KAFKA_SASL_PASSWORD_FILE"
        )
    return faust.SASLCredentials(
        username=username,
        password=password,
        mechanism=config.get("sasl.mechanism", DEFAULT_SASL_MECHANISM),
        ssl_context=ssl_context(config) if protocol == "SASL_SSL" else None,
    )
