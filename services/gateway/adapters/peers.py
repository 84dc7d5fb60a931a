"""The gateway's calls to other services, through libs.grpc_client (deadline + tracing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omni.catalog.v1 import catalog_pb2, catalog_service_pb2, catalog_service_pb2_grpc
from omni.inventory.v1 import inventory_pb2, inventory_service_pb2, inventory_service_pb2_grpc
from omni.member.v1 import events_pb2 as member_events_pb2
from omni.member.v1 import member_pb2, member_service_pb2, member_service_pb2_grpc
from omni.order.v1 import order_pb2, order_service_pb2, order_service_pb2_grpc

from libs.config import Settings
from libs.grpc_client import peer_channel


def enum_name(enum: Any, value: int) -> str:
    """A peer's enum value as the gateway shows it: FULFILMENT_STATUS_PICKED_UP → picked_up
    (the enum's own prefix dropped)."""
    name = str(enum.Name(value))
    prefix = next(iter(enum.keys())).removesuffix("UNSPECIFIED")
    return name.removeprefix(prefix).lower()


# GetAvailability takes at most this many SKUs per call.
AVAILABILITY_BATCH = 100


class Peers:
    """Channels are opened lazily and kept for the life of the process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._catalog: catalog_service_pb2_grpc.CatalogServiceAsyncStub | None = None
        self._inventory: inventory_service_pb2_grpc.InventoryServiceAsyncStub | None = None
        self._member: member_service_pb2_grpc.MemberServiceAsyncStub | None = None
        self._order: order_service_pb2_grpc.OrderServiceAsyncStub | None = None

    @property
    def order(self) -> order_service_pb2_grpc.OrderServiceAsyncStub:
        if self._order is None:
            self._order = order_service_pb2_grpc.OrderServiceStub(
                peer_channel(self.settings, "order")
            )
        assert self._order is not None
        return self._order

    @property
    def catalog(self) -> catalog_service_pb2_grpc.CatalogServiceAsyncStub:
        if self._catalog is None:
            self._catalog = catalog_service_pb2_grpc.CatalogServiceStub(
                peer_channel(self.settings, "catalog")
            )
        return self._catalog

    @property
    def inventory(self) -> inventory_service_pb2_grpc.InventoryServiceAsyncStub:
        if self._inventory is None:
            self._inventory = inventory_service_pb2_grpc.InventoryServiceStub(
                peer_channel(self.settings, "inventory")
            )
        return self._inventory

    @property
    def member(self) -> member_service_pb2_grpc.MemberServiceAsyncStub:
        if self._member is None:
            self._member = member_service_pb2_grpc.MemberServiceStub(
                peer_channel(self.settings, "member")
            )
        return self._member

    async def sku_codes_for(self, channel_id: str, external_ids: Sequence[str]) -> dict[str, str]:
        """Marketplace SKU id → our SKU code, in one batch call."""
        if not external_ids:
            return {}
        response = await self.catalog.ResolveChannelSkus(
            catalog_service_pb2.ResolveChannelSkusRequest(
                channel_id=channel_id, external_sku_ids=list(external_ids)
            )
        )
        return {m.external_sku_id: m.sku_code for m in response.mappings if m.external_sku_id}

    async def external_ids_for(self, channel_id: str, sku_codes: Sequence[str]) -> dict[str, str]:
        """Our SKU code → the marketplace's SKU id."""
        if not sku_codes:
            return {}
        response = await self.catalog.ResolveChannelSkus(
            catalog_service_pb2.ResolveChannelSkusRequest(
                channel_id=channel_id, sku_codes=list(sku_codes)
            )
        )
        return {m.sku_code: m.external_sku_id for m in response.mappings if m.external_sku_id}

    async def availability(
        self, stock_channel: str, sku_codes: Sequence[str], include_locations: bool = False
    ) -> dict[str, inventory_pb2.SkuAvailability]:
        found: dict[str, inventory_pb2.SkuAvailability] = {}
        codes = list(dict.fromkeys(sku_codes))
        for start in range(0, len(codes), AVAILABILITY_BATCH):
            response = await self.inventory.GetAvailability(
                inventory_service_pb2.GetAvailabilityRequest(
                    channel=stock_channel,
                    sku_codes=codes[start : start + AVAILABILITY_BATCH],
                    include_locations=include_locations,
                )
            )
            found.update({s.sku_code: s for s in response.skus})
        return found

    async def location(self, location_id: str) -> inventory_pb2.Location:
        response = await self.inventory.GetLocation(
            inventory_service_pb2.GetLocationRequest(location_id=location_id)
        )
        return response.location

    async def nearest(
        self,
        stock_channel: str,
        sku_codes: Sequence[str],
        latitude: float,
        longitude: float,
        radius_meters: float,
        capability: inventory_pb2.Capability.ValueType,
        max_results: int,
    ) -> list[inventory_pb2.NearbyStock]:
        response = await self.inventory.FindNearestStock(
            inventory_service_pb2.FindNearestStockRequest(
                latitude=latitude,
                longitude=longitude,
                radius_meters=radius_meters,
                skus=[inventory_pb2.SkuQuantity(sku_code=s, quantity=1) for s in sku_codes],
                capability=capability,
                channel=stock_channel,
                max_results=max_results,
            )
        )
        return list(response.locations)

    async def sku(self, sku_code: str) -> catalog_pb2.Sku:
        response = await self.catalog.GetSku(catalog_service_pb2.GetSkuRequest(sku_code=sku_code))
        return response.sku

    async def price(self, channel_id: str, sku_code: str) -> catalog_pb2.ResolvedPrice:
        response = await self.catalog.ResolvePrice(
            catalog_service_pb2.ResolvePriceRequest(sku_code=sku_code, channel_id=channel_id)
        )
        return response.price

    async def sign_up_with_guide(
        self, request_id: str, phone: str, name: str, store_id: str, guide_staff_id: str
    ) -> member_pb2.Member:
        response = await self.member.RegisterMember(
            member_service_pb2.RegisterMemberRequest(
                request_id=request_id,
                phone=phone,
                name=name,
                source=member_events_pb2.SIGN_UP_SOURCE_GUIDE_ASSISTED,
                guide_staff_id=guide_staff_id,
                store_id=store_id,
            )
        )
        return response.member

    async def member_by_code(self, request_id: str, code: str) -> member_pb2.Member:
        response = await self.member.ResolveMemberCode(
            member_service_pb2.ResolveMemberCodeRequest(request_id=request_id, code=code)
        )
        return response.member

    async def capture_order(
        self, request_id: str, order: order_pb2.Order, payment: order_pb2.PaymentState.ValueType
    ) -> order_pb2.Order:
        """The platform order for a channel order; the order service dedupes by channel and
        channel order id as well as by request id."""
        response = await self.order.CaptureOrder(
            order_service_pb2.CaptureOrderRequest(
                request_id=request_id,
                channel_id=order.channel_id,
                channel_kind=order.channel_kind,
                channel_order_id=order.channel_order_id,
                member_id=order.member_id,
                guest_contact=order.guest_contact,
                fulfilment_mode=order.fulfilment_mode,
                endless_aisle_handover=order.endless_aisle_handover,
                selling_store_id=order.selling_store_id,
                selling_guide_staff_id=order.selling_guide_staff_id,
                referring_guide_code=order.referring_guide_code,
                pickup_store_id=order.pickup_store_id,
                delivery_address=order.delivery_address
                if order.HasField("delivery_address")
                else None,
                lines=[
                    order_service_pb2.CaptureLine(
                        sku_code=x.sku_code,
                        quantity=x.quantity,
                        unit_price=x.unit_price,
                        discount=x.discount,
                    )
                    for x in order.lines
                ],
                payment_state=payment,
                stock_channel=order.stock_channel,
            )
        )
        return response.order

    async def get_order(self, order_id: str) -> order_service_pb2.GetOrderResponse:
        return await self.order.GetOrder(order_service_pb2.GetOrderRequest(order_id=order_id))

    async def receive_return(
        self,
        request_id: str,
        order_id: str,
        location_id: str,
        lines: Sequence[tuple[str, int, bool]],
    ) -> order_pb2.OrderReturn:
        """lines: (line id, quantity, resaleable)."""
        response = await self.order.ReceiveReturn(
            order_service_pb2.ReceiveReturnRequest(
                request_id=request_id,
                order_id=order_id,
                receiving_location_id=location_id,
                lines=[
                    order_pb2.ReturnLineRequest(
                        line_id=line_id,
                        quantity=quantity,
                        condition=(
                            order_pb2.RETURN_CONDITION_RESALEABLE
                            if resaleable
                            else order_pb2.RETURN_CONDITION_DAMAGED
                        ),
                    )
                    for line_id, quantity, resaleable in lines
                ],
            )
        )
        return response.order_return

    async def ship_fulfilment(
        self, request_id: str, fulfilment_id: str, assignee: str
    ) -> order_pb2.FulfilmentOrder:
        response = await self.order.ShipFulfilment(
            order_service_pb2.ShipFulfilmentRequest(
                request_id=request_id, fulfilment_id=fulfilment_id, assignee=assignee
            )
        )
        return response.fulfilment_order

    async def mark_ready(self, request_id: str, fulfilment_id: str) -> order_pb2.FulfilmentOrder:
        response = await self.order.MarkReadyForPickup(
            order_service_pb2.MarkReadyForPickupRequest(
                request_id=request_id, fulfilment_id=fulfilment_id
            )
        )
        return response.fulfilment_order

    async def confirm_delivery(
        self, request_id: str, fulfilment_id: str
    ) -> order_pb2.FulfilmentOrder:
        response = await self.order.ConfirmDelivery(
            order_service_pb2.ConfirmDeliveryRequest(
                request_id=request_id, fulfilment_id=fulfilment_id
            )
        )
        return response.fulfilment_order
