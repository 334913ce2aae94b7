"""The takeover evaluation's background: fitted on enrolment segments, never on held-out data."""

from __future__ import annotations

import dataclasses

import numpy as np

from profiles.background import Background, fit_keystrokes
from profiles.evaluation.takeover import Account, enrolment_background, split_by_time
from profiles.keystrokes import KeystrokeEvents


def _typing(presses: int, flight_ms: float, seed: int) -> KeystrokeEvents:
    rng = np.random.default_rng(seed)
    down = np.cumsum(rng.gamma(8.0, flight_ms / 8.0, presses))
    up = down + rng.gamma(20.0, 4.0, presses)
    t = np.concatenate([down, up])
    order = np.argsort(t, kind="stable")
    key_class = np.tile(rng.integers(0, 8, presses).astype(np.int8), 2)
    is_down = np.r_[np.ones(presses, bool), np.zeros(presses, bool)]
    return KeystrokeEvents(t[order], is_down[order], key_class[order])


def _accounts(held_out_flight_ms: float) -> list[Account]:
    accounts = []
    for i, flight in enumerate((120.0, 220.0, 340.0)):
        recording = _typing(2000, flight, seed=i)
        account = split_by_time(f"u{i}", [("facebook", recording)], 5.0)
        # The held-out part typed another way: it must not move the population.
        faster = _typing(2000, held_out_flight_ms, seed=10 + i)
        other = split_by_time(f"u{i}", [("facebook", faster)], 5.0)
        accounts.append(dataclasses.replace(account, genuine=other.genuine))
    return accounts


def test_only_the_enrolment_segments_train_the_population() -> None:
    shipped = Background.default()
    a = enrolment_background(_accounts(60.0), [], shipped)
    b = enrolment_background(_accounts(900.0), [], shipped)
    assert a.keystrokes.to_bytes() == b.keystrokes.to_bytes()
    assert a.keystrokes.to_bytes() != shipped.keystrokes.to_bytes()
    # Exactly the enrolment windows, joined back into their recordings.
    enrolled = [
        KeystrokeEvents(
            np.concatenate([w.t_ms for w in seg.windows]),
            np.concatenate([w.is_down for w in seg.windows]),
            np.concatenate([w.key_class for w in seg.windows]),
        )
        for account in _accounts(60.0)
        for seg in account.enroll
    ]
    assert a.keystrokes.to_bytes() == fit_keystrokes(enrolled).to_bytes()
    assert a.mouse is shipped.mouse  # no pointing judged: the shipped population stays
