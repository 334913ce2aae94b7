"""Key classes: the only thing about a key that ever leaves the capture callback.

A key is reduced, at capture time, to one of a few coarse classes. Letters are
grouped by keyboard zone (hand x row of a standard QWERTY layout), because the
latency between zones carries most of a typist's rhythm, while a zone holds
several letters, so the typed text cannot be read back. Every other key falls
into a functional class.

| code | name        | keys                                         |
|------|-------------|----------------------------------------------|
| 0    | `L_top`     | q w e r t                                    |
| 1    | `L_home`    | a s d f g                                    |
| 2    | `L_bottom`  | z x c v b                                    |
| 3    | `R_top`     | y u i o p                                    |
| 4    | `R_home`    | h j k l                                      |
| 5    | `R_bottom`  | n m                                          |
| 6    | `digit`     | 0-9 on the main row and the keypad           |
| 7    | `space`     | space                                        |
| 8    | `enter`     | enter / return                               |
| 9    | `erase`     | backspace, delete                            |
| 10   | `modifier`  | shift, ctrl, alt, alt_gr, cmd, caps lock     |
| 11   | `navigation`| arrows, home, end, page up/down, tab         |
| 12   | `other`     | punctuation, function keys, anything else    |

Non-Latin letters and accented letters are `other` on purpose: a rare class
would make single characters identifiable.

>>> classify("'a'"), classify("Key.space"), classify("Key.backspace")
(1, 7, 9)
>>> CLASS_NAMES[classify("'P'")]
'R_top'
"""

from __future__ import annotations

from typing import Final

CLASS_NAMES: Final[tuple[str, ...]] = (
    "L_top",
    "L_home",
    "L_bottom",
    "R_top",
    "R_home",
    "R_bottom",
    "digit",
    "space",
    "enter",
    "erase",
    "modifier",
    "navigation",
    "other",
)
N_CLASSES: Final = len(CLASS_NAMES)
CLASS_CODES: Final[dict[str, int]] = {name: code for code, name in enumerate(CLASS_NAMES)}

ERASE: Final = CLASS_CODES["erase"]
SPACE: Final = CLASS_CODES["space"]
OTHER: Final = CLASS_CODES["other"]

_LETTER_ZONES: Final[dict[str, int]] = {
    **dict.fromkeys("qwert", 0),
    **dict.fromkeys("asdfg", 1),
    **dict.fromkeys("zxcvb", 2),
    **dict.fromkeys("yuiop", 3),
    **dict.fromkeys("hjkl", 4),
    **dict.fromkeys("nm", 5),
}

_NAMED_KEYS: Final[dict[str, int]] = {
    "space": SPACE,
    "enter": CLASS_CODES["enter"],
    "backspace": ERASE,
    "delete": ERASE,
    **dict.fromkeys(
        (
            "shift",
            "shift_l",
            "shift_r",
            "ctrl",
            "ctrl_l",
            "ctrl_r",
            "alt",
            "alt_l",
            "alt_r",
            "alt_gr",
            "cmd",
            "cmd_l",
            "cmd_r",
            "caps_lock",
        ),
        CLASS_CODES["modifier"],
    ),
    **dict.fromkeys(
        ("up", "down", "left", "right", "home", "end", "page_up", "page_down", "tab"),
        CLASS_CODES["navigation"],
    ),
}


def classify_char(char: str) -> int:
    """Class of a printable character (as produced by a key press)."""
    if len(char) != 1:
        return OTHER
    lower = char.lower()
    if lower in _LETTER_ZONES:
        return _LETTER_ZONES[lower]
    if char.isdigit() and char.isascii():
        return CLASS_CODES["digit"]
    if char == " ":
        return SPACE
    return OTHER


def classify_named(name: str) -> int:
    """Class of a named (non-character) key, e.g. ``space`` or ``shift_r``."""
    return _NAMED_KEYS.get(name.lower(), OTHER)


def classify(pynput_repr: str) -> int:
    """Class of a key as pynput prints it: ``'a'``, ``Key.space``, ``<65>``.

    Used by the dataset replayers; the live agent calls :func:`classify_char`
    and :func:`classify_named` on pynput's key objects directly.
    """
    text = pynput_repr.strip()
    if text.startswith("Key."):
        return classify_named(text[4:])
    if len(text) >= 3 and text[0] == text[-1] and text[0] in "'\"":
        return classify_char(text[1:-1])
    if text.startswith("<") and text.endswith(">"):
        vk = text[1:-1]
        # Keypad digits arrive as virtual-key codes 96-105 on Windows captures.
        if vk.isdigit() and 96 <= int(vk) <= 105:
            return CLASS_CODES["digit"]
        return OTHER
    if len(text) == 1:
        return classify_char(text)
    return OTHER
