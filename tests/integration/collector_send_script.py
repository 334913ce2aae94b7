"""Send numbered batches through a BatchSender with a durable spool (run as a subprocess).

    python collector_send_script.py SPOOL BOOTSTRAP TOPIC DEVICE COUNT [FLUSH_S]

Prints ``spooled SEQ`` after each send, then ``remaining N next_seq S`` after flushing.
The outage test SIGKILLs it mid-way to prove the spool survives.
"""

from __future__ import annotations

import sys
import time

from collectors.delivery import BatchSender
from collectors.spool import SqliteSpool
from collectors.wire import EventBatch, KeyEvent


def make_batch(device: str, seq: int) -> EventBatch:
    now = time.time() * 1000.0
    events = tuple(KeyEvent("kd" if i % 2 == 0 else "ku", 10.0 + i, i % 13) for i in range(16))
    return EventBatch(device, "u" * 64, "s-1", seq, now, now - 1000.0, events)


def main() -> int:
    spool_path, bootstrap, topic, device, count = sys.argv[1:6]
    flush_s = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0
    sender = BatchSender(
        SqliteSpool(spool_path, fsync=True),
        bootstrap=bootstrap,
        topic=topic,
        extra_config={"reconnect.backoff.max.ms": 500},
    )
    for _ in range(int(count)):
        seq = sender.next_seq(device)
        sender.send(make_batch(device, seq))
        print(f"spooled {seq}", flush=True)
        sender.poll(0.005)
    remaining = sender.close(flush_s)
    print(f"remaining {remaining} next_seq {SqliteSpool(spool_path).next_seq(device)}", flush=True)
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
