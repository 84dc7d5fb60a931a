"""Local-life vouchers (核销): a voucher paid online is consumed in its store, which hands the
goods over. Pure rules: is the code right, and what must happen to the order's fulfilment
orders for the hand-over to be real — or why it cannot happen now.

A voucher counts as consumed only once every fulfilment order of it has been handed over
in the store; if any cannot be (not allocated yet, goods still on a transfer, cancelled),
the redemption is refused before anything is touched, with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from libs.errors import FailedPrecondition, InvalidArgument


def code_digest(channel_id: str, voucher_order_id: str, code: str) -> str:
    """What is kept of a voucher code (the code itself is a bearer secret)."""
    material = f"{channel_id}\n{voucher_order_id}\n{code}".encode()
    return hashlib.sha256(material).hexdigest()


def check_code(stored_digest: str, channel_id: str, voucher_order_id: str, code: str) -> None:
    if not stored_digest:
        raise FailedPrecondition(
            f"voucher {voucher_order_id} has no code on record; it cannot be redeemed here"
        )
    if not hmac.compare_digest(stored_digest, code_digest(channel_id, voucher_order_id, code)):
        raise InvalidArgument.field("voucher_code", "does not match the voucher")


@dataclass(frozen=True)
class Leg:
    """One fulfilment order as the order service shows it (statuses in lower case:
    pending, transfer_in_transit, ready_for_pickup, picked_up, ...)."""

    fulfilment_id: str
    status: str
    handover_store_id: str
    via_transfer: bool


READY = "ready"
HAND_OVER = "hand_over"
DONE = frozenset({"picked_up", "delivered"})
CANCELLED_ORDER = frozenset({"cancelled", "cancelling"})


def hand_over_plan(order_status: str, legs: Sequence[Leg], store_id: str) -> list[tuple[str, str]]:
    """The steps (fulfilment id, READY | HAND_OVER) that hand the whole voucher over at
    ``store_id``; empty when it already was. FailedPrecondition, naming the reason, when
    the goods cannot be handed over there now."""
    if order_status in CANCELLED_ORDER:
        raise FailedPrecondition("the voucher's order was cancelled")
    live = [leg for leg in legs if leg.status != "cancelled"]
    if not live:
        raise FailedPrecondition(
            f"the voucher's order is {order_status or 'unknown'} and has no fulfilment order "
            "yet; the goods are not ready at the store, try again later"
        )
    steps: list[tuple[str, str]] = []
    for leg in live:
        if leg.status in DONE:
            continue
        if leg.handover_store_id != store_id:
            raise FailedPrecondition(
                f"fulfilment {leg.fulfilment_id} is handed over at "
                f"{leg.handover_store_id or 'no store'}, not {store_id}"
            )
        if leg.status == "transfer_in_transit" or (leg.status == "pending" and leg.via_transfer):
            raise FailedPrecondition(
                f"the goods of fulfilment {leg.fulfilment_id} are still on a transfer to the "
                "store; receive the transfer first"
            )
        if leg.status == "pending":
            steps += [(leg.fulfilment_id, READY), (leg.fulfilment_id, HAND_OVER)]
        elif leg.status == "ready_for_pickup":
            steps.append((leg.fulfilment_id, HAND_OVER))
        else:
            raise FailedPrecondition(
                f"fulfilment {leg.fulfilment_id} is {leg.status}; it cannot be handed over"
            )
    return steps
