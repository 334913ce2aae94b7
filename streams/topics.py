"""Every Kafka topic cadence owns, with its partitions, retention and cleanup policy.

One declaration, used by ``cadence topics create``, the worker, the deployment
manifests' tests and the docs. Record schemas are owned by each topic's producer:
``collectors.wire`` for raw events, ``streams.verdict`` for verdicts, ``streams.ocsf``
for findings.

Names can be overridden with ``CADENCE_EVENTS_TOPIC``, ``CADENCE_VERDICTS_TOPIC``,
``CADENCE_DEADLETTER_TOPIC``, ``CADENCE_FINDINGS_TOPIC``, ``CADENCE_CONTROL_TOPIC`` and
``CADENCE_AUDIT_TOPIC`` (several deployments on one cluster, tests); the
schema version stays in the default names.

Raw events are behavioural data about identifiable people: they are kept for
hours, only long enough to survive a worker outage and reprocess. Verdicts are
the SOC's evidence and are kept for weeks.

>>> [t.name for t in TOPICS]
['cadence.events.v1', 'cadence.verdicts.v1', 'cadence.deadletter.v1', 'cadence.findings.ocsf.v1', 'cadence.control.v1', 'cadence.audit.v1']
>>> EVENTS.config["retention.ms"]
'21600000'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from collectors.wire import EVENTS_TOPIC
from streams.env import env_number

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    description: str
    config: dict[str, str] = field(default_factory=dict)


def _env_int(name: str, default: int) -> int:
    # Read at import: a bad value raises SettingError from the first import of this
    # module, which the CLI reports as one line naming the variable (exit 2).
    return env_number(name, default, minimum=1)


EVENTS: Final = TopicSpec(
    name=os.environ.get("CADENCE_EVENTS_TOPIC", EVENTS_TOPIC),
    partitions=_env_int("CADENCE_EVENTS_PARTITIONS", 12),
    description="raw input batches from collectors, keyed by user pseudonym",
    config={
        "cleanup.policy": "delete",
        "retention.ms": str(_env_int("CADENCE_EVENTS_RETENTION_HOURS", 6) * HOUR_MS),
        "compression.type": "producer",
        "max.message.bytes": str(1 << 20),
        # Records are stamped with the broker's clock, not the workstation's: Kafka 4
        # refuses a CreateTime more than 1 h ahead, which would strand a desk with a wrong
        # clock on its spool; stamped here, its batches reach the worker, which judges
        # their send time and dead-letters the absurd ones. Retention then also counts
        # from arrival, whatever the desk clocks say.
        "message.timestamp.type": "LogAppendTime",
    },
)
VERDICTS: Final = TopicSpec(
    name=os.environ.get("CADENCE_VERDICTS_TOPIC", "cadence.verdicts.v1"),
    partitions=_env_int("CADENCE_VERDICTS_PARTITIONS", 6),
    description="one verdict per user window, keyed by user pseudonym",
    config={
        "cleanup.policy": "delete",
        "retention.ms": str(_env_int("CADENCE_VERDICTS_RETENTION_DAYS", 30) * DAY_MS),
    },
)
DEADLETTER: Final = TopicSpec(
    name=os.environ.get("CADENCE_DEADLETTER_TOPIC", "cadence.deadletter.v1"),
    partitions=_env_int("CADENCE_DEADLETTER_PARTITIONS", 3),
    description="records the worker could not accept, with the reason in headers",
    config={
        "cleanup.policy": "delete",
        "retention.ms": str(_env_int("CADENCE_DEADLETTER_RETENTION_DAYS", 7) * DAY_MS),
    },
)

FINDINGS: Final = TopicSpec(
    name=os.environ.get("CADENCE_FINDINGS_TOPIC", "cadence.findings.ocsf.v1"),
    partitions=_env_int("CADENCE_FINDINGS_PARTITIONS", 6),
    description="suspicious and impostor verdicts as OCSF Detection Findings (streams.ocsf)",
    config={
        "cleanup.policy": "delete",
        # Same evidence as the verdicts, kept as long.
        "retention.ms": str(_env_int("CADENCE_VERDICTS_RETENTION_DAYS", 30) * DAY_MS),
    },
)

CONTROL: Final = TopicSpec(
    name=os.environ.get("CADENCE_CONTROL_TOPIC", "cadence.control.v1"),
    # Co-partitioned with the events (same count, same key, collectors' partitioner):
    # a request reaches the worker that holds the user's profile (streams.privacy).
    partitions=EVENTS.partitions,
    description="requests to the workers (profile erasure), keyed by user pseudonym",
    config={
        "cleanup.policy": "delete",
        # Long enough to outlive any worker outage; a request is applied once, idempotently.
        "retention.ms": str(_env_int("CADENCE_CONTROL_RETENTION_DAYS", 7) * DAY_MS),
    },
)
#: Settings of the worker's profile changelog (``{app id}-user-profiles-changelog``),
#: which Faust creates on first start. An erasure is a tombstone: without a compaction
#: deadline the older records of a forgotten user could stay on disk for good (Kafka's
#: default lag is unbounded and its segments roll after 7 days). Compacted within a day,
#: the tombstone itself dropped a day later, as docs/privacy.md states; the Kubernetes
#: KafkaTopic declares the same.
CHANGELOG_CONFIG: Final = {
    "cleanup.policy": "compact",
    "max.compaction.lag.ms": str(DAY_MS),
    "delete.retention.ms": str(DAY_MS),
    "segment.ms": str(DAY_MS),
}

AUDIT: Final = TopicSpec(
    name=os.environ.get("CADENCE_AUDIT_TOPIC", "cadence.audit.v1"),
    partitions=1,
    description="what the workers did on data-protection requests (who asked, when, what)",
    config={
        "cleanup.policy": "delete",
        # Evidence that erasures happened, kept like other compliance records.
        "retention.ms": str(_env_int("CADENCE_AUDIT_RETENTION_DAYS", 400) * DAY_MS),
    },
)

TOPICS: Final[tuple[TopicSpec, ...]] = (EVENTS, VERDICTS, DEADLETTER, FINDINGS, CONTROL, AUDIT)


@dataclass(frozen=True, slots=True)
class IsolatedTopics:
    """Every topic of one isolated deployment, named ``<prefix>.<topic>.v1``.

    Several deployments can share a cluster (tests, benchmarks, tenants): each gets
    its own topics, consumer group and changelogs. ``worker_env`` is what a
    ``cadence worker`` process needs to use them.

    >>> t = IsolatedTopics("t1")
    >>> t.events, t.app_id, t.worker_env(4)["CADENCE_CONTROL_TOPIC"]
    ('t1.events.v1', 't1-worker', 't1.control.v1')
    """

    prefix: str

    @property
    def events(self) -> str:
        return f"{self.prefix}.events.v1"

    @property
    def verdicts(self) -> str:
        return f"{self.prefix}.verdicts.v1"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter.v1"

    @property
    def findings(self) -> str:
        return f"{self.prefix}.findings.ocsf.v1"

    @property
    def control(self) -> str:
        return f"{self.prefix}.control.v1"

    @property
    def audit(self) -> str:
        return f"{self.prefix}.audit.v1"

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-worker"

    def specs(self, partitions: int) -> list[TopicSpec]:
        """The topics to create, configured as the shipped ones.

        The control topic is co-partitioned with the events.

        >>> [s.config["message.timestamp.type"] for s in IsolatedTopics("t1").specs(4)[:1]]
        ['LogAppendTime']
        """
        return [
            TopicSpec(self.events, partitions, "events", dict(EVENTS.config)),
            TopicSpec(self.verdicts, 2, "verdicts", dict(VERDICTS.config)),
            TopicSpec(self.deadletter, 1, "dead letters", dict(DEADLETTER.config)),
            TopicSpec(self.findings, 2, "findings", dict(FINDINGS.config)),
            TopicSpec(self.control, partitions, "control", dict(CONTROL.config)),
            TopicSpec(self.audit, 1, "audit", dict(AUDIT.config)),
        ]

    def worker_env(self, partitions: int) -> dict[str, str]:
        return {
            "CADENCE_APP_ID": self.app_id,
            "CADENCE_EVENTS_TOPIC": self.events,
            "CADENCE_VERDICTS_TOPIC": self.verdicts,
            "CADENCE_DEADLETTER_TOPIC": self.deadletter,
            "CADENCE_FINDINGS_TOPIC": self.findings,
            "CADENCE_CONTROL_TOPIC": self.control,
            "CADENCE_AUDIT_TOPIC": self.audit,
            "CADENCE_EVENTS_PARTITIONS": str(partitions),
        }
