"""Property tests of the raw-event wire contract: round trip, and every malformed variant rejected."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.keyclass import N_CLASSES
from collectors.wire import (
    MAX_CLOCK_OFFSET_MS,
    MAX_EVENTS_PER_BATCH,
    MIN_CLOCK_OFFSET_MS,
    EventBatch,
    KeyEvent,
    MouseEvent,
    UnsupportedSchemaVersion,
    WireError,
    _event,
    _plain_event,
    decode_batch,
    encode_batch,
)

NOW_MS = 1_763_900_000_000.0
t_ms = st.floats(min_value=0.0, max_value=500_000.0, allow_nan=False)
coord = st.integers(min_value=-5000, max_value=5000)
flags = st.integers(min_value=0, max_value=1)

key_events = st.builds(
    KeyEvent,
    kind=st.sampled_from(["kd", "ku"]),
    t_ms=t_ms,
    key_class=st.integers(min_value=0, max_value=N_CLASSES - 1),
    flags=flags,
    key_hash=st.none(),
)
mouse_events = st.one_of(
    st.builds(
        MouseEvent,
        kind=st.just("mm"),
        t_ms=t_ms,
        x=coord,
        y=coord,
        button=st.just(0),
        dx=st.just(0),
        dy=st.just(0),
        flags=flags,
    ),
    st.builds(
        MouseEvent,
        kind=st.sampled_from(["md", "mu"]),
        t_ms=t_ms,
        x=coord,
        y=coord,
        button=st.integers(min_value=0, max_value=3),
        dx=st.just(0),
        dy=st.just(0),
        flags=flags,
    ),
    st.builds(
        MouseEvent,
        kind=st.just("ms"),
        t_ms=t_ms,
        x=coord,
        y=coord,
        button=st.just(0),
        dx=coord,
        dy=coord,
        flags=flags,
    ),
)
identifiers = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64
)
batches = st.builds(
    EventBatch,
    device=identifiers,
    user=identifiers,
    session=identifiers,
    seq=st.integers(min_value=0, max_value=2**53),
    sent_at_ms=st.just(NOW_MS),
    clock_offset_ms=st.just(NOW_MS - 600_000.0),
    events=st.lists(st.one_of(key_events, mouse_events), max_size=40).map(tuple),
)


@given(batches)
def test_round_trip(batch: EventBatch) -> None:
    assert decode_batch(encode_batch(batch)) == batch


def test_key_identity_mode_carries_a_hash_never_a_character() -> None:
    batch = EventBatch(
        device="d",
        user="u",
        session="s",
        seq=0,
        sent_at_ms=NOW_MS,
        clock_offset_ms=NOW_MS - 1000,
        events=(KeyEvent("kd", 1.0, 1, 0, "ab" * 32),),
        key_identity=True,
    )
    assert decode_batch(encode_batch(batch)).events[0].key_hash == "ab" * 32
    raw = orjson.loads(encode_batch(batch))
    raw["events"][0][4] = "a"
    with pytest.raises(WireError, match=r"events\[0\]\[4\]"):
        decode_batch(orjson.dumps(raw))


def _valid() -> dict[str, Any]:
    return orjson.loads(
        encode_batch(
            EventBatch(
                device="dev",
                user="user",
                session="sess",
                seq=3,
                sent_at_ms=NOW_MS,
                clock_offset_ms=NOW_MS - 1000,
                events=(
                    KeyEvent("kd", 1.0, 2),
                    MouseEvent("md", 2.0, 10, 20, button=1),
                    MouseEvent("ms", 3.0, 1, 1, dx=0, dy=-1),
                ),
            )
        )
    )


# Each mutation breaks one thing; the decoder must name the field it broke.
MUTATIONS: list[tuple[str, Any, str]] = [
    ("v", None, "v"),
    ("v", "1", "v"),
    ("device", "", "device"),
    ("device", 5, "device"),
    ("user", "x" * 500, "user"),
    ("user", "a\nb", "user"),
    ("session", None, "session"),
    ("seq", -1, "seq"),
    ("seq", 1.5, "seq"),
    ("seq", True, "seq"),
    ("sent_at_ms", "now", "sent_at_ms"),
    ("sent_at_ms", 12.0, "sent_at_ms"),
    ("sent_at_ms", 1e300, "sent_at_ms"),
    ("clock_offset_ms", None, "clock_offset_ms"),
    ("v", True, "v"),  # True == 1: was accepted as schema version 1
    ("v", 1.0, "v"),
    ("key_identity", "yes", "key_identity"),
    ("events", {}, "events"),
    ("events", [[]], "events[0]"),
    ("events", [["zz", 1.0]], "events[0][0]"),
    ("events", [["kd", 1.0, 2]], "events[0]"),
    ("events", [["kd", -1.0, 2, 0]], "events[0][1]"),
    ("events", [["kd", 1e15, 2, 0]], "events[0][1]"),
    ("events", [["kd", 1.0, N_CLASSES, 0]], "events[0][2]"),
    ("events", [["kd", 1.0, 2, 0, "ab" * 32]], "events[0]"),
    ("events", [["mm", 1.0, "1", 2, 0]], "events[0][2]"),
    ("events", [["md", 1.0, 1, 2, 9, 0]], "events[0][4]"),
    ("events", [["ms", 1.0, 1, 2, 0, 1 << 30, 0]], "events[0][5]"),
    ("events", [["mm", 1.0, 1, 2, 256]], "events[0][4]"),
    ("events", [["mm", 0.0, 1, 2, 0], ["mm", 3_600_000.0, 1, 2, 0]], "events"),
    ("events", [["mm", 1.0, 1, 2, 0]] * (MAX_EVENTS_PER_BATCH + 1), "events"),
]


@pytest.mark.parametrize(("name", "value", "field"), MUTATIONS)
def test_malformed_batches_name_the_field(name: str, value: Any, field: str) -> None:
    raw = _valid()
    if value is None:
        del raw[name]
    else:
        raw[name] = value
    with pytest.raises(WireError) as info:
        decode_batch(orjson.dumps(raw))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("offset", "events"),
    [
        (-1e300, []),  # no events to check it against: was accepted, then applied to later ones
        (0.0, []),
        (MIN_CLOCK_OFFSET_MS - 1.0, []),
        (MAX_CLOCK_OFFSET_MS + 1.0, []),
        (NOW_MS - 1e20, [["kd", 1e20, 2, 0], ["ku", 1e20 + 80.0, 2, 0]]),
    ],
)
def test_an_implausible_clock_offset_is_rejected_with_or_without_events(
    offset: float, events: list[list[Any]]
) -> None:
    raw = _valid()
    raw["clock_offset_ms"] = offset
    raw["events"] = events
    with pytest.raises(WireError) as info:
        decode_batch(orjson.dumps(raw))
    assert info.value.field == "clock_offset_ms"


@pytest.mark.parametrize("offset", [MIN_CLOCK_OFFSET_MS, NOW_MS - 1e9, MAX_CLOCK_OFFSET_MS])
def test_plausible_clock_offsets_of_empty_batches_are_accepted(offset: float) -> None:
    raw = _valid()
    raw["clock_offset_ms"] = offset
    raw["events"] = []
    assert decode_batch(orjson.dumps(raw)).clock_offset_ms == offset


def test_unknown_schema_version_is_its_own_error() -> None:
    raw = _valid()
    raw["v"] = 2
    with pytest.raises(UnsupportedSchemaVersion):
        decode_batch(orjson.dumps(raw))


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_other_exceptions(data: bytes) -> None:
    try:
        batch = decode_batch(data)
    except WireError as exc:
        assert exc.field and exc.reason
    else:
        assert isinstance(batch, EventBatch)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.sampled_from(sorted(_valid())), json_values)
def test_any_field_replaced_by_any_json_is_decoded_or_rejected(name: str, value: Any) -> None:
    raw = _valid()
    raw[name] = value
    try:
        batch = decode_batch(orjson.dumps(raw))
    except WireError:
        return
    assert isinstance(batch, EventBatch)
    assert math.isfinite(batch.sent_at_ms)


# Rows near the valid ones: a valid row of each kind with up to two fields replaced by
# values on both sides of their bounds, of every type JSON carries, sometimes cut short or
# lengthened, so the fast path meets each way a row can be just wrong.
_VALID_ROWS = [
    ["kd", 1.0, 2, 0],
    ["ku", 7, 12, 1],
    ["mm", 5.0, 3, 4, 1],
    ["md", 2.0, 10, 20, 1, 0],
    ["mu", 2.5, -10, 20, 3, 255],
    ["ms", 3.0, 1, 1, 0, -1, 0],
    ["kd", 1.0, 2, 0, "ab" * 32],
]
# Values on both sides of every bound a row field has, and of every JSON type.
_BOUNDARY_VALUES: list[Any] = [
    *(0, 1, 2, 3, 4, 12, 13, 255, 256, -1, 1 << 20, (1 << 20) + 1, -(1 << 20), -(1 << 20) - 1),
    *(0.0, -0.0, 1.0, 1.5, -1.0, -0.5, 3.0, 1e15, 1e300, 2.0**60, 2_400_000_000_000.0),
    *("kd", "ku", "mm", "md", "mu", "ms", "zz", "", "ab" * 32, "AB" * 32),
    *(True, False, None, [], {}),
]
_near_values = st.one_of(
    st.sampled_from(_BOUNDARY_VALUES),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)


@st.composite
def _rows(draw: st.DrawFn) -> Any:
    row = list(draw(st.sampled_from(_VALID_ROWS)))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        row[draw(st.integers(min_value=0, max_value=len(row) - 1))] = draw(_near_values)
    resize = draw(st.sampled_from([0, 0, 0, -1, 1]))
    if resize < 0:
        row.pop()
    elif resize > 0:
        row.append(draw(_near_values))
    return row


@settings(max_examples=2000)
@given(st.one_of(_rows(), json_values), st.booleans(), st.sampled_from([NOW_MS - 1e3, 0.0]))
def test_fast_row_decoding_agrees_with_the_checked_one(
    row: Any, key_identity: bool, clock_offset_ms: float
) -> None:
    """``_plain_event`` returns exactly the checked decoder's event, or defers to it."""
    _agree(orjson.loads(orjson.dumps(row)), key_identity, clock_offset_ms)


def _agree(row: Any, key_identity: bool, clock_offset_ms: float) -> None:
    fast = _plain_event(row, key_identity, clock_offset_ms)
    try:
        checked = _event(0, row, key_identity, clock_offset_ms)
    except WireError:
        assert fast is None
        return
    if fast is not None:
        assert fast == checked
        assert type(fast) is type(checked)
        assert [type(v) for v in fast] == [type(v) for v in checked]


@pytest.mark.parametrize("key_identity", [False, True])
@pytest.mark.parametrize("clock_offset_ms", [NOW_MS - 1e3, 0.0])
def test_fast_row_decoding_agrees_on_every_single_field_change(
    key_identity: bool, clock_offset_ms: float
) -> None:
    """Each field of each kind of row set to each boundary value, one at a time."""
    for valid in _VALID_ROWS:
        for i in range(len(valid)):
            for value in _BOUNDARY_VALUES:
                _agree([*valid[:i], value, *valid[i + 1 :]], key_identity, clock_offset_ms)


def test_fast_path_takes_the_rows_collectors_send() -> None:
    """The rows a collector writes never reach the slow path (that is the speed-up)."""
    for row in _VALID_ROWS[:5]:
        assert _plain_event(row, False, NOW_MS - 1000) is not None
