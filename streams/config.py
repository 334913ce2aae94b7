"""Command-line access to the shared Kafka settings (see :mod:`collectors.kafka_config`)."""

from __future__ import annotations

import argparse
from typing import Any

from collectors.kafka_config import DEFAULT_BOOTSTRAP, kafka_client_config


class _KafkaConfigAction(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        namespace.kafka_bootstrap = str(values)


def add_kafka_arguments(parser: argparse.ArgumentParser, *, operator: bool = False) -> None:
    """``--bootstrap HOST:PORT``; fills ``args.kafka_config`` with the client settings.

    ``operator``: an operator command's clients, whose librdkafka log stays off the
    terminal unless ``-v`` is given (:mod:`streams.commands._kafka`).
    """
    parser.add_argument(
        "--bootstrap",
        action=_KafkaConfigAction,
        metavar="HOST:PORT",
        help=f"Kafka bootstrap servers (env CADENCE_KAFKA_BOOTSTRAP, default {DEFAULT_BOOTSTRAP})",
    )
    if operator:
        parser.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="show the Kafka client's own log (librdkafka) on stderr",
        )
    # Built by the CLI after parsing (resolve_kafka_config): reading a password file
    # here would make even --help fail when the file is missing.
    parser.set_defaults(kafka_config=None, kafka_bootstrap=None, kafka_operator=operator)


def resolve_kafka_config(args: argparse.Namespace) -> None:
    """Fill ``args.kafka_config`` for a command that takes Kafka arguments.

    Raises OSError (naming the file, never its content) when a secret cannot be read,
    ValueError when the settings contradict each other.
    """
    if hasattr(args, "kafka_bootstrap") and args.kafka_config is None:
        config: dict[str, Any] = kafka_client_config(args.kafka_bootstrap)
        if getattr(args, "kafka_operator", False):
            from streams.commands import _kafka

            _kafka.configure(verbose=args.verbose)
            config.update(_kafka.client_settings())
        args.kafka_config = config
