"""Capture agent footprint: CPU % of one core and RSS under continuous typing and mousing.

Runs the real ``cadence collect`` (durable spool, fsync on, a real broker) under Xvfb
while xdotool types and moves the pointer without pause, and samples the agent's
/proc entries. Not a test: it prints a summary and writes JSON.

    python bench/collector_footprint.py --bootstrap 127.0.0.1:9092 [--seconds 30]

``--bare pynput`` measures, under the same input, a bare pynput keyboard + mouse
listener whose callbacks only count: the floor of capturing through pynput at all.
``--bare xrecord`` does the same for the agent's own X11 reader
(``collectors.capture.XRecordInput``). No broker is needed for either. ``--idle``
drives no input (an idle desk); ``--agent-arg=--no-fsync`` (repeatable) passes flags
to the agent; ``--py-spy FILE`` also samples the agent (which then costs more).
CPU counts the agent's children (its ``loginctl`` polls) and is split per thread.

Needs Xvfb and xdotool (``make x11-tools``) and a broker (``make kafka-up``).
Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TEXT = (
    "thank you for calling, could you confirm the last four digits of the account and "
    "the postcode please, i will check the balance and the recent payments for you now "
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_display() -> int:
    for n in range(120, 400):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise SystemExit("no free X display")


def cpu_seconds(pid: int) -> float:
    # Fields after the ")" of the command name: utime, stime, cutime, cstime are fields
    # 14-17. Children count too: the agent polls `loginctl` for screen unlocks.
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (librdkafka names its threads rdk:*; Python's are all
    the interpreter's name): shows the split between our threads and the Kafka client's."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def voluntary_switches(pid: int) -> int:
    """Times the agent's threads went to sleep and were woken: its wake-ups, whatever the
    machine's load (CPU % on a shared machine is not)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except OSError:
            continue  # the thread ended meanwhile
    return total


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(cadence_collector_\w+?)(?:_total)? ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


# A listener that does nothing but count; SIGUSR1 prints the count (the bench reads
# it at the start and end of the measured window).
BARE_LISTENER = """
import signal, sys, threading
n = [0]
def count(*args):
    n[0] += 1
if sys.argv[1] == "pynput":
    from pynput import keyboard, mouse
    listeners = [keyboard.Listener(on_press=count, on_release=count),
                 mouse.Listener(on_move=count, on_click=count, on_scroll=count)]
else:
    from collectors.capture import XRecordInput
    from collectors.wire import KeyEvent
    def count_burst(events):
        n[0] += len(events)
    listeners = [XRecordInput(count_burst, lambda kind, key, t, flags: KeyEvent(kind, t, 12))]
for listener in listeners:
    listener.start()
for listener in listeners:
    listener.wait()
signal.signal(signal.SIGUSR1, lambda *a: print(n[0], flush=True))
print("ready", flush=True)
threading.Event().wait()
"""


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[Any]:
    """Sample ``pid`` without stopping it (``--nonblocking``): where its CPU goes, by line."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200"]
        + ["--nonblocking", "--threads", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL,
    )


def mouse_script(seconds: float) -> list[str]:
    """One long xdotool chain: a move every 5 ms along a circle, no process per move."""
    import math

    args: list[str] = []
    steps = int(seconds / 0.005)
    for i in range(steps):
        a = i / 200 * 2 * math.pi
        args += ["mousemove", str(int(640 + 300 * math.cos(a))), str(int(400 + 250 * math.sin(a)))]
        args += ["sleep", "0.005"]
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bootstrap", default=os.environ.get("CADENCE_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--type-delay-ms", type=int, default=80, help="xdotool delay between keys")
    parser.add_argument(
        "--bare",
        choices=("pynput", "xrecord"),
        help="measure a bare listener that only counts events instead of the agent",
    )
    parser.add_argument(
        "--idle", action="store_true", help="no input at all: what an idle desk costs"
    )
    parser.add_argument(
        "--agent-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `cadence collect` (repeatable), e.g. --agent-arg=--no-fsync",
    )
    parser.add_argument("--out", type=Path, help="JSON result (default bench/results/...)")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="also sample the agent with py-spy over the window (collapsed stacks to FILE); "
        "the sampling costs CPU of its own, so the figure of such a run is not the footprint",
    )
    args = parser.parse_args()
    if args.out is None:
        name = f"collector_floor_{args.bare}" if args.bare else "collector_footprint"
        name += "_idle" if args.idle else ""
        args.out = REPO_ROOT / "bench" / "results" / f"{name}.json"
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run `make x11-tools`")

    n = free_display()
    display = f":{n}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
    state = Path(tempfile.mkdtemp(prefix="cadence-footprint-"))
    procs: list[subprocess.Popen[Any]] = [xvfb]
    try:
        while not Path(f"/tmp/.X11-unix/X{n}").exists():
            time.sleep(0.05)
        env = {
            **os.environ,
            "DISPLAY": display,
            "CADENCE_PSEUDONYM_KEY": os.environ.get(
                "CADENCE_PSEUDONYM_KEY", "footprint-bench-secret-0000"
            ),
            "PYTHONPATH": str(REPO_ROOT),
        }
        with socket_port() as port:
            metrics_port = port
        agent: subprocess.Popen[Any]
        if args.bare:
            agent = subprocess.Popen(
                [sys.executable, "-c", BARE_LISTENER, args.bare],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            procs.append(agent)
            assert agent.stdout is not None
            if agent.stdout.readline().strip() != "ready":
                raise SystemExit("bare listener did not start")

            def counted() -> dict[str, float]:
                agent.send_signal(signal.SIGUSR1)
                assert agent.stdout is not None
                return {"cadence_collector_events_captured": float(agent.stdout.readline())}

            sample = counted
        else:
            # Topics are never auto-created: on a fresh broker the agent would only
            # count delivery errors (and spool everything).
            sys.path.insert(0, str(REPO_ROOT))
            from streams.admin import create_topics

            create_topics({"bootstrap.servers": args.bootstrap})
            log = open(state / "agent.log", "w")  # noqa: SIM115 - closed with the agent below
            agent = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "collect", "--bootstrap", args.bootstrap]
                + [
                    "--state-dir",
                    str(state),
                    "--metrics-port",
                    str(metrics_port),
                    "--log-level",
                    "WARNING",
                    *args.agent_arg,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append(agent)
            deadline = time.monotonic() + 30
            while True:
                try:
                    scrape(metrics_port)
                    break
                except OSError:
                    if agent.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(
                            "agent did not start:\n" + (state / "agent.log").read_text()
                        ) from None
                    time.sleep(0.1)

            def sample() -> dict[str, float]:
                return scrape(metrics_port)

        total = args.warmup + args.seconds + 2
        reps = int(total * 1000 / args.type_delay_ms / len(TEXT)) + 1
        if not args.idle:
            typing = subprocess.Popen(
                ["xdotool", "type", "--delay", str(args.type_delay_ms), TEXT * reps],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            mouse = subprocess.Popen(
                ["xdotool", *mouse_script(total)], env=env, stdout=subprocess.DEVNULL
            )
            procs += [typing, mouse]

        time.sleep(args.warmup)
        load_before = os.getloadavg()
        before = sample()
        threads0 = thread_cpu_seconds(agent.pid)
        switches0 = voluntary_switches(agent.pid)
        cpu0, t0 = cpu_seconds(agent.pid), time.monotonic()
        spy = py_spy(agent.pid, args.seconds, args.py_spy) if args.py_spy else None
        rss: list[int] = []
        while time.monotonic() - t0 < args.seconds:
            rss.append(rss_bytes(agent.pid))
            time.sleep(0.5)
        cpu1, t1 = cpu_seconds(agent.pid), time.monotonic()
        threads1 = thread_cpu_seconds(agent.pid)
        switches1 = voluntary_switches(agent.pid)
        if spy is not None:
            spy.wait(60)  # it writes its output after the duration; before the agent stops
        after = sample()
        load_after = os.getloadavg()
        wall = t1 - t0
        events = after.get("cadence_collector_events_captured", 0) - before.get(
            "cadence_collector_events_captured", 0
        )
        batches = after.get("cadence_collector_batches_sent", 0) - before.get(
            "cadence_collector_batches_sent", 0
        )
        result = {
            "measured": "bare " + args.bare + " listener" if args.bare else "cadence collect",
            "seconds": round(wall, 2),
            "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / wall, 2),
            "cpu_percent_by_thread": {
                name: round(100 * (threads1[name] - threads0.get(name, 0.0)) / wall, 2)
                for name in sorted(threads1)
            },
            "wakeups_per_s": round((switches1 - switches0) / wall, 1),
            "rss_mib_max": round(max(rss) / 2**20, 1),
            "rss_mib_mean": round(sum(rss) / len(rss) / 2**20, 1),
            "events_per_s": round(events / wall, 1),
            "batches_per_s": round(batches / wall, 2),
            "spool_batches_at_end": after.get("cadence_collector_spool_batches"),
            "delivery_errors": after.get("cadence_collector_delivery_errors"),
            "type_delay_ms": None if args.idle else args.type_delay_ms,
            "mouse_move_interval_ms": None if args.idle else 5,
            "spool": None
            if args.bare
            else "memory"
            if "--memory-spool" in args.agent_arg
            else "sqlite, fsync " + ("off" if "--no-fsync" in args.agent_arg else "on"),
            "agent_args": args.agent_arg,
            # The machine may be shared: the 1-minute load average around the window.
            "loadavg_1m": [round(load_before[0], 2), round(load_after[0], 2)],
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        }
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(state, ignore_errors=True)

    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


class socket_port:
    """A free TCP port on loopback (closed before use; fine for a benchmark)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


if __name__ == "__main__":
    sys.exit(main())
