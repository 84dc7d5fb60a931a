"""The order aggregate on its own: every change checks the order's life, writes history and
records the events it caused, in the order they happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from libs.errors import FailedPrecondition, InvalidArgument
from services.order.domain.order import EventKind, Order, PlannedLeg, ReturnRequestLine
from services.order.domain.orders import Address, AisleHandover, Mode, NewLine, NewOrder, Payment
from services.order.domain.state_machine import FulfilmentStatus as F
from services.order.domain.state_machine import OrderStatus as S
from services.order.domain.state_machine import Step

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
LEG = PlannedLeg("WH", ("L1", "L2"), False, 2500.0, True)


def order(*, mode: Mode = Mode.EXPRESS_DELIVERY, payment: Payment = Payment.PAID_ONLINE) -> Order:
    new = NewOrder(
        channel_id="WEB",
        channel_kind="1",
        channel_order_id="C1",
        member_id="M1",
        guest_contact="",
        mode=mode,
        aisle_handover=AisleHandover.NONE,
        selling_store_id="ST" if mode is Mode.STORE_SALE else "",
        selling_guide_staff_id="",
        referring_guide_code="",
        pickup_store_id="",
        address=Address(city="Shanghai", latitude=31.2, longitude=121.4),
        lines=(NewLine("A", 2, 500, 100, "CNY"), NewLine("B", 1, 300, 0, "CNY")),
        payment=payment,
        stock_channel="WEB",
    )
    return Order.capture("O1", new, {"A": "TOPS"}, NOW)


def kinds(o: Order) -> list[EventKind]:
    return [e.kind for e in o.events]


def held_whole(o: Order, handover: str = "courier") -> Order:
    o.start_first_fit({"key": "O1.0.1"}, "holding", NOW)
    o.first_fit_held(LEG, handover, "ST" if handover == "at_counter" else "", "O1.0.1", {}, NOW)
    o.held(NOW + timedelta(minutes=30), NOW)
    return o


def test_a_captured_order_prices_its_lines_and_records_its_creation() -> None:
    o = order()
    assert o.status is S.CREATED
    assert [line.line_total_minor for line in o.lines] == [900, 300]
    assert o.total_minor == 1200
    assert [line.category_code for line in o.lines] == ["TOPS", ""]
    assert kinds(o) == [EventKind.CREATED]
    assert [(h.from_status, h.to_status, h.note) for h in o.new_history] == [
        (S.CREATED, S.CREATED, "captured")
    ]


def test_a_paid_order_held_whole_is_reserved_paid_and_allocated_in_order() -> None:
    o = held_whole(order())
    o.allocate(NOW)
    assert o.status is S.ALLOCATED
    assert kinds(o) == [EventKind.CREATED, EventKind.RESERVED, EventKind.PAID, EventKind.ALLOCATED]
    assert [e.status for e in o.events[1:]] == [S.PAID, S.PAID, S.ALLOCATED]
    (leg,) = o.fulfilments
    assert (leg.status, leg.reservation_key, leg.location_id) == (F.PENDING, "O1.0.1", "WH")
    assert leg.route_hint == "same city to Shanghai, 2.5 km"
    assert o.hold_intent is None
    moves = [(h.from_status, h.to_status) for h in o.new_history if h.from_status != h.to_status]
    assert moves == [(S.CREATED, S.RESERVING), (S.RESERVING, S.PAID), (S.PAID, S.ALLOCATED)]


def test_an_unpaid_order_waits_reserved_until_paid_and_a_second_payment_changes_nothing() -> None:
    o = held_whole(order(payment=Payment.AWAITING))
    assert o.status is S.RESERVED and o.pay_deadline == NOW + timedelta(minutes=30)
    assert kinds(o)[-1] is EventKind.RESERVED
    assert o.pay(Payment.PAID_ONLINE, NOW)
    assert o.status is S.PAID and kinds(o)[-1] is EventKind.PAID
    assert not o.pay(Payment.PAID_AT_POS, NOW)
    with pytest.raises(InvalidArgument):
        order(payment=Payment.AWAITING).pay(Payment.AWAITING, NOW)


def test_a_sale_at_the_counter_is_handed_over_and_completes_with_its_allocation() -> None:
    o = held_whole(order(mode=Mode.STORE_SALE, payment=Payment.PAID_AT_POS), "at_counter")
    o.allocate(NOW)
    assert o.status is S.COMPLETED
    assert o.fulfilments[0].status is F.DELIVERED
    assert kinds(o)[-3:] == [
        EventKind.ALLOCATED,
        EventKind.FULFILMENT_DELIVERED,
        EventKind.COMPLETED,
    ]


def test_a_move_the_orders_life_does_not_allow_is_refused_and_changes_nothing() -> None:
    o = order()
    with pytest.raises(FailedPrecondition, match=r"created.*allocated"):
        o.allocate(NOW)
    assert o.status is S.CREATED and kinds(o) == [EventKind.CREATED]


def test_a_refused_first_fit_goes_back_to_be_routed_in_full() -> None:
    o = order()
    o.start_first_fit({"key": "O1.0.1"}, "holding", NOW)
    o.first_fit_refused("no candidate", NOW)
    assert o.status is S.CREATED and o.hold_intent is None and o.routing_attempts == 0


def test_cancel_before_holding_ends_at_once_and_after_holding_gives_back_first() -> None:
    fresh = order()
    fresh.request_cancel("customer", NOW)
    assert fresh.status is S.CANCELLED and kinds(fresh)[-1] is EventKind.CANCELLED

    asking = order()
    asking.start_first_fit({"key": "O1.0.1"}, "holding", NOW)
    asking.request_cancel("customer", NOW)
    assert asking.status is S.CANCELLING  # the hold asked for must be given back
    asking.released([], NOW)
    assert asking.status is S.CANCELLED and asking.hold_intent is None

    with pytest.raises(InvalidArgument):
        order().request_cancel("x" * 501, NOW)


def test_goods_that_left_cannot_be_cancelled_and_complete_the_order_when_delivered() -> None:
    o = held_whole(order())
    o.allocate(NOW)
    fid = o.fulfilments[0].fulfilment_id
    _, to = o.next_step(fid, Step.SHIP)
    assert to is F.SHIPPED
    o.fulfilment_moved(fid, to, NOW, assignee="SF1")
    assert o.status is S.SHIPPED and o.fulfilments[0].assignee == "SF1"
    with pytest.raises(FailedPrecondition, match="not shipped"):
        o.request_cancel("customer", NOW)
    o.fulfilment_moved(fid, F.DELIVERED, NOW)
    assert o.status is S.COMPLETED
    assert kinds(o)[-3:] == [
        EventKind.FULFILMENT_SHIPPED,
        EventKind.FULFILMENT_DELIVERED,
        EventKind.COMPLETED,
    ]


def test_returns_refund_each_line_to_its_total_and_never_more_than_sold() -> None:
    o = held_whole(order())
    o.allocate(NOW)
    with pytest.raises(FailedPrecondition):
        o.receive_return("ST", False, [ReturnRequestLine("L1", 1, True)], NOW)
    fid = o.fulfilments[0].fulfilment_id
    o.fulfilment_moved(fid, F.SHIPPED, NOW)
    first = o.receive_return("ST", False, [ReturnRequestLine("L1", 1, True)], NOW)
    second = o.receive_return("ST", True, [ReturnRequestLine("L1", 1, False)], NOW)
    assert first.refund_total_minor + second.refund_total_minor == 900
    assert o.lines[0].returned_quantity == 2 and o.lines[0].refunded_minor == 900
    with pytest.raises(InvalidArgument):
        o.receive_return("ST", False, [ReturnRequestLine("L1", 1, True)], NOW)
    assert kinds(o)[-2:] == [EventKind.RETURN_RECEIVED, EventKind.RETURN_RECEIVED]


def test_saving_starts_a_clean_slate() -> None:
    o = held_whole(order())
    o.saved()
    assert o.events == [] and o.new_history == [] and o.changed_fulfilments == set()
    assert o.version == 1 and len(o.history) == 4
