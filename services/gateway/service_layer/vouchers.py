"""Redeeming a local-life voucher in its store (核销)."""

from __future__ import annotations

from omni.order.v1 import order_pb2, order_service_pb2

from libs.errors import FailedPrecondition, NotFound
from libs.unit_of_work import UnitOfWorkFactory
from services.gateway.adapters import order_store
from services.gateway.adapters.peers import Peers, enum_name
from services.gateway.connectors.local_life import Redemption
from services.gateway.domain import vouchers
from services.gateway.domain.inbound import AcceptedOrder

# A voucher in one of these states was already consumed.
HANDED_OVER = frozenset({"consumed", "completed", "returned"})


def legs_of(found: order_service_pb2.GetOrderResponse) -> list[vouchers.Leg]:
    return [
        vouchers.Leg(
            f.fulfilment_id,
            enum_name(order_pb2.FulfilmentStatus, f.status),
            f.handover_store_id,
            bool(f.transfer_id),
        )
        for f in found.fulfilment_orders
    ]


async def redeem(
    uow_factory: UnitOfWorkFactory, peers: Peers, redemption: Redemption
) -> AcceptedOrder:
    """The voucher's code must match, the store must be the voucher's, and every
    fulfilment order must be handed over there; only then is the voucher consumed. A
    refusal (wrong code or store, goods not there yet) changes nothing, on the order service
    either: the plan is checked whole before the first step. The voucher's row stays locked
    from the check to the commit, so concurrent or retried redemptions run one after the
    other and the second sees the first's result; the order service's steps are idempotent
    by request id, so a redemption interrupted half-way is finished by its retry."""
    async with uow_factory() as uow:
        found_voucher = await order_store.lock_voucher(
            uow.session, redemption.channel_id, redemption.voucher_order_id
        )
        if found_voucher is None:
            raise NotFound(f"voucher order {redemption.voucher_order_id} not found")
        current, digest = found_voucher
        vouchers.check_code(
            digest, redemption.channel_id, redemption.voucher_order_id, redemption.voucher_code
        )
        if current.order.pickup_store_id != redemption.store_id:
            raise FailedPrecondition(
                f"voucher is for store {current.order.pickup_store_id}, not {redemption.store_id}"
            )
        if current.status in HANDED_OVER:
            return current
        found = await peers.get_order(current.order_id)
        plan = vouchers.hand_over_plan(
            enum_name(order_pb2.OrderStatus, found.order.status),
            legs_of(found),
            redemption.store_id,
        )
        request_id = f"gw:redeem:{current.order_id}"
        for fulfilment_id, step in plan:
            if step == vouchers.READY:
                await peers.mark_ready(f"{request_id}:ready:{fulfilment_id}", fulfilment_id)
            else:
                await peers.confirm_delivery(f"{request_id}:handed:{fulfilment_id}", fulfilment_id)
        updated = await order_store.mark_consumed(
            uow.session, current.order_id, redemption.store_id, redemption.staff_id
        )
        await uow.commit()
    return updated
