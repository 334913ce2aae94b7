"""Locked-down Kafka for real: TLS + SCRAM-SHA-512 + ACLs, each principal with its own rights.

The test starts its own broker (the shared session broker stays PLAINTEXT) with a
SASL_SSL listener whose certificate it generates with openssl, SCRAM users created at
format time, and the StandardAuthorizer. The principals get the ACLs of
deploy/k8s/base/kafka-users.yaml: the collector writes events only; the worker reads
events, writes verdicts, dead letters and findings, owns its ``{app id}-`` topics and
its group; the SOC reads verdicts and findings with ``cadence-soc*`` groups. A real
collector ``BatchSender``, a real ``cadence worker`` and ``cadence verdicts tail`` work
with those rights, every attempt outside them is refused with the authorization
error, and no password shows up in any of their logs.

The broker also keeps a PLAINTEXT listener on 127.0.0.1 for itself (controller, the
launcher's readiness probe) and for the test's own checks; its ANONYMOUS principal is a
super user, which is acceptable only because nothing but this test can reach it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from collectors.delivery import BatchSender
from collectors.simulate import Workload
from collectors.spool import SqliteSpool
from collectors.wire import decode_batch
from streams.admin import create_topics
from streams.topics import TopicSpec
from streams.verdict import decode_verdict
from tests.integration.collector_send_script import make_batch
from tests.integration.collector_support import read_topic
from tests.integration.worker_support import (
    REPO,
    Deployment,
    TopicReader,
    read_verdicts,
    running_worker,
    wait_until,
)
from tests.kafka_broker import BrokerUnavailable, free_port, load_launcher

pytestmark = pytest.mark.slow

SCRAM = "SCRAM-SHA-512"
PRINCIPALS = ("admin", "collector", "worker", "soc")
TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = KafkaError.GROUP_AUTHORIZATION_FAILED


@dataclass
class SecureBroker:
    plain: str  # PLAINTEXT, for the test's own reads
    secure: str  # SASL_SSL
    ca: Path
    passwords: dict[str, str]
    password_files: dict[str, Path]

    def env(self, principal: str) -> dict[str, str]:
        """What a cadence component of ``principal`` is configured with."""
        return {
            "CADENCE_KAFKA_BOOTSTRAP": self.secure,
            "CADENCE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "CADENCE_KAFKA_SASL_MECHANISM": SCRAM,
            "CADENCE_KAFKA_SASL_USERNAME": principal,
            "CADENCE_KAFKA_SASL_PASSWORD_FILE": str(self.password_files[principal]),
            "CADENCE_KAFKA_SSL_CA": str(self.ca),
        }

    def client(self, principal: str) -> dict[str, str]:
        """librdkafka settings of ``principal`` (for the probes that must be refused)."""
        return {
            "bootstrap.servers": self.secure,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM,
            "sasl.username": principal,
            "sasl.password": self.passwords[principal],
            "ssl.ca.location": str(self.ca),
        }


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d: Path, store_password: str) -> tuple[Path, Path]:
    """A throw-away CA and a broker certificate for 127.0.0.1/localhost, as PKCS12."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-days", "2", "-subj", "/CN=cadence-test-ca", cwd=d)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key",
            "-out", "broker.csr", "-subj", "/CN=localhost", cwd=d)  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "broker.crt", "-days", "2", "-extfile", "san.cnf",
            cwd=d)  # fmt: skip
    openssl("pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key",
            "-certfile", "ca.crt", "-name", "broker", "-out", "broker.p12",
            "-passout", f"pass:{store_password}", cwd=d)  # fmt: skip
    return d / "ca.crt", d / "broker.p12"


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[SecureBroker]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    launcher = load_launcher()
    try:
        launcher.find_java()
        launcher.ensure_jars()
    except launcher.LauncherError as exc:
        raise BrokerUnavailable(str(exc)) from exc
    root = Path(tempfile.mkdtemp(prefix="cadence-kafka-test-secure-"))
    certs = root / "certs"
    certs.mkdir()
    store_password = secrets.token_hex(12)
    ca, keystore = make_certificates(certs, store_password)
    passwords = {p: secrets.token_hex(16) for p in PRINCIPALS}
    password_files = {}
    for principal, password in passwords.items():
        path = certs / f"{principal}.password"
        path.write_text(password + "\n")
        path.chmod(0o600)
        password_files[principal] = path
    port, controller, sasl_port = free_port(), free_port(), free_port()
    host = "127.0.0.1"
    inst = launcher.Instance(
        root=root,
        port=port,
        controller_port=controller,
        heap=os.environ.get("CADENCE_KAFKA_HEAP", "512m"),
        extra_properties=(
            (
                "listeners",
                f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller},"
                f"SASL_SSL://{host}:{sasl_port}",
            ),  # fmt: skip
            ("advertised.listeners", f"PLAINTEXT://{host}:{port},SASL_SSL://{host}:{sasl_port}"),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
            ),
            ("sasl.enabled.mechanisms", SCRAM),
            (
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ),
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", str(keystore)),
            ("ssl.keystore.password", store_password),
            ("ssl.key.password", store_password),
            ("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"),
            ("super.users", "User:admin;User:ANONYMOUS"),
            ("allow.everyone.if.no.acl.found", "false"),
        ),
        format_args=tuple(
            arg
            for principal, password in passwords.items()
            for arg in ("--add-scram", f"{SCRAM}=[name={principal},password={password}]")
        ),
    )
    try:
        launcher.start(inst, timeout=120, die_with_parent=True)
        yield SecureBroker(f"{host}:{port}", f"{host}:{sasl_port}", ca, passwords, password_files)
    finally:
        try:
            launcher.stop(inst, timeout=30.0)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def allow(principal: str, rtype: ResourceType, name: str, pattern: ResourcePatternType,
          *ops: AclOperation) -> list[AclBinding]:  # fmt: skip
    return [
        AclBinding(rtype, name, pattern, f"User:{principal}", "*", op, AclPermissionType.ALLOW)
        for op in ops
    ]


def grant(broker: SecureBroker, d: Deployment, app_id: str) -> None:
    """The ACLs of deploy/k8s/base/kafka-users.yaml, for this deployment's names."""
    T, G = ResourceType.TOPIC, ResourceType.GROUP
    LIT, PRE = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    Op = AclOperation
    acls = [
        *allow("collector", T, d.events, LIT, Op.WRITE, Op.DESCRIBE),
        *allow("worker", T, d.events, LIT, Op.READ, Op.DESCRIBE),
        *[
            acl
            for topic in (d.verdicts, d.topics.deadletter, d.topics.findings, d.topics.audit)
            for acl in allow("worker", T, topic, LIT, Op.WRITE, Op.DESCRIBE)
        ],
        *allow("worker", T, d.topics.control, LIT, Op.READ, Op.DESCRIBE),
        *allow(
            "worker",
            T,
            f"{app_id}-",
            PRE,
            Op.CREATE,
            Op.READ,
            Op.WRITE,
            Op.DESCRIBE,
            Op.DESCRIBE_CONFIGS,
        ),  # fmt: skip
        *allow("worker", G, app_id, LIT, Op.READ, Op.DESCRIBE),
        *allow("soc", T, d.verdicts, LIT, Op.READ, Op.DESCRIBE),
        *allow("soc", T, d.topics.findings, LIT, Op.READ, Op.DESCRIBE),
        *allow("soc", G, "cadence-soc", PRE, Op.READ, Op.DESCRIBE),
    ]
    create_acls(broker, acls)


def create_acls(broker: SecureBroker, acls: list[AclBinding]) -> None:
    """Create ``acls`` and wait until the broker's authorizer applies them.

    ``create_acls`` returns once the controller has committed them; the broker applies
    the metadata a moment later, and a client that asks in between is refused (and
    librdkafka caches the refusal in its topic metadata).
    """
    admin = AdminClient(broker.client("admin"))  # the super user, over SASL_SSL
    for future in admin.create_acls(acls, request_timeout=30).values():
        future.result(timeout=30)
    wanted = {(a.restype, a.name, a.principal, a.operation) for a in acls}
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
        AclOperation.ANY, AclPermissionType.ANY,
    )  # fmt: skip

    def applied() -> bool:
        found = admin.describe_acls(everything, request_timeout=10).result(timeout=10)
        return wanted <= {(a.restype, a.name, a.principal, a.operation) for a in found}

    wait_until(applied, timeout=30, what="the new ACLs in effect on the broker")


def produce_error(config: dict[str, str], topic: str) -> int | None:
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 15000})
    producer.produce(topic, key=b"k", value=b"v", on_delivery=lambda err, _: errors.append(err))
    producer.flush(30)
    return errors[0].code() if errors and errors[0] is not None else None


def consume_errors(
    config: dict[str, str], topic: str, group: str, subscribe: bool = True, seconds: float = 15.0
) -> set[int]:
    """Errors of a consumer of ``topic`` in ``group`` (subscribed, or fetching partition 0)."""
    consumer = Consumer(
        {**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    if subscribe:
        consumer.subscribe([topic])
    else:
        # Fetching without joining: the topic's Read ACL decides (librdkafka still looks up
        # the group's coordinator, which a principal without any group sees refused too).
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    codes: set[int] = set()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and TOPIC_DENIED not in codes:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error():
                codes.add(msg.error().code())
    finally:
        consumer.close()
    return codes


def test_each_principal_works_within_its_acls_and_is_refused_outside(
    secure_broker: SecureBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    broker = secure_broker
    d = Deployment(broker.secure, tmp_path)
    app_id = d.topics.app_id
    create_topics(
        broker.client("admin"),
        [
            TopicSpec(d.events, 4, "events"),
            TopicSpec(d.verdicts, 2, "verdicts"),
            TopicSpec(d.topics.deadletter, 1, "dead letters"),
            TopicSpec(d.topics.findings, 2, "findings"),
            TopicSpec(d.topics.control, 4, "control"),
            TopicSpec(d.topics.audit, 1, "audit"),
        ],
        timeout=30,
    )
    grant(broker, d, app_id)
    start = time.time() * 1000.0 - 150_000.0
    batches = [b for _, b in Workload(users=2, seed=5, start_wall_ms=start).batches(until_s=90)]
    total_events = sum(len(b.events) for b in batches)

    # The collector: a real BatchSender configured only through the environment, with
    # librdkafka's security debug log on (it goes to stderr, captured by capfd).
    caplog.set_level(logging.DEBUG)
    for name, value in broker.env("collector").items():
        monkeypatch.setenv(name, value)
    sender = BatchSender(
        bootstrap=broker.secure, topic=d.events, extra_config={"debug": "security,broker"}
    )
    for batch in batches:
        sender.send(batch)
        sender.poll(0)
    assert sender.flush(60) == 0, "the collector could not write its events"
    sender.close()

    verdicts = TopicReader(broker.plain, d.verdicts)
    with running_worker(d, **broker.env("worker")) as worker:

        def judged() -> int:
            verdicts.poll(1.0)
            return sum(v.events for v in read_verdicts(verdicts))

        wait_until(lambda: judged() >= total_events, timeout=120, what="verdicts over SASL_SSL")
        worker_log = worker.log.read_text()
    verdicts.close()
    assert {v.user for v in read_verdicts(verdicts)} == {b.user for b in batches}

    # The SOC: `cadence verdicts tail` as the soc principal reads the verdicts.
    tail = subprocess.run(
        [sys.executable, "-m", "streams.cli", "verdicts", "tail", "--from-beginning", "--json"],
        cwd=REPO,
        env={
            **os.environ,
            **broker.env("soc"),
            "CADENCE_VERDICTS_TOPIC": d.verdicts,
            "PYTHONUNBUFFERED": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tail.returncode == 0, tail.stderr
    shown = [decode_verdict(line) for line in tail.stdout.splitlines()]
    assert sum(v.events for v in shown) >= total_events
    assert "authorization" not in tail.stderr.lower(), tail.stderr

    # Everything outside the ACLs is refused.
    changelog = f"{app_id}-user-profiles-changelog"
    collector, worker_, soc = (broker.client(p) for p in ("collector", "worker", "soc"))
    refused = {
        "collector writes verdicts": produce_error(collector, d.verdicts),
        "collector reads events": TOPIC_DENIED
        in consume_errors(collector, d.events, "none", subscribe=False),
        "collector joins a group": consume_errors(collector, d.events, "cadence-soc-x"),
        "worker writes events": produce_error(worker_, d.events),
        "worker reads verdicts": TOPIC_DENIED
        in consume_errors(worker_, d.verdicts, app_id, subscribe=False),
        "worker joins another group": consume_errors(worker_, d.events, "not-the-worker"),
        "soc writes verdicts": produce_error(soc, d.verdicts),
        # Without even Describe, the refusal comes with the subscription's metadata.
        "soc reads events": consume_errors(soc, d.events, "cadence-soc-p"),
        "soc reads the profiles": consume_errors(soc, changelog, "cadence-soc-p"),
        "soc joins another group": consume_errors(soc, d.verdicts, "someone-else"),
    }
    assert refused == {
        "collector writes verdicts": TOPIC_DENIED,
        "collector reads events": True,
        "collector joins a group": {GROUP_DENIED},
        "worker writes events": TOPIC_DENIED,
        "worker reads verdicts": True,
        "worker joins another group": {GROUP_DENIED},
        "soc writes verdicts": TOPIC_DENIED,
        "soc reads events": {TOPIC_DENIED},
        "soc reads the profiles": {TOPIC_DENIED},
        "soc joins another group": {GROUP_DENIED},
    }

    # No secret in any log: the worker's, the collector's (Python and librdkafka), the tail's.
    collector_logs = caplog.text + capfd.readouterr().err
    assert "SASL" in collector_logs or "sasl" in collector_logs  # the debug log did run
    for password in broker.passwords.values():
        for name, text in (
            ("worker", worker_log),
            ("collector", collector_logs),
            ("tail", tail.stdout + tail.stderr),
        ):
            assert password not in text, f"a password appears in the {name} log"


def test_collector_without_write_acl_keeps_its_batches_and_delivers_once_granted(
    secure_broker: SecureBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A workstation rolled out before its ACL (or after a revocation) must neither die
    # nor drop what it captured: librdkafka refuses inside produce() once its metadata
    # says "not authorized", and the batches have to wait on the spool until allowed.
    broker = secure_broker
    d = Deployment(broker.secure, tmp_path)
    topic = f"{d.events}-late-acl"
    create_topics(broker.client("admin"), [TopicSpec(topic, 1, "events")], timeout=30)
    for name, value in broker.env("collector").items():
        monkeypatch.setenv(name, value)
    sender = BatchSender(
        SqliteSpool(tmp_path / "spool.db", fsync=False),
        bootstrap=broker.secure,
        topic=topic,
        extra_config={"topic.metadata.refresh.interval.ms": 1000},
    )
    first = sender.next_seq("dev-acl")
    batches = [make_batch("dev-acl", first + i) for i in range(30)]
    for batch in batches[:10]:
        sender.send(batch)
    assert sender.flush(5) == 10, "nothing may be delivered without the Write ACL"
    for batch in batches[10:20]:
        sender.send(batch)
    assert sender.pending == 20
    assert sender.counters.delivery_errors > 0

    create_acls(broker, allow("collector", ResourceType.TOPIC, topic,
                              ResourcePatternType.LITERAL, AclOperation.WRITE,
                              AclOperation.DESCRIBE))  # fmt: skip
    for batch in batches[20:]:
        sender.send(batch)
    assert sender.flush(60) == 0, "the spooled batches were not delivered after the grant"
    sender.close()
    seqs = [decode_batch(r.value).seq for r in read_topic(broker.plain, topic)]
    # Each batch at least once, and the first arrivals in capture order.
    assert list(dict.fromkeys(seqs)) == [b.seq for b in batches]
