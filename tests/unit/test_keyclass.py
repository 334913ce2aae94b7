"""The key-class table: every letter lands in a class shared with other letters."""

from __future__ import annotations

import enum
import string
from collections import defaultdict
from dataclasses import dataclass

from collectors.capture import Capture, _key_class_and_identity
from collectors.keyclass import (
    CLASS_CODES,
    CLASS_NAMES,
    N_CLASSES,
    OTHER,
    classify,
    classify_char,
    classify_named,
)
from collectors.wire import FLAG_INJECTED, Event, KeyEvent, MouseEvent


def test_no_letter_is_alone_in_its_class() -> None:
    members: dict[int, set[str]] = defaultdict(set)
    for letter in string.ascii_lowercase:
        members[classify_char(letter)].add(letter)
    for code, letters in members.items():
        assert len(letters) >= 2, f"class {CLASS_NAMES[code]} holds only {letters}"
    # Digits share one class too, so a PIN or account number cannot be read back.
    assert len({classify_char(d) for d in string.digits}) == 1


def test_letter_zones() -> None:
    assert {classify_char(c) for c in "qwert"} == {CLASS_CODES["L_top"]}
    assert {classify_char(c) for c in "asdfg"} == {CLASS_CODES["L_home"]}
    assert {classify_char(c) for c in "zxcvb"} == {CLASS_CODES["L_bottom"]}
    assert {classify_char(c) for c in "yuiop"} == {CLASS_CODES["R_top"]}
    assert {classify_char(c) for c in "hjkl"} == {CLASS_CODES["R_home"]}
    assert {classify_char(c) for c in "nm"} == {CLASS_CODES["R_bottom"]}
    assert classify_char("Q") == classify_char("q")


def test_everything_else() -> None:
    assert {classify_char(c) for c in "0123456789"} == {CLASS_CODES["digit"]}
    assert classify_char(" ") == CLASS_CODES["space"]
    assert {classify_char(c) for c in "éßж,.;!"} == {OTHER}
    assert classify_char("ab") == OTHER
    assert classify_named("shift_r") == CLASS_CODES["modifier"]
    assert classify_named("BackSpace") == CLASS_CODES["erase"]
    assert classify_named("page_down") == CLASS_CODES["navigation"]
    assert classify_named("f5") == OTHER
    assert classify("<100>") == CLASS_CODES["digit"]
    assert all(0 <= classify_char(chr(i)) < N_CLASSES for i in range(0x3000))


class FakeKey(enum.Enum):  # stands in for pynput.keyboard.Key
    space = 1
    shift_r = 2


@dataclass
class FakeKeyCode:  # stands in for pynput.keyboard.KeyCode
    char: str | None = None
    vk: int | None = None


def test_capture_reduces_pynput_keys() -> None:
    assert _key_class_and_identity(FakeKey.space) == (CLASS_CODES["space"], "Key.space")
    assert _key_class_and_identity(FakeKeyCode("Q"))[0] == CLASS_CODES["L_top"]
    assert _key_class_and_identity(FakeKeyCode(None, 65))[0] == OTHER
    assert _key_class_and_identity(None)[0] == OTHER


def test_capture_callbacks_emit_only_classes() -> None:
    out: list[Event] = []
    cap = Capture(out.append)
    cap.on_press(FakeKeyCode("z"), True)
    cap.on_release(FakeKeyCode("z"))
    cap.on_move(10.7, 20.2)
    cap.on_move(11, 21)  # same millisecond (almost surely): coalesced
    kd, ku = out[0], out[1]
    assert isinstance(kd, KeyEvent) and kd.kind == "kd" and kd.flags == FLAG_INJECTED
    assert kd.key_class == CLASS_CODES["L_bottom"] and kd.key_hash is None
    assert isinstance(ku, KeyEvent) and ku.flags == 0 and ku.t_ms >= kd.t_ms
    assert "z" not in repr(out)
    assert isinstance(out[2], MouseEvent) and (out[2].x, out[2].y) == (10, 20)
    assert len([e for e in out if e.kind == "mm"]) in (1, 2)
