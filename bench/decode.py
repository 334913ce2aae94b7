#!/usr/bin/env python3
"""CPU cost of the wire decode per event: ``decode_batch`` and orjson's parse alone.

The records are the simulator's (``collectors.simulate.Workload``, the same people and
batching as ``cadence bench pipeline``), encoded once; the figure is the minimum over
``--repeat`` passes of process time, so other work on a shared machine inflates it less.

    .venv/bin/python bench/decode.py [--users 200 --seconds 30 --repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collectors.simulate import Workload  # noqa: E402
from collectors.wire import decode_batch, encode_batch  # noqa: E402


def min_cpu_seconds(records: list[bytes], decode: Callable[[bytes], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for record in records:
            decode(record)
        best = min(best, time.process_time() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workload = Workload(args.users, seed=0, run="bench-decode", start_wall_ms=1.7e12)
    records = [encode_batch(batch) for _, batch in workload.batches(until_s=args.seconds)]
    events = sum(len(decode_batch(record).events) for record in records)
    print(f"{len(records)} records, {events} events ({events / len(records):.1f} per record)")
    for name, decode in (("decode_batch", decode_batch), ("orjson.loads only", orjson.loads)):
        seconds = min_cpu_seconds(records, decode, args.repeat)
        print(f"{name}: {seconds / events * 1e6:.3f} µs per event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
