#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) locally.

Standard library only: `make kafka-up` must work before the project's virtualenv exists, and
the pytest fixture imports this file directly so both paths start the broker the same way.

    python3 deploy/local/kafka_local.py jars      # fetch the broker jars with Maven (once)
    python3 deploy/local/kafka_local.py up        # start (idempotent), wait until it answers
    python3 deploy/local/kafka_local.py status    # exit 0 ready, 1 running but deaf, 3 stopped
    python3 deploy/local/kafka_local.py wait      # block until a broker answers metadata
    python3 deploy/local/kafka_local.py down      # stop exactly the broker `up` started
    python3 deploy/local/kafka_local.py down --purge   # ... and delete its data (reset)

Everything lives under .cache/kafka/ (git-ignored): `libs-<version>/` holds the jars shared
by every instance, `<name>/` one broker's config, data, logs and pid file.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# One place to bump: passed to Maven as -Dkafka.version, so the pom's default is only a
# fallback for people running mvn by hand. Keep docker-compose.yml's image tag in step.
KAFKA_VERSION = "4.4.0"

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
POM = HERE / "pom.xml"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "kafka"

BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
MIN_JAVA = 17  # Kafka 4.x brokers refuse older JVMs.

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3  # LSB convention for `status` of a stopped service.

# Popen objects of brokers started by *this* Python process (the pytest fixture). Kept so
# `stop` can reap them; otherwise a dead child lingers as a zombie and still "exists".
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LauncherError(Exception):
    """A failure the user can act on; main() prints it without a traceback."""


def _log(msg: str) -> None:
    print(f"kafka-local: {msg}", file=sys.stderr, flush=True)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise LauncherError(f"{name}={raw!r} is not an integer") from exc


def cache_dir() -> Path:
    return Path(os.environ.get("CADENCE_KAFKA_CACHE", DEFAULT_CACHE)).resolve()


def libs_dir(cache: Path | None = None) -> Path:
    # Versioned directory so a version bump never runs a mix of old and new jars.
    return (cache or cache_dir()) / f"libs-{KAFKA_VERSION}"


# --------------------------------------------------------------------------- tools


def find_java() -> str:
    """Path of a Java >= 17, preferring $JAVA_HOME like Kafka's own scripts do."""
    candidates: list[str] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    which = shutil.which("java")
    if which:
        candidates.append(which)
    for java in candidates:
        if os.access(java, os.X_OK):
            major = _java_major(java)
            if major is not None and major < MIN_JAVA:
                raise LauncherError(
                    f"{java} is Java {major}; Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+ "
                    "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless)"
                )
            return java
    raise LauncherError(
        "java not found: install a JRE 17+ (Debian/Ubuntu: apt-get install "
        "openjdk-17-jre-headless) or set JAVA_HOME"
    )


@functools.lru_cache(maxsize=4)
def _java_version_text(java: str) -> str:
    try:
        return subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _java_major(java: str) -> int | None:
    match = re.search(r'version "(\d+)(?:\.(\d+))?', _java_version_text(java))
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8.0_x".
    return int(match.group(2) or 0) if major == 1 else major


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise concurrent launchers (make + pytest, parallel test sessions) on one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; concurrent use there is on the user.
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def ensure_jars(cache: Path | None = None) -> Path:
    """Return the directory with the broker jars, fetching them with Maven on first use."""
    cache = cache or cache_dir()
    target = libs_dir(cache)
    stamp = target / ".complete"
    if stamp.exists():
        return target
    with _file_lock(cache / ".jars.lock"):
        if stamp.exists():  # another launcher fetched them while we waited for the lock
            return target
        mvn = shutil.which("mvn")
        if not mvn:
            raise LauncherError(
                f"Kafka jars missing in {target} and mvn not found: install Maven "
                "(Debian/Ubuntu: apt-get install maven), then run `make kafka-jars`"
            )
        tmp = cache / f".libs-{KAFKA_VERSION}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _log(f"fetching Apache Kafka {KAFKA_VERSION} jars with Maven into {target} ...")
        started = time.monotonic()
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(POM),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            shutil.rmtree(tmp, ignore_errors=True)
            raise LauncherError(
                "Maven could not fetch the Kafka jars:\n" + (proc.stdout + proc.stderr)[-4000:]
            )
        # Rename, then stamp: a crash mid-download never leaves a directory that looks complete.
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        stamp.write_text(f"{KAFKA_VERSION}\n")
        _log(f"jars ready ({time.monotonic() - started:.1f}s)")
    return target


# ----------------------------------------------------------------- Kafka wire protocol
#
# Just enough of the protocol to ask "are you a Kafka broker that serves metadata?" with no
# client library: ApiVersions v0 (every broker, old or new, answers it) to learn which
# Metadata versions are served, then one non-flexible Metadata request (v4..v8; Kafka 4
# dropped v0-v3 per KIP-896, v9+ needs the compact "flexible" encoding).

API_METADATA = 3
API_VERSIONS = 18


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0] if len(value) == 1 else value

    def string(self) -> str | None:
        length: int = self.take(">h")
        if length < 0:
            return None
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", "replace")


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf.extend(chunk)
    return bytes(buf)


def _call(
    sock: socket.socket, api_key: int, version: int, correlation_id: int, body: bytes
) -> _Reader:
    client_id = b"cadence-kafka-local"
    # Request header v1: api_key, api_version, correlation_id, client_id (nullable string).
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    reader = _Reader(_recv_exact(sock, size))
    if reader.take(">i") != correlation_id:
        raise ConnectionError("correlation id mismatch")
    return reader


@dataclass(frozen=True)
class BrokerInfo:
    cluster_id: str | None
    controller_id: int
    brokers: tuple[tuple[int, str, int], ...]  # (node_id, host, port)


def probe(host: str, port: int, timeout: float = 2.0) -> BrokerInfo:
    """Ask host:port for cluster metadata; raises OSError/ConnectionError when it can't."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        resp = _call(sock, API_VERSIONS, 0, 1, b"")
        error = resp.take(">h")
        if error != 0:
            raise ConnectionError(f"ApiVersions error code {error}")
        ranges: dict[int, tuple[int, int]] = {}
        for _ in range(resp.take(">i")):
            key, lo, hi = resp.take(">hhh")
            ranges[key] = (lo, hi)
        lo, hi = ranges.get(API_METADATA, (0, -1))
        version = min(hi, 8)
        if version < max(lo, 4):
            raise ConnectionError(f"no non-flexible Metadata version in broker range {lo}-{hi}")
        # topics = [] (brokers only, not null = "all topics"), allow_auto_topic_creation=false,
        # and from v8 the two include_*_authorized_operations flags.
        body = struct.pack(">ib", 0, 0)
        if version >= 8:
            body += struct.pack(">bb", 0, 0)
        resp = _call(sock, API_METADATA, version, 2, body)
        resp.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(resp.take(">i")):
            node_id = resp.take(">i")
            bhost = resp.string() or ""
            bport = resp.take(">i")
            resp.string()  # rack
            brokers.append((node_id, bhost, bport))
        cluster_id = resp.string()
        controller_id = resp.take(">i")
    if not brokers:
        raise ConnectionError("broker answered but lists no brokers yet")
    return BrokerInfo(cluster_id, controller_id, tuple(brokers))


def wait_ready(
    host: str,
    port: int,
    timeout: float,
    alive: Callable[[], bool] | None = None,
) -> BrokerInfo:
    """Poll until the broker serves metadata; fail fast if `alive` says the process died."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            return probe(host, port)
        except (OSError, ConnectionError, struct.error) as exc:
            last = exc
        if alive is not None and not alive():
            raise LauncherError("broker process exited during startup")
        if time.monotonic() >= deadline:
            raise LauncherError(
                f"no Kafka broker answered on {host}:{port} in {timeout:.0f}s: {last}"
            )
        time.sleep(0.2)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# ------------------------------------------------------------------------ instances


@dataclass(frozen=True)
class Instance:
    """One broker's identity and files. Two instances differ in root dir and ports."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    node_id: int = 1
    # Appended to the generated server.properties, so a key given here overrides the
    # default above it (java.util.Properties keeps the last value): extra listeners,
    # TLS, SASL, an authorizer. Empty for `make kafka-up`.
    extra_properties: tuple[tuple[str, str], ...] = ()
    # Extra `kafka-storage format` arguments, e.g. ("--add-scram", "SCRAM-SHA-512=[...]")
    # to create SCRAM users before the first start (KRaft has no ZooKeeper to put them in).
    format_args: tuple[str, ...] = ()

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def server_properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log4j_config(self) -> Path:
        return self.root / "log4j2.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / "kafka.pid"

    @property
    def cluster_id_file(self) -> Path:
        return self.root / "cluster.id"

    @property
    def console_log(self) -> Path:
        # JVM-level output (crashes, OOM, bind errors before log4j is up) goes here.
        return self.log_dir / "console.out"

    @property
    def server_log(self) -> Path:
        return self.log_dir / "server.log"


def default_instance(
    name: str | None = None,
    root: Path | None = None,
    port: int | None = None,
    controller_port: int | None = None,
    heap: str | None = None,
    host: str | None = None,
) -> Instance:
    name = name or os.environ.get("CADENCE_KAFKA_NAME", "local")
    return Instance(
        root=(root or cache_dir() / name).resolve(),
        host=host or os.environ.get("CADENCE_KAFKA_HOST", "127.0.0.1"),
        port=port if port is not None else _env_int("CADENCE_KAFKA_PORT", 9092),
        controller_port=(
            controller_port
            if controller_port is not None
            else _env_int("CADENCE_KAFKA_CONTROLLER_PORT", 9093)
        ),
        heap=heap or os.environ.get("CADENCE_KAFKA_HEAP", "512m"),
    )


def _server_properties(inst: Instance) -> str:
    return f"""\
# Generated by deploy/local/kafka_local.py on every `up`; edit the script, not this file.
process.roles=broker,controller
node.id={inst.node_id}
controller.quorum.voters={inst.node_id}@{inst.host}:{inst.controller_port}
listeners=PLAINTEXT://{inst.host}:{inst.port},CONTROLLER://{inst.host}:{inst.controller_port}
advertised.listeners=PLAINTEXT://{inst.host}:{inst.port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs={inst.data_dir}

# One node: every internal topic must fit on it, or consumer groups and transactions stall.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
default.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer __consumer_offsets partitions: 50 empty logs only slow the first group join here.
offsets.topic.num.partitions=5
num.partitions=1
# Tests and workers join groups one at a time; the 3 s default only adds latency.
group.initial.rebalance.delay.ms=0
# The project creates its topics explicitly (partitions and retention are part of the design);
# a typo in a topic name must fail loudly instead of creating a stray topic.
auto.create.topics.enable=false

# A laptop/CI box with 2 cores: keep the thread pools small.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
""" + "".join(f"{key}={value}\n" for key, value in inst.extra_properties)


def _log4j_properties(inst: Instance) -> str:
    # Rolling file so a demo broker left running for days cannot fill the disk; the per-class
    # config dumps are silenced because they bury the lines that matter.
    # shutdownHook=disable: log4j's own hook would otherwise close the appender before Kafka's
    # shutdown hook runs, and the controlled-shutdown lines (what you need when `down` hangs)
    # would be lost.
    return f"""\
status = warn
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = {inst.server_log}
appender.file.filePattern = {inst.server_log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.appinfo.name = org.apache.kafka.common.utils.AppInfoParser
logger.appinfo.level = WARN
"""


def _new_cluster_id() -> str:
    # Same shape as `kafka-storage random-uuid`: 16 random bytes, URL-safe base64, no padding.
    # Like Kafka's own Uuid.randomUuid, never start with "-": the storage tool's argument
    # parser would read such an id as an option and the broker would never start.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not cluster_id.startswith("-"):
            return cluster_id


def _jvm_args(inst: Instance, java: str, libs: Path) -> list[str]:
    extra = os.environ.get("CADENCE_KAFKA_JAVA_OPTS", "").split()
    return [
        java,
        f"-Xmx{inst.heap}",
        f"-Xms{inst.heap}",
        # Kafka's own defaults (kafka-run-class.sh): short GC pauses matter more than
        # throughput for a broker that sits behind latency-sensitive verdicts.
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={inst.log4j_config}",
        f"-Dkafka.logs.dir={inst.log_dir}",
        *extra,
        "-cp",
        str(libs / "*"),
    ]


# ------------------------------------------------------------ class-data sharing
#
# Loading and verifying ~4,000 classes from 40 MB of jars is a large share of broker start-up
# on a 2-core machine. A dynamic AppCDS archive (what the official apache/kafka image ships
# as kafka.jsa) maps them pre-parsed instead. Measured on the 2-core dev box while other
# work loaded it, start-to-ready was 4.6-5.3 s with the archive vs 8.1-15.2 s without. The first broker that runs without an archive writes one when it
# exits cleanly; every later start uses it. An unusable archive (other JVM build, changed
# jars) is ignored by the JVM (-Xshare:auto), so this can only cost, never break, a start.


def _cds_archive(java: str, libs: Path, kind: str) -> Path:
    # The archive is only valid for the exact JVM build that wrote it.
    key = f"{os.path.realpath(java)}\n{_java_version_text(java)}"
    return libs / f"{kind}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.jsa"


def _cds_plan(java: str, libs: Path, kind: str) -> tuple[list[str], Path | None, Path]:
    """JVM flags for `kind` ("kafka" or "storage"), the temp archive to publish, the final one."""
    archive = _cds_archive(java, libs, kind)
    if os.environ.get("CADENCE_KAFKA_CDS", "1") == "0":
        return [], None, archive
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}"], None, archive
    # Unique temp name: parallel first-time JVMs must not write into the same file.
    tmp = archive.with_name(f"{archive.name}.tmp-{uuid.uuid4().hex[:8]}")
    # -Xlog:cds=off: the dump lists hundreds of skipped classes, which would bury the lines
    # that matter at the tail of console.out.
    return [f"-XX:ArchiveClassesAtExit={tmp}", "-Xlog:cds=off"], tmp, archive


def _cds_publish(tmp: Path | None, final: Path, clean_exit: bool) -> None:
    """Move a freshly dumped archive into place, but only after an exit we saw complete.

    After SIGKILL (or a broker that died while nobody watched) the file may be truncated.
    """
    if tmp is None:
        return
    if clean_exit and tmp.exists() and tmp.stat().st_size > 0 and not final.exists():
        os.replace(tmp, final)
    tmp.unlink(missing_ok=True)


def _cds_pending(inst: Instance) -> Path:
    # The broker dumps its archive when it exits, which may be in another launcher process
    # (`make kafka-down`), so the temp path is remembered next to the pid file.
    return inst.root / "cds.pending"


def _cds_finish(inst: Instance, clean_exit: bool) -> None:
    pending = _cds_pending(inst)
    try:
        tmp_s, final_s = pending.read_text().split()
    except (OSError, ValueError):
        return
    _cds_publish(Path(tmp_s), Path(final_s), clean_exit)
    pending.unlink(missing_ok=True)


def _format_storage(inst: Instance, java: str, libs: Path) -> None:
    if (inst.data_dir / "meta.properties").exists():
        return
    if inst.cluster_id_file.exists():
        cluster_id = inst.cluster_id_file.read_text().strip()
    else:
        cluster_id = _new_cluster_id()
        inst.cluster_id_file.write_text(cluster_id + "\n")
    # Formatting runs for every fresh test broker, so it gets its own archive too.
    cds, tmp, archive = _cds_plan(java, libs, "storage")
    cmd = [
        java,
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={inst.log4j_config}",
        *cds,
        "-cp",
        str(libs / "*"),
        STORAGE_TOOL_MAIN,
        "format",
        "--cluster-id",
        cluster_id,
        "--config",
        str(inst.server_properties),
        "--ignore-formatted",
        *inst.format_args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    _cds_publish(tmp, archive, clean_exit=proc.returncode == 0)
    if proc.returncode != 0:
        raise LauncherError(
            f"formatting {inst.data_dir} failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
        )


# ------------------------------------------------------------------ process tracking


def _cmdline(pid: int) -> str | None:
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.exists():
        try:
            return proc.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return None
    try:  # macOS and other systems without /proc
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def running_pid(inst: Instance) -> int | None:
    """The pid from the pid file if that process is still *our* broker for *this* instance.

    The command line check matters: after a reboot the pid may belong to anything, and
    `down` must never signal a process it did not start.
    """
    try:
        pid = int(inst.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    cmdline = _cmdline(pid) or ""
    if BROKER_MAIN not in cmdline or str(inst.server_properties) not in cmdline:
        return None
    return pid


def _die_with_parent() -> None:
    """preexec hook: have Linux SIGTERM the broker if the process that started it dies.

    Used by the test fixture so a pytest killed with SIGKILL (or a crashed CI runner) does not
    leave a JVM holding ports and memory. Not used by `make kafka-up`, whose launcher exits.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class StartResult:
    bootstrap: str
    pid: int | None  # None: a broker we do not manage already served the port
    started: bool  # False: it was already running
    seconds: float


def start(inst: Instance, timeout: float = 90.0, die_with_parent: bool = False) -> StartResult:
    """Start the broker for `inst` unless it already runs; return once it serves metadata."""
    began = time.monotonic()
    java = find_java()
    libs = ensure_jars()
    inst.root.mkdir(parents=True, exist_ok=True)
    with _file_lock(inst.root / ".lock"):
        pid = running_pid(inst)
        if pid is not None:
            wait_ready(inst.host, inst.port, timeout, alive=lambda: _alive(pid))
            return StartResult(inst.bootstrap, pid, False, time.monotonic() - began)
        for port in (inst.port, inst.controller_port):
            if port_in_use(inst.host, port):
                if port == inst.port and speaks_kafka(inst.host, port):
                    # e.g. the docker compose broker: usable, but not ours to stop.
                    _log(
                        f"a Kafka broker not started by this launcher already serves {inst.bootstrap}; using it"
                    )
                    return StartResult(inst.bootstrap, None, False, time.monotonic() - began)
                raise LauncherError(
                    f"port {inst.host}:{port} is taken by another program; pick other ports "
                    "with CADENCE_KAFKA_PORT / CADENCE_KAFKA_CONTROLLER_PORT"
                )
        inst.data_dir.mkdir(parents=True, exist_ok=True)
        inst.log_dir.mkdir(parents=True, exist_ok=True)
        inst.server_properties.write_text(_server_properties(inst))
        inst.log4j_config.write_text(_log4j_properties(inst))
        _format_storage(inst, java, libs)
        _cds_finish(inst, clean_exit=False)  # left over from a broker that died unobserved

        cds, tmp, archive = _cds_plan(java, libs, "kafka")
        if tmp is not None:
            _cds_pending(inst).write_text(f"{tmp}\n{archive}\n")
        cmd = [
            *_jvm_args(inst, java, libs),
            *cds,
            BROKER_MAIN,
            str(inst.server_properties),
        ]
        console: IO[bytes]
        with open(inst.console_log, "ab") as console:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=inst.root,
                # Own session: Ctrl-C in the terminal that ran `make kafka-up` must not kill
                # the broker later, and closing that terminal must not SIGHUP it.
                start_new_session=True,
                preexec_fn=_die_with_parent
                if die_with_parent and sys.platform == "linux"
                else None,
            )
        _CHILDREN[proc.pid] = proc
        inst.pid_file.write_text(f"{proc.pid}\n")
        try:
            wait_ready(inst.host, inst.port, timeout, alive=lambda: proc.poll() is None)
        except LauncherError as exc:
            _terminate(proc.pid, 10.0)
            _cds_finish(inst, clean_exit=False)
            inst.pid_file.unlink(missing_ok=True)
            raise LauncherError(
                f"{exc}\n--- {inst.server_log} ---\n{_tail(inst.server_log)}"
                f"\n--- {inst.console_log} ---\n{_tail(inst.console_log)}"
            ) from None
    return StartResult(inst.bootstrap, proc.pid, True, time.monotonic() - began)


def speaks_kafka(host: str, port: int) -> bool:
    """True if host:port answers a Kafka metadata request right now."""
    try:
        probe(host, port, timeout=2.0)
    except (OSError, ConnectionError, struct.error):
        return False
    return True


_speaks_kafka = speaks_kafka  # early callers (tests/integration/collector_support.py) use this


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True if the process exited on its own."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # Kafka's shutdown hook does a clean controlled stop.
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    clean = not _alive(pid)
    if not clean:
        _log(f"broker pid {pid} ignored SIGTERM for {timeout:.0f}s; killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait()
    return clean


def stop(inst: Instance, timeout: float = 30.0, purge: bool = False) -> bool:
    """Stop the broker this launcher started for `inst`; True if one was running."""
    pid = running_pid(inst)
    if pid is not None:
        _cds_finish(inst, clean_exit=_terminate(pid, timeout))
    inst.pid_file.unlink(missing_ok=True)
    if purge:
        shutil.rmtree(inst.root, ignore_errors=True)
    return pid is not None


def _cmd_up(args: argparse.Namespace) -> int:
    inst = _instance_from_args(args)
    result = start(inst, timeout=args.timeout)
    if result.started:
        _log(f"started broker pid {result.pid} in {result.seconds:.1f}s (data: {inst.root})")
    elif result.pid is not None:
        _log(f"already running: pid {result.pid} (data: {inst.root})")
    print(result.bootstrap)
    return EXIT_OK


def _cmd_down(args: argparse.Namespace) -> int:
    inst = _instance_from_args(args)
    was_running = stop(inst, timeout=args.timeout, purge=args.purge)
    _log("stopped" if was_running else "not running")
    if args.purge:
        _log(f"removed {inst.root}")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    inst = _instance_from_args(args)
    pid = running_pid(inst)
    print(f"instance:   {inst.root}")
    print(f"bootstrap:  {inst.bootstrap}")
    print(f"pid:        {pid if pid is not None else '-'}")
    try:
        info = probe(inst.host, inst.port)
    except (OSError, ConnectionError, struct.error) as exc:
        print(f"answering:  no ({exc})")
        return EXIT_ERROR if pid is not None else EXIT_NOT_RUNNING
    owner = "started by this launcher" if pid is not None else "NOT started by this launcher"
    print(f"answering:  yes, cluster {info.cluster_id}, {len(info.brokers)} broker(s) ({owner})")
    return EXIT_OK


def _cmd_wait(args: argparse.Namespace) -> int:
    if args.bootstrap:
        host, _, port = args.bootstrap.rpartition(":")
        target = (host or "127.0.0.1", int(port))
    else:
        inst = _instance_from_args(args)
        target = (inst.host, inst.port)
    info = wait_ready(target[0], target[1], args.timeout)
    _log(f"{target[0]}:{target[1]} ready (cluster {info.cluster_id})")
    return EXIT_OK


def _cmd_jars(args: argparse.Namespace) -> int:
    print(ensure_jars())
    return EXIT_OK


def _instance_from_args(args: argparse.Namespace) -> Instance:
    return default_instance(
        name=args.name,
        root=Path(args.dir) if args.dir else None,
        port=args.port,
        controller_port=args.controller_port,
        heap=args.heap,
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--name",
        help="instance name, a directory under .cache/kafka/ (env CADENCE_KAFKA_NAME, default local)",
    )
    common.add_argument("--dir", help="instance directory (overrides --name)")
    common.add_argument(
        "--port", type=int, help="client port (env CADENCE_KAFKA_PORT, default 9092)"
    )
    common.add_argument(
        "--controller-port",
        type=int,
        help="KRaft controller port (env CADENCE_KAFKA_CONTROLLER_PORT, default 9093)",
    )
    common.add_argument("--heap", help="JVM heap, e.g. 512m (env CADENCE_KAFKA_HEAP)")

    parser = argparse.ArgumentParser(
        description=f"Local single-node Apache Kafka {KAFKA_VERSION} (KRaft) for cadence."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start the broker (idempotent)")
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
    up.set_defaults(func=_cmd_up)
    down = sub.add_parser("down", parents=[common], help="stop the broker this launcher started")
    down.add_argument("--timeout", type=float, default=30.0, help="seconds before SIGKILL")
    down.add_argument("--purge", action="store_true", help="also delete its data (reset)")
    down.set_defaults(func=_cmd_down)
    status = sub.add_parser("status", parents=[common], help="show pid and whether it answers")
    status.set_defaults(func=_cmd_status)
    wait = sub.add_parser("wait", parents=[common], help="wait until a broker serves metadata")
    wait.add_argument("--bootstrap", help="host:port to wait for (default: this instance)")
    wait.add_argument("--timeout", type=float, default=60.0)
    wait.set_defaults(func=_cmd_wait)
    jars = sub.add_parser("jars", help="fetch the broker jars with Maven (once)")
    jars.set_defaults(func=_cmd_jars)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except LauncherError as exc:
        _log(f"error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kafka_local.py status | head`: the reader has what it wanted; as the cadence CLI.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
