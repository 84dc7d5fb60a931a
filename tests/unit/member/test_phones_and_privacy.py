from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.errors import InvalidArgument
from services.member.domain.phones import normalise_phone
from services.member.domain.privacy import (
    PII_READ_SCOPE,
    mask_name,
    mask_phone,
    may_read_pii,
    scopes_from_metadata,
)

cn_mobiles = st.from_regex(r"\A1[3-9][0-9]{9}\Z")


@given(cn_mobiles)
def test_every_written_form_of_a_mainland_mobile_normalises_to_the_same_e164(national):
    forms = [
        national,
        f"+86{national}",
        f"0086{national}",
        f"+86 {national[:3]} {national[3:7]} {national[7:]}",
        f"{national[:3]}-{national[3:7]}-{national[7:]}",
    ]
    assert {normalise_phone(f) for f in forms} == {f"+86{national}"}


@pytest.mark.parametrize("number", ["+14155552671", "+447911123456", "0049 30 901820"])
def test_other_countries_in_e164_are_accepted(number):
    assert re.fullmatch(r"\+[1-9][0-9]{7,14}", normalise_phone(number))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "12345",
        "12812345678",
        "+8612345678901",
        "+86 138",
        "+0123456789",
        "138abc45678",
        "+1234567",
        "+1234567890123456",
        "13\uff1812345678",  # a full-width digit inside
        "\uff11\uff13\uff18\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
    ],
)
def test_malformed_phones_are_refused_naming_the_field(bad):
    with pytest.raises(InvalidArgument) as caught:
        normalise_phone(bad)
    assert [v.field for v in caught.value.violations] == ["phone"]


@given(cn_mobiles)
def test_a_masked_mainland_phone_hides_the_middle_four_digits(national):
    masked = mask_phone(f"+86{national}")
    assert masked == f"+86 {national[:3]}****{national[-4:]}"
    assert national[3:7] not in masked.replace(national[:3], "", 1)[:-4]


@given(st.from_regex(r"\A\+[1-9][0-9]{7,14}\Z"))
def test_a_masked_phone_never_shows_more_than_seven_digits(phone):
    masked = mask_phone(phone)
    # The mainland format keeps its country code apart ("+86 138****5678"): the seven are
    # digits of the number itself.
    number = masked.removeprefix("+86 ") if masked.startswith("+86 ") else masked
    assert sum(c.isdigit() for c in number) <= 7
    assert masked != phone


@given(st.text(min_size=1, max_size=30))
def test_a_masked_name_keeps_only_its_first_character(name):
    masked = mask_name(name)
    assert masked[0] == name[0] and set(masked[1:]) == {"*"}


def test_the_pii_scope_comes_from_metadata():
    assert may_read_pii(scopes_from_metadata([("x-omni-scopes", f"orders.read, {PII_READ_SCOPE}")]))
    assert not may_read_pii(scopes_from_metadata([("x-omni-scopes", "member.read")]))
    assert not may_read_pii(scopes_from_metadata([]))
