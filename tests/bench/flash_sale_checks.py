"""After the sale: what the platform says it sold, checked against what existed.

Oversold counts every breach of "never more held or sold than existed": a stock level with
on hand below zero or more reserved than on hand minus safety stock, and a SKU whose orders
holding stock (reserved, paid, allocated, shipped, completed) add up to more than its stock.
Also: every order the gateway accepted must exist at the order service (none lost), and
inventory's reservations should equal what the orders hold (a difference is a stranded or
missing hold)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import grpc
from omni.inventory.v1 import inventory_service_pb2 as inv_svc
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc
from omni.order.v1 import order_pb2
from omni.order.v1 import order_service_pb2 as order_svc
from omni.order.v1 import order_service_pb2_grpc as order_grpc

from tests.bench.flash_sale_seed import CHANNEL, HOT_SKUS, HOT_STOCK, SITES

HOLDING = {
    order_pb2.ORDER_STATUS_RESERVED,
    order_pb2.ORDER_STATUS_PAID,
    order_pb2.ORDER_STATUS_ALLOCATED,
    order_pb2.ORDER_STATUS_SHIPPED,
    order_pb2.ORDER_STATUS_COMPLETED,
}
# Mid-workflow: the order service's recovery task moves these on (domain/state_machine.py).
IN_FLIGHT = (
    order_pb2.ORDER_STATUS_CREATED,
    order_pb2.ORDER_STATUS_RESERVING,
    order_pb2.ORDER_STATUS_PAID,
    order_pb2.ORDER_STATUS_CANCELLING,
)
PAGE = 100
TIMEOUT_S = 30


@dataclass
class SaleCheck:
    statuses: Counter[str] = field(default_factory=Counter)
    held_units: Counter[str] = field(default_factory=Counter)
    reserved_units: Counter[str] = field(default_factory=Counter)
    breaches: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def oversold(self) -> int:
        return len(self.breaches)

    def reservation_mismatches(self) -> dict[str, tuple[int, int]]:
        """SKU → (reserved at inventory, held by orders) where the two differ."""
        return {
            sku: (self.reserved_units[sku], self.held_units[sku])
            for sku in HOT_SKUS
            if self.reserved_units[sku] != self.held_units[sku]
        }


async def sale_orders(channel: grpc.aio.Channel, prefix: str) -> list[order_pb2.Order]:
    """Every order of the channel whose channel order id starts with ``prefix``."""
    stub: order_grpc.OrderServiceAsyncStub = order_grpc.OrderServiceStub(channel)
    orders: list[order_pb2.Order] = []
    token = ""
    while True:
        page = await stub.ListOrders(
            order_svc.ListOrdersRequest(page_size=PAGE, page_token=token, channel_id=CHANNEL),
            timeout=TIMEOUT_S,
        )
        orders += [o for o in page.orders if o.channel_order_id.startswith(prefix)]
        token = page.next_page_token
        if not token:
            return orders


async def orders_in_flight(channel: grpc.aio.Channel) -> dict[str, int]:
    """The in-flight statuses that some order of the channel is in (1 each; one row asked)."""
    stub: order_grpc.OrderServiceAsyncStub = order_grpc.OrderServiceStub(channel)
    found = {}
    for status in IN_FLIGHT:
        page = await stub.ListOrders(
            order_svc.ListOrdersRequest(page_size=1, channel_id=CHANNEL, status=status),
            timeout=TIMEOUT_S,
        )
        if page.orders:
            found[f"orders {order_pb2.OrderStatus.Name(status)}"] = 1
    return found


async def check_sale(
    order_channel: grpc.aio.Channel,
    inventory_channel: grpc.aio.Channel,
    prefix: str,
    accepted: list[str],
) -> SaleCheck:
    check = SaleCheck()
    orders = await sale_orders(order_channel, prefix)
    for order in orders:
        check.statuses[order_pb2.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_")] += 1
        if order.status in HOLDING:
            for line in order.lines:
                check.held_units[line.sku_code] += line.quantity
    known = {o.channel_order_id for o in orders}
    check.missing = [order_no for order_no in accepted if order_no not in known]
    for sku in HOT_SKUS:
        if check.held_units[sku] > HOT_STOCK:
            check.breaches.append(f"{sku}: orders hold {check.held_units[sku]} > {HOT_STOCK}")
    await _check_stock(inv_grpc.InventoryServiceStub(inventory_channel), check)
    return check


async def _check_stock(stub: inv_grpc.InventoryServiceAsyncStub, check: SaleCheck) -> None:
    for site in SITES:
        for sku in HOT_SKUS:
            level = (
                await stub.GetStockLevel(
                    inv_svc.GetStockLevelRequest(location_id=site.location_id, sku_code=sku),
                    timeout=TIMEOUT_S,
                )
            ).stock_level
            check.reserved_units[sku] += level.reserved
            where = f"{site.location_id}/{sku}"
            if level.on_hand < 0:
                check.breaches.append(f"{where}: on hand {level.on_hand}")
            if level.reserved < 0 or level.reserved > level.on_hand - level.safety_stock:
                check.breaches.append(
                    f"{where}: reserved {level.reserved} > on hand {level.on_hand} "
                    f"- safety {level.safety_stock}"
                )
