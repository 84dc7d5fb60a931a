"""Voucher redemption rules (pure): the code, and what hand-over is possible now."""

from __future__ import annotations

import pytest

from libs.errors import FailedPrecondition, InvalidArgument
from services.gateway.domain.vouchers import (
    HAND_OVER,
    READY,
    Leg,
    check_code,
    code_digest,
    hand_over_plan,
)


def test_code_is_checked_against_its_digest() -> None:
    digest = code_digest("LL", "V1", "884422")
    assert "884422" not in digest
    check_code(digest, "LL", "V1", "884422")
    with pytest.raises(InvalidArgument) as caught:
        check_code(digest, "LL", "V1", "884423")
    assert caught.value.violations[0].field == "voucher_code"
    # The same code of another voucher is another digest.
    with pytest.raises(InvalidArgument):
        check_code(digest, "LL", "V2", "884422")
    with pytest.raises(FailedPrecondition):
        check_code("", "LL", "V1", "884422")


def test_pending_and_ready_legs_are_handed_over() -> None:
    legs = [Leg("F1", "pending", "S1", False), Leg("F2", "ready_for_pickup", "S1", True)]
    assert hand_over_plan("allocated", legs, "S1") == [
        ("F1", READY),
        ("F1", HAND_OVER),
        ("F2", HAND_OVER),
    ]


def test_already_handed_over_is_an_empty_plan() -> None:
    legs = [Leg("F1", "picked_up", "S1", False), Leg("F2", "cancelled", "S1", False)]
    assert hand_over_plan("completed", legs, "S1") == []


@pytest.mark.parametrize(
    ("status", "legs", "reason"),
    [
        ("reserved", [], "no fulfilment order yet"),
        ("unfillable", [], "no fulfilment order yet"),
        ("cancelled", [Leg("F1", "cancelled", "S1", False)], "cancelled"),
        ("allocated", [Leg("F1", "pending", "S1", True)], "on a transfer"),
        ("shipped", [Leg("F1", "transfer_in_transit", "S1", True)], "on a transfer"),
        ("allocated", [Leg("F1", "pending", "S2", False)], "not S1"),
        (
            "allocated",
            [Leg("F1", "ready_for_pickup", "S1", False), Leg("F2", "pending", "S1", True)],
            "on a transfer",
        ),
    ],
)
def test_nothing_is_planned_when_the_goods_cannot_be_handed_over(
    status: str, legs: list[Leg], reason: str
) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        hand_over_plan(status, legs, "S1")
    assert reason in caught.value.message
