"""The life of an order and of its fulfilment orders, as explicit transition tables.

An illegal transition is a FailedPrecondition naming both states. Every status change in
production passes through ``check_order_transition`` (the repository's compare-and-set calls
it), so this table is the order's life, not a description of it.
"""

from __future__ import annotations

from enum import Enum

from libs.errors import FailedPrecondition


class OrderStatus(Enum):
    CREATED = "created"
    # Routed; the holds at inventory are being made (persisted before calling inventory).
    RESERVING = "reserving"
    RESERVED = "reserved"
    PAID = "paid"
    ALLOCATED = "allocated"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    UNFILLABLE = "unfillable"
    # Releasing holds (persisted before calling inventory).
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


S = OrderStatus

ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.CREATED: frozenset({S.RESERVING, S.UNFILLABLE, S.CANCELLING, S.CANCELLED}),
    # Back to CREATED when a hold was refused (stock went between routing and reserving);
    # UNFILLABLE when that kept happening.
    S.RESERVING: frozenset({S.RESERVED, S.PAID, S.CREATED, S.UNFILLABLE, S.CANCELLING}),
    S.RESERVED: frozenset({S.PAID, S.CANCELLING}),
    S.PAID: frozenset({S.ALLOCATED, S.COMPLETED, S.CANCELLING}),
    S.ALLOCATED: frozenset({S.SHIPPED, S.COMPLETED, S.CANCELLING}),
    S.SHIPPED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.UNFILLABLE: frozenset({S.CREATED, S.RESERVING, S.CANCELLED, S.CANCELLING}),
    S.CANCELLING: frozenset({S.CANCELLED}),
    S.CANCELLED: frozenset(),
}

# Before anything left a location the customer may still cancel.
CANCELLABLE = frozenset({S.CREATED, S.RESERVING, S.RESERVED, S.PAID, S.ALLOCATED, S.UNFILLABLE})
# States a worker must drive on (after a crash the recovery task resumes them).
IN_FLIGHT = frozenset({S.CREATED, S.RESERVING, S.PAID, S.CANCELLING})
# The order's life is over: nothing moves it any more.
FINAL = frozenset({S.COMPLETED, S.CANCELLED})
# Stock is (or may be) held at inventory in these states.
HOLDS_STOCK = frozenset({S.RESERVING, S.RESERVED, S.PAID, S.ALLOCATED, S.SHIPPED, S.CANCELLING})


def check_order_transition(current: OrderStatus, target: OrderStatus) -> None:
    if target not in ORDER_TRANSITIONS[current]:
        raise FailedPrecondition(f"order is {current.value}; it cannot become {target.value}")


def check_cancellable(current: OrderStatus) -> None:
    if current not in CANCELLABLE:
        raise FailedPrecondition(
            f"order is {current.value}; only orders that have not shipped can be cancelled"
        )


def check_payable(current: OrderStatus) -> None:
    if current not in {S.CREATED, S.RESERVING, S.RESERVED, S.UNFILLABLE}:
        raise FailedPrecondition(f"order is {current.value}; it cannot be paid now")


class FulfilmentStatus(Enum):
    # Routed and held, not yet allocated (internal; not shown as a fulfilment order).
    PLANNED = "planned"
    PENDING = "pending"
    TRANSFER_IN_TRANSIT = "transfer_in_transit"
    SHIPPED = "shipped"
    READY_FOR_PICKUP = "ready_for_pickup"
    DELIVERED = "delivered"
    PICKED_UP = "picked_up"
    CANCELLED = "cancelled"


F = FulfilmentStatus


class Handover(Enum):
    AT_COUNTER = "at_counter"
    COURIER = "courier"
    SAME_CITY_RIDER = "same_city_rider"
    STORE_PICKUP = "store_pickup"
    GUIDE = "guide"


class Step(Enum):
    SHIP = "ship"
    READY = "ready"
    DELIVER = "deliver"


def next_fulfilment_status(
    current: FulfilmentStatus, step: Step, handover: Handover, via_transfer: bool
) -> FulfilmentStatus:
    """Where a fulfilment order goes on a step; FailedPrecondition when it cannot.

    A transfer first travels to the handover store (ship → in transit, ready → arrived and
    held there); the goods then reach the customer as any store's goods do.
    """
    to: FulfilmentStatus | None = None
    if step is Step.SHIP:
        if current is F.PENDING and via_transfer:
            to = F.TRANSFER_IN_TRANSIT
        elif (
            current is F.PENDING
            and handover
            in {
                Handover.COURIER,
                Handover.SAME_CITY_RIDER,
                Handover.GUIDE,
            }
        ) or (current is F.READY_FOR_PICKUP and handover is Handover.GUIDE):
            to = F.SHIPPED
    elif step is Step.READY:
        arrived = current is F.TRANSFER_IN_TRANSIT
        if arrived or (
            current is F.PENDING and handover is Handover.STORE_PICKUP and not via_transfer
        ):
            to = F.READY_FOR_PICKUP
    elif step is Step.DELIVER:
        if current is F.SHIPPED:
            to = F.DELIVERED
        elif current is F.READY_FOR_PICKUP and handover is Handover.STORE_PICKUP:
            to = F.PICKED_UP
    if to is None:
        raise FailedPrecondition(
            f"fulfilment order is {current.value} ({handover.value}"
            f"{', via transfer' if via_transfer else ''}); it cannot {step.value} now"
        )
    return to


# The goods left the stock pool towards the customer: the hold is confirmed as a sale.
LEFT_STOCK = frozenset({F.SHIPPED, F.DELIVERED, F.PICKED_UP})
DONE = frozenset({F.DELIVERED, F.PICKED_UP})
