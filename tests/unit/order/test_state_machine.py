"""The order and fulfilment state machines."""

from __future__ import annotations

import itertools

import pytest

from libs.errors import FailedPrecondition
from services.order.domain.state_machine import (
    ORDER_TRANSITIONS,
    Step,
    check_cancellable,
    check_order_transition,
    check_payable,
    next_fulfilment_status,
)
from services.order.domain.state_machine import (
    FulfilmentStatus as F,
)
from services.order.domain.state_machine import (
    Handover as H,
)
from services.order.domain.state_machine import (
    OrderStatus as S,
)


def test_the_happy_path_is_allowed() -> None:
    path = [S.CREATED, S.RESERVING, S.RESERVED, S.PAID, S.ALLOCATED, S.SHIPPED, S.COMPLETED]
    for a, b in itertools.pairwise(path):
        check_order_transition(a, b)


@pytest.mark.parametrize(
    ("frm", "to"),
    [
        (S.CREATED, S.ALLOCATED),
        (S.RESERVED, S.ALLOCATED),
        (S.SHIPPED, S.CANCELLING),
        (S.COMPLETED, S.CANCELLED),
        (S.CANCELLED, S.CREATED),
    ],
)
def test_illegal_transitions_are_failed_precondition(frm: S, to: S) -> None:
    with pytest.raises(FailedPrecondition, match=f"{frm.value}.*{to.value}"):
        check_order_transition(frm, to)


def test_every_move_the_workflow_makes_is_in_the_table() -> None:
    """The moves production code asks for (workflow and use cases); the repository refuses
    anything else, so a move missing here would fail in production."""
    for frm, to in [
        (S.CREATED, S.RESERVING),
        (S.UNFILLABLE, S.RESERVING),
        (S.CREATED, S.UNFILLABLE),
        (S.RESERVING, S.CREATED),
        (S.RESERVING, S.UNFILLABLE),
        (S.RESERVING, S.RESERVED),
        (S.RESERVING, S.PAID),
        (S.RESERVED, S.PAID),
        (S.PAID, S.ALLOCATED),
        (S.PAID, S.CANCELLING),
        (S.ALLOCATED, S.COMPLETED),
        (S.ALLOCATED, S.SHIPPED),
        (S.SHIPPED, S.COMPLETED),
        (S.CREATED, S.CANCELLED),
        (S.UNFILLABLE, S.CANCELLED),
        (S.RESERVING, S.CANCELLING),
        (S.RESERVED, S.CANCELLING),
        (S.ALLOCATED, S.CANCELLING),
        (S.CANCELLING, S.CANCELLED),
    ]:
        check_order_transition(frm, to)


def test_terminal_states_go_nowhere() -> None:
    assert ORDER_TRANSITIONS[S.COMPLETED] == frozenset()
    assert ORDER_TRANSITIONS[S.CANCELLED] == frozenset()


def test_cancel_until_shipped_and_pay_before_allocation() -> None:
    for status in (S.CREATED, S.RESERVED, S.PAID, S.ALLOCATED, S.UNFILLABLE):
        check_cancellable(status)
    for status in (S.SHIPPED, S.COMPLETED):
        with pytest.raises(FailedPrecondition):
            check_cancellable(status)
    check_payable(S.RESERVED)
    with pytest.raises(FailedPrecondition):
        check_payable(S.CANCELLED)


@pytest.mark.parametrize(
    ("current", "step", "handover", "via", "to"),
    [
        (F.PENDING, Step.SHIP, H.COURIER, False, F.SHIPPED),
        (F.SHIPPED, Step.DELIVER, H.COURIER, False, F.DELIVERED),
        (F.PENDING, Step.READY, H.STORE_PICKUP, False, F.READY_FOR_PICKUP),
        (F.READY_FOR_PICKUP, Step.DELIVER, H.STORE_PICKUP, False, F.PICKED_UP),
        (F.PENDING, Step.SHIP, H.STORE_PICKUP, True, F.TRANSFER_IN_TRANSIT),
        (F.TRANSFER_IN_TRANSIT, Step.READY, H.STORE_PICKUP, True, F.READY_FOR_PICKUP),
        (F.READY_FOR_PICKUP, Step.SHIP, H.GUIDE, True, F.SHIPPED),
    ],
)
def test_fulfilment_steps(current: F, step: Step, handover: H, via: bool, to: F) -> None:
    assert next_fulfilment_status(current, step, handover, via) is to


@pytest.mark.parametrize(
    ("current", "step", "handover", "via"),
    [
        (F.PENDING, Step.DELIVER, H.COURIER, False),
        (F.PENDING, Step.SHIP, H.STORE_PICKUP, False),
        (F.PENDING, Step.READY, H.STORE_PICKUP, True),
        (F.DELIVERED, Step.SHIP, H.COURIER, False),
        (F.CANCELLED, Step.READY, H.STORE_PICKUP, False),
    ],
)
def test_illegal_fulfilment_steps(current: F, step: Step, handover: H, via: bool) -> None:
    with pytest.raises(FailedPrecondition):
        next_fulfilment_status(current, step, handover, via)
