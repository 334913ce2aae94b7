#!/usr/bin/env python3
"""Poisoning through gated learning: an abrupt takeover, and a slow morph.

Offline measurement behind docs/evaluation.md, "Poisoning by slow drift". Simulated
personas (``collectors.persona``), judged by the worker's own ``Pipeline``: an account
enrols on its owner for an hour (six 10-minute sessions), then

* ``abrupt``: another persona types and points under it for an hour; per attacker, the
  windows until the first ``impostor`` verdict and how many of them the profile learned;
* ``morph``: the owner's parameters move to the attacker's in steps of one minute over
  ``--minutes`` minutes (linear interpolation of every persona parameter), then the
  attacker alone for 30 minutes, then the owner again for 30 minutes.

    .venv/bin/python bench/poisoning.py abrupt --attackers 12
    .venv/bin/python bench/poisoning.py morph --minutes 6 30 120 --attackers 3 9 11
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streams.judge as judge  # noqa: E402
from collectors.persona import Persona  # noqa: E402
from collectors.simulate import Workload, persona_seed  # noqa: E402
from profiles.user import Assessment  # noqa: E402
from streams.pipeline import Pipeline  # noqa: E402
from streams.verdict import Verdict  # noqa: E402

OWNER = persona_seed(11, 0)
CLOCK_OFFSET_MS = 1.7e12 - 1e9
LEVELS = ("trusted", "uncertain", "suspicious", "impostor")
Judged = tuple[Verdict, Assessment]

# The assessments behind the verdicts (whether each window was learned), in order.
_assessed: list[Assessment] = []
_assess_many = judge.assess_many


def _recording(windows: Any) -> list[Assessment]:
    out = _assess_many(windows)
    _assessed.extend(out)
    return out


judge.assess_many = _recording  # type: ignore[assignment]


def blend(a: Persona, b: Persona, f: float) -> Persona:
    """``a`` moved a fraction ``f`` of the way to ``b``, every parameter alike."""
    values = {
        field.name: getattr(a, field.name)
        if field.name == "seed"
        else (1 - f) * getattr(a, field.name) + f * getattr(b, field.name)
        for field in dataclasses.fields(Persona)
    }
    return Persona(**values)


class Account:
    """One account's device stream, judged as the worker judges it."""

    def __init__(self) -> None:
        self.pipeline: Pipeline[None] = Pipeline(lambda user: None)
        self.seq = 0
        self.t_ms = 0.0

    def use(self, persona: Persona, seconds: float, session: str, seed: int) -> list[Judged]:
        workload = Workload(users=1, seed=seed, start_wall_ms=1.7e12)
        workload.users[0] = dataclasses.replace(workload.users[0], persona=persona)
        batches = [b for _, b in workload.batches(until_s=seconds)]
        first = min((e.t_ms for b in batches for e in b.events), default=0.0)
        shift = self.t_ms - first + 1000.0
        out: list[Judged] = []
        for b in batches:
            events = tuple(e._replace(t_ms=e.t_ms + shift) for e in b.events)
            if events:
                self.t_ms = max(self.t_ms, max(e.t_ms for e in events))
            batch = dataclasses.replace(
                b,
                user="victim",
                device="desk",
                session=session,
                seq=self.seq,
                clock_offset_ms=CLOCK_OFFSET_MS,
                sent_at_ms=CLOCK_OFFSET_MS + self.t_ms + 5.0,
                events=events,
            )
            self.seq += 1
            before = len(_assessed)
            verdicts = [j.verdict for j in self.pipeline.add(batch, None)[1] if j.verdict]
            out += zip(verdicts, _assessed[before:], strict=True)
        return out


def enrolled() -> tuple[Account, Persona]:
    account, owner = Account(), Persona.from_seed(OWNER)
    judged: list[Judged] = []
    for s in range(6):
        judged += account.use(owner, 600, f"owner-{s}", 1000 + s)
    assert judged[-1][0].enrollment == "active", "the owner did not finish enrolling"
    return account, owner


def summary(judged: Sequence[Judged]) -> str:
    levels = [v.level for v, _ in judged]
    learned = sum(a.learned for _, a in judged)
    counts = " ".join(f"{level} {levels.count(level)}" for level in LEVELS)
    return (
        f"{len(judged)} windows, {learned} learned ({learned / max(1, len(judged)):.0%}); {counts}"
    )


def abrupt(attackers: int) -> None:
    print("attacker  windows to impostor  learned before it  learned in the hour")
    for i in range(attackers):
        account, _ = enrolled()
        attacker = Persona.from_seed(persona_seed(99, i))
        judged: list[Judged] = []
        for s in range(6):  # the owner's last session first, as at an unlocked desk
            judged += account.use(attacker, 600, "owner-5" if s == 0 else f"other-{s}", 5000 + s)
        levels = [v.level for v, _ in judged]
        first = levels.index("impostor") if "impostor" in levels else None
        before = sum(a.learned for _, a in judged[: len(judged) if first is None else first])
        learned = sum(a.learned for _, a in judged)
        shown = "never" if first is None else str(first + 1)
        print(f"{i:8d}  {shown:>19s}  {before:17d}  {learned:7d} of {len(judged)}")


def morph(minutes: Sequence[int], attackers: Sequence[int]) -> None:
    for k in minutes:
        for i in attackers:
            account, owner = enrolled()
            attacker = Persona.from_seed(persona_seed(99, i))
            during: list[Judged] = []
            for step in range(k):
                persona = blend(owner, attacker, (step + 1) / k)
                during += account.use(persona, 60, f"morph-{step // 10}", 7000 + step)
            then: list[Judged] = []
            for s in range(3):
                then += account.use(attacker, 600, f"attacker-{s}", 9000 + s)
            back: list[Judged] = []
            for s in range(3):
                back += account.use(owner, 600, f"back-{s}", 9100 + s)
            print(f"morph over {k} min to attacker {i}")
            print(f"  during the morph:    {summary(during)}")
            print(f"  the attacker, 30 min: {summary(then)}")
            print(f"  the owner, 30 min:    {summary(back)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    a = sub.add_parser("abrupt")
    a.add_argument("--attackers", type=int, default=12)
    m = sub.add_parser("morph")
    m.add_argument("--minutes", type=int, nargs="+", default=[6, 30, 120])
    m.add_argument("--attackers", type=int, nargs="+", default=[3, 9, 11])
    args = parser.parse_args(argv)
    if args.what == "abrupt":
        abrupt(args.attackers)
    else:
        morph(args.minutes, args.attackers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
