"""Batches signed with their user's key, so that a desk can write its own user's batches only.

Any collector credential can write any record to the events topic (Kafka's ACLs know
topics, not record keys), so without this a credential taken from one desk writes
batches under any user pseudonym: someone else's timing fed to a victim's profile for
hours (docs/evaluation.md, "Poisoning by slow drift"), a victim's session muted by a
sequence number far ahead, made-up users by the thousand. With it, each batch carries
the ``cadence-mac`` header, HMAC-SHA256 of the record's value under the user's key, and
a worker set to ``CADENCE_BATCH_AUTH=require`` refuses a batch whose tag is missing or
wrong (a dead letter, reason ``unauthenticated``).

A user's key is derived from a signing secret that only the operator and the workers
hold, ``HMAC-SHA256(secret, "cadence-user-key-v1" NUL pseudonym)``, so a worker derives
it again for each batch and keeps no key table. The operator issues each user's key
(``cadence keys issue``) into that user's profile on the desks they use, readable by
them only; the agent runs as the user and reads it (``CADENCE_USER_KEY_FILE``). The value
signed holds the user, device, session and sequence number: a tag fits one batch only,
and a batch replayed whole is a duplicate the worker drops.

The secret file may hold several secrets, one per line: the first is the current one
(keys are issued from it), the others are retiring, still accepted so that a secret is
rotated without refusing the desks whose keys are not reissued yet.

One user's key is revoked without touching anyone else's by its *generation*. Generation
0 is the key above, and its tag ``v1:`` + MAC; generation g >= 1 is
``HMAC-SHA256(secret, "cadence-user-key-v1-gen" NUL g NUL pseudonym)`` (g in decimal),
tagged ``v1g<g>:`` + MAC. The worker refuses a tag whose generation is below the user's
minimum (its revocation list, streams.revocations): ``revoked``. The generation a tag
names cannot be forged into use: its MAC is checked under that generation's key, which
only the secret gives. A desk learns its generation from its key file (``g<g>:`` before
the hex; a file of plain hex is generation 0, as every key issued before).

>>> secret, retiring = bytes(range(32)), bytes(range(1, 33))
>>> alice, bob = "a" * 64, "b" * 64
>>> tag = sign(user_key(secret, alice), b'{"v":1}')
>>> check((secret,), alice, b'{"v":1}', [(MAC_HEADER, tag)])
'current'
>>> check((retiring, secret), alice, b'{"v":1}', [(MAC_HEADER, tag)])  # rotation begun
'retiring'
>>> check((secret,), bob, b'{"v":1}', [(MAC_HEADER, tag)])  # alice's key, bob's batch
'invalid'
>>> check((secret,), alice, b'{"v":2}', [(MAC_HEADER, tag)])  # another value
'invalid'
>>> check((secret,), alice, b'{"v":1}', [("cadence-schema", b"1")])
'missing'
>>> check((secret,), alice, b'{"v":1}', [(MAC_HEADER, tag)], min_generation=1)  # revoked
'revoked'
>>> new = sign(user_key(secret, alice, 1), b'{"v":1}', 1)
>>> new[:5], check((secret,), alice, b'{"v":1}', [(MAC_HEADER, new)], min_generation=1)
(b'v1g1:', 'current')
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

MAC_HEADER = "cadence-mac"
USER_KEY_FILE_ENV = "CADENCE_USER_KEY_FILE"
SECRET_FILE_ENV = "CADENCE_BATCH_AUTH_SECRET_FILE"
#: A secret or a key shorter than this is refused: it would not be one.
MIN_SECRET_BYTES = 16
_KEY_LABEL = b"cadence-user-key-v1\x00"
# Line widths at which tools wrap plain hex (xxd -p: 60 digits; basenc --base16: 76).
_WRAP_WIDTHS = (60, 76)
# Generations >= 1 under a label of their own: no pseudonym of generation 0 can spell
# another generation's input (the labels differ at byte 19, NUL against "-").
_GENERATION_KEY_LABEL = b"cadence-user-key-v1-gen\x00"
# Versioned, so that another MAC scheme can be told apart from this one later.
_TAG_PREFIX = b"v1:"
#: Key generations are 0..MAX_GENERATION: six digits at most in a tag or a key file, so
#: that reading one never parses an unbounded number.
MAX_GENERATION = 999_999
#: A generation >= 1 as a tag, a key file or the revocation file spells it: one spelling
#: per generation (no leading zero, no sign), so that each has one reading only.
GENERATION_DIGITS = "[1-9][0-9]{0,5}"
_GENERATION_TAG = re.compile(b"v1g(%s):" % GENERATION_DIGITS.encode())
_GENERATION_KEY = re.compile(f"g({GENERATION_DIGITS}):(.*)", re.DOTALL)

#: What :func:`check` found: the tag under the current secret, under a retiring one, or
#: no tag (missing), not this user's tag for this value (invalid), or this user's tag
#: under a key generation the operator has revoked (revoked).
Outcome = Literal["current", "retiring", "missing", "invalid", "revoked"]
#: Signs the value of one batch of the user (the record's key): the tag to send with it.
Signer = Callable[[str, bytes], bytes]


class KeyFileError(RuntimeError):
    """A secret or key file that cannot be read, or does not hold a key."""


def user_key(secret: bytes, user: str, generation: int = 0) -> bytes:
    """The key of ``user`` (a pseudonym, as on the wire) under the signing ``secret``, of
    key ``generation`` (0: the key every user was first issued)."""
    check_generation(generation)
    if generation == 0:
        label = _KEY_LABEL
    else:
        label = _GENERATION_KEY_LABEL + str(generation).encode() + b"\x00"
    return _mac(secret, label + user.encode())


def sign(key: bytes, value: bytes, generation: int = 0) -> bytes:
    """The ``cadence-mac`` header's value for a record ``value`` sent under ``key``, a
    key of ``generation``: the worker derives the key again from the generation named."""
    return _tag_prefix(generation) + _mac(key, value)


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def check_generation(generation: int) -> None:
    """ValueError unless ``generation`` is one a key can have (0 to MAX_GENERATION)."""
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"a key generation is 0 to {MAX_GENERATION}, not {generation}")


def _tag_prefix(generation: int) -> bytes:
    check_generation(generation)
    # Generation 0 keeps the prefix of the tags desks sent before generations existed.
    return _TAG_PREFIX if generation == 0 else b"v1g%d:" % generation


def _read_tag(tag: bytes) -> tuple[int, bytes] | None:
    """(generation, MAC) of a tag, or None if it is in no known form."""
    if tag.startswith(_TAG_PREFIX):
        return 0, tag[len(_TAG_PREFIX) :]
    match = _GENERATION_TAG.match(tag)
    if match is None:
        return None
    return int(match[1]), tag[match.end() :]


def check(
    secrets: Sequence[bytes],
    user: str,
    value: bytes,
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None,
    min_generation: int = 0,
) -> Outcome:
    """Whether ``value`` carries its user's tag under the current secret (``secrets[0]``),
    under a retiring one (a later secret), or why not. One tag only: a record with two
    ``cadence-mac`` headers is refused, whatever they hold. A tag of a key generation
    below ``min_generation`` is ``revoked``, but only once its MAC is right: a made-up
    tag is ``invalid``, so ``revoked`` means the revoked key itself is in use."""
    if isinstance(headers, Mapping):  # a client may hand headers over as a dict
        headers = headers.items()
    tags = [v for k, v in (headers or ()) if k == MAC_HEADER]
    if not tags:
        return "missing"
    if len(tags) > 1 or not isinstance(tags[0], bytes):
        return "invalid"
    read = _read_tag(tags[0])
    if read is None:
        return "invalid"
    generation, mac = read
    for i, secret in enumerate(secrets):
        if hmac.compare_digest(mac, _mac(user_key(secret, user, generation), value)):
            if generation < min_generation:
                return "revoked"
            return "current" if i == 0 else "retiring"
    return "invalid"


def _hex_key(text: str, path: str | Path, what: str) -> bytes:
    # Errors name the file, never its text: that would quote a secret.
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"the {what} {path} does not hold a hex key") from None
    if len(key) < MIN_SECRET_BYTES:
        raise KeyFileError(f"the {what} {path} is shorter than {MIN_SECRET_BYTES} bytes")
    return key


def _read_text(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii")
    except UnicodeDecodeError:
        # Not the decoder's message: it quotes a byte of the file, i.e. of the secret.
        raise KeyFileError(f"the {what} {path} does not hold a hex key") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the {what} {path}: {exc}") from None


def format_user_key(key: bytes, generation: int) -> str:
    """A user's key as its key file holds it: plain hex for generation 0 (as every key
    was written before generations), ``g<generation>:`` + hex for later ones."""
    check_generation(generation)
    return key.hex() if generation == 0 else f"g{generation}:{key.hex()}"


def read_user_key_file(path: str | Path) -> tuple[bytes, int]:
    """(key, generation) from a user's key file (:func:`format_user_key`)."""
    text = _read_text(path, "user key").strip()
    if not text.startswith("g"):  # no hex digit is a "g": a key file of before
        return _hex_key(text, path, "user key"), 0
    match = _GENERATION_KEY.fullmatch(text)
    if match is None:
        raise KeyFileError(
            f"the user key {path} does not hold a key generation (1 to {MAX_GENERATION}) "
            "and a hex key, as `g1:` + hex"
        )
    return _hex_key(match[2].strip(), path, "user key"), int(match[1])


def read_secrets_file(path: str | Path, what: str) -> tuple[bytes, ...]:
    """The secrets of a file holding one hex secret per line, current first; blank
    lines and lines starting with ``#`` (a note on when a secret retires) are skipped."""
    numbered = [(n, line.strip()) for n, line in enumerate(_read_text(path, what).splitlines(), 1)]
    numbered = [(n, line) for n, line in numbered if line and not line.startswith("#")]
    if not numbered:
        raise KeyFileError(f"the {what} {path} does not hold a hex key")
    if len(numbered) > 1 and any(len(line.split()) > 1 for _, line in numbered):
        # Before rotation a file was one secret, its whitespace ignored: a dump wrapped
        # over lines (od, hexdump) must not be read as several secrets, a new current one.
        raise KeyFileError(
            f"the {what} {path} holds hex with spaces on several lines: "
            "write each secret on one line, in plain hex"
        )
    if any(
        len(line) in _WRAP_WIDTHS and len(after) < len(line)
        for (_, line), (_, after) in itertools.pairwise(numbered)
    ):
        # xxd -p and basenc wrap a long secret at a fixed width in plain hex: read per
        # line, its head would become the current secret and its tail a retiring one.
        raise KeyFileError(
            f"the {what} {path} looks like one secret wrapped over lines (a line of "
            f"{' or '.join(map(str, _WRAP_WIDTHS))} hex digits, then a shorter one): "
            "write each secret on one line, in plain hex"
        )
    secrets = tuple(_hex_key(line, f"{path} (line {n})", what) for n, line in numbered)
    if len(set(secrets)) < len(secrets):
        raise KeyFileError(f"the {what} {path} holds the same secret twice")
    return secrets


def signing_secrets(env: Mapping[str, str] | None = None) -> tuple[bytes, ...] | None:
    """The workers' signing secrets from ``CADENCE_BATCH_AUTH_SECRET_FILE``, current
    first; None if unset (each caller says why it needs it), KeyFileError if the file
    holds none."""
    path = (os.environ if env is None else env).get(SECRET_FILE_ENV)
    if not path:
        return None
    return read_secrets_file(path, f"signing secret ({SECRET_FILE_ENV})")


def signing_secret(env: Mapping[str, str] | None = None) -> bytes | None:
    """The current signing secret (the file's first): what keys are issued and the
    operator's tools sign from. None if unset, KeyFileError if the file holds none."""
    secrets = signing_secrets(env)
    return None if secrets is None else secrets[0]


def user_signer(env: Mapping[str, str] | None = None) -> Signer | None:
    """The agent's signer: its user's key from ``CADENCE_USER_KEY_FILE``, tagging with
    the key's generation; None if unset."""
    path = (os.environ if env is None else env).get(USER_KEY_FILE_ENV)
    if not path:
        return None
    key, generation = read_user_key_file(path)
    return lambda user, value: sign(key, value, generation)


def secret_signer(secret: bytes, generation_of: Callable[[str], int] = lambda user: 0) -> Signer:
    """A signer for any user, from the signing secret itself: for the workers' own tools
    (simulations, replays, tests), never for a desk. Each user's key is of the generation
    ``generation_of`` names (the workers' revocation list: a revoked user's current one).

    >>> signer = secret_signer(bytes(range(32)), lambda user: {"b" * 64: 2}.get(user, 0))
    >>> signer("a" * 64, b"x")[:3], signer("b" * 64, b"x")[:5]
    (b'v1:', b'v1g2:')
    """
    keys: dict[str, tuple[bytes, int]] = {}

    def signer(user: str, value: bytes) -> bytes:
        known = keys.get(user)
        if known is None:
            generation = generation_of(user)
            known = keys[user] = (user_key(secret, user, generation), generation)
        return sign(known[0], value, known[1])

    return signer
