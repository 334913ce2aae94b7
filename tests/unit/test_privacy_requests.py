"""Erasure requests the worker refuses to carry out, and why."""

from __future__ import annotations

import pytest

from streams.privacy import (
    ForgetRequest,
    decode_request,
    encode_request,
    misdirected,
    user_partition,
)

VICTIM = "0f" * 32


@pytest.mark.parametrize("user", ["alice@example.com", "0F" * 32, "0f" * 31, ""])
def test_a_request_must_name_a_pseudonym(user: str) -> None:
    # Anything else would be a login (kept 400 days in the audit) or a typo.
    with pytest.raises(ValueError, match="pseudonym"):
        decode_request(encode_request(ForgetRequest(user, "r", "dpo", 1.0)))


def test_a_request_keyed_by_someone_else_is_not_carried_out() -> None:
    request = ForgetRequest(VICTIM, "r", "dpo", 1.0)
    home = user_partition(VICTIM, 12)
    assert misdirected(request, VICTIM.encode(), home, 12) is None
    assert misdirected(request, b"a" * 64, home, 12) is not None
    assert misdirected(request, None, home, 12) is not None


def test_a_request_on_another_partition_than_the_users_is_not_carried_out() -> None:
    # The tombstone goes to the request's partition: elsewhere, the profile survives.
    request = ForgetRequest(VICTIM, "r", "dpo", 1.0)
    home = user_partition(VICTIM, 12)
    problem = misdirected(request, VICTIM.encode(), (home + 1) % 12, 12)
    assert problem is not None and problem[0] == "wrong_partition"
    assert f"partition {home}" in problem[1]
