from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import FailedPrecondition, InvalidArgument
from services.member.domain import member_codes

KEY = b"unit-test-key"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_an_issued_code_verifies_to_its_member_until_it_expires():
    text, code = member_codes.issue(KEY, "M123", NOW)
    assert member_codes.verify(KEY, text, NOW + timedelta(seconds=59)).member_id == "M123"
    assert code.expires_at == NOW + timedelta(seconds=60)
    with pytest.raises(FailedPrecondition):
        member_codes.verify(KEY, text, NOW + timedelta(seconds=66))


def test_each_code_has_its_own_id():
    ids = {member_codes.issue(KEY, "M1", NOW)[1].code_id for _ in range(50)}
    assert len(ids) == 50


@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_any_changed_byte_is_refused_as_forged(position, replacement):
    text, _ = member_codes.issue(KEY, "M123", NOW)
    index = position % len(text)
    if text[index] == chr(replacement):
        return
    tampered = text[:index] + chr(replacement) + text[index + 1 :]
    with pytest.raises((InvalidArgument, FailedPrecondition)) as caught:
        member_codes.verify(KEY, tampered, NOW)
    # Tampering can never yield "expired": the signature is checked first.
    assert isinstance(caught.value, InvalidArgument)


def test_a_code_signed_with_another_key_is_forged():
    text, _ = member_codes.issue(b"other", "M123", NOW)
    with pytest.raises(InvalidArgument):
        member_codes.verify(KEY, text, NOW)
