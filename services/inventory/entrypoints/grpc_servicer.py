"""omni.inventory.v1.InventoryService: translate, call a use case, translate back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from omni.inventory.v1 import inventory_pb2
from omni.inventory.v1 import inventory_service_pb2 as pb
from omni.inventory.v1 import inventory_service_pb2_grpc as pb_grpc

from libs.db import is_database_unavailable, is_retryable_conflict
from libs.errors import DomainError, InvalidArgument, Validator
from libs.idempotency import fingerprint, run_idempotent, validate_request_id
from libs.pagination import decode_token, encode_token, page_size
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory
from services.inventory.adapters import proto
from services.inventory.adapters.import_csv import parse_csv
from services.inventory.domain.reservations import Reservation
from services.inventory.domain.stock import MovementKind
from services.inventory.domain.tracked_skus import TrackedSku
from services.inventory.service_layer import locations, reservations, stock, tracked_skus, transfers
from services.inventory.service_layer.reservation_engine import (
    HoldOutcome,
    RequestRecord,
    ReservationEngine,
)
from services.inventory.service_layer.stock import ImportRow

Context = grpc.aio.ServicerContext[Any, Any]

MAX_PAGE_SIZE = 500
MAX_HOLDS_PER_CALL = 500


def tracked_sku_to_proto(sku: TrackedSku) -> inventory_pb2.TrackedSku:
    since = Timestamp()
    since.FromDatetime(sku.tracked_since)
    return inventory_pb2.TrackedSku(
        sku_code=sku.sku_code, style_code=sku.style_code, barcode=sku.barcode, track_time=since
    )


def _kind(value: int) -> MovementKind | None:
    return proto.MOVEMENT_KINDS.get(value)


def _now() -> datetime:
    return datetime.now(UTC)


def _reserve_response(reservation: Reservation) -> bytes:
    return pb.ReserveResponse(
        reservation=proto.reservation_to_proto(reservation)
    ).SerializeToString()


def _hold_result(order_id: str, outcome: HoldOutcome) -> pb.HoldResult:
    if outcome.error is not None:
        result = proto.hold_refusal_to_proto(order_id, outcome.error)
    else:
        assert outcome.reservation is not None
        result = pb.HoldResult(
            order_id=order_id,
            code=pb.HOLD_CODE_OK,
            reservation=proto.reservation_to_proto(outcome.reservation),
        )
    result.skipped.extend(proto.skipped_to_proto(s) for s in outcome.skipped)
    return result


class InventoryServicer(pb_grpc.InventoryServiceServicer):
    def __init__(self, uow_factory: UnitOfWorkFactory, engine: ReservationEngine) -> None:
        self.uow = uow_factory
        self.engine = engine

    # --- tracked SKUs and locations ------------------------------------------------------

    async def GetTrackedSku(
        self, request: pb.GetTrackedSkuRequest, context: Context
    ) -> pb.GetTrackedSkuResponse:
        async with self.uow() as uow:
            found = await tracked_skus.get_tracked_sku(uow, request.sku_code)
        return pb.GetTrackedSkuResponse(tracked_sku=tracked_sku_to_proto(found))

    async def CreateLocation(
        self, request: pb.CreateLocationRequest, context: Context
    ) -> pb.CreateLocationResponse:
        v = Validator()
        for i in proto.unknown_capabilities(request.location):
            v.add(f"location.capabilities[{i}]", "is not a known capability")
        v.raise_if_any()
        location = proto.location_from_proto(
            request.location, request.location.default_safety_stock
        )
        location.validate()

        async def handle(uow: UnitOfWork) -> pb.CreateLocationResponse:
            created = await locations.create_location(
                uow,
                location,
                use_type_default_safety_stock=request.use_type_default_safety_stock,
            )
            return pb.CreateLocationResponse(location=proto.location_to_proto(created))

        return await run_idempotent(
            self.uow, "CreateLocation", request, pb.CreateLocationResponse, handle
        )

    async def UpdateLocation(
        self, request: pb.UpdateLocationRequest, context: Context
    ) -> pb.UpdateLocationResponse:
        v = Validator()
        for i in proto.unknown_capabilities(request.location):
            v.add(f"location.capabilities[{i}]", "is not a known capability")
        v.raise_if_any()
        keep_active = not request.location.HasField("active")
        location = proto.location_from_proto(
            request.location, request.location.default_safety_stock, active=request.location.active
        )
        location.validate()

        async def handle(uow: UnitOfWork) -> pb.UpdateLocationResponse:
            updated = await locations.update_location(uow, location, keep_active=keep_active)
            return pb.UpdateLocationResponse(location=proto.location_to_proto(updated))

        return await run_idempotent(
            self.uow, "UpdateLocation", request, pb.UpdateLocationResponse, handle
        )

    async def GetLocation(
        self, request: pb.GetLocationRequest, context: Context
    ) -> pb.GetLocationResponse:
        async with self.uow() as uow:
            found = await locations.get_location(uow, request.location_id)
        return pb.GetLocationResponse(location=proto.location_to_proto(found))

    async def ListLocations(
        self, request: pb.ListLocationsRequest, context: Context
    ) -> pb.ListLocationsResponse:
        size = page_size(request.page_size, maximum=MAX_PAGE_SIZE)
        position = decode_token(request.page_token, 1)
        after = str(position[0]) if position else ""
        async with self.uow() as uow:
            page, last, version = await locations.list_locations(uow, after, size, request.channel)
        return pb.ListLocationsResponse(
            locations=[proto.location_to_proto(loc) for loc in page],
            next_page_token=encode_token([last]) if last else "",
            locations_version=version,
        )

    # --- ledger --------------------------------------------------------------------------

    async def RecordMovement(
        self, request: pb.RecordMovementRequest, context: Context
    ) -> pb.RecordMovementResponse:
        async def handle(uow: UnitOfWork) -> pb.RecordMovementResponse:
            result = await stock.record_movement(
                uow,
                location_id=request.location_id,
                sku_code=request.sku_code,
                kind=_kind(request.kind),
                quantity=request.quantity,
                reason=request.reason,
                idempotency_key=request.idempotency_key,
                fallback_key=f"request:RecordMovement:{request.request_id}",
                reference=request.reference,
            )
            return pb.RecordMovementResponse(
                movement=proto.movement_to_proto(result.movement),
                stock_level=proto.level_to_proto(result.level),
            )

        return await run_idempotent(
            self.uow, "RecordMovement", request, pb.RecordMovementResponse, handle
        )

    async def RecordCount(
        self, request: pb.RecordCountRequest, context: Context
    ) -> pb.RecordCountResponse:
        async def handle(uow: UnitOfWork) -> pb.RecordCountResponse:
            result = await stock.record_count(
                uow,
                location_id=request.location_id,
                sku_code=request.sku_code,
                counted_quantity=request.counted_quantity,
                reason=request.reason,
                idempotency_key=request.idempotency_key,
                fallback_key=f"request:RecordCount:{request.request_id}",
            )
            return pb.RecordCountResponse(
                movement=proto.movement_to_proto(result.movement),
                stock_level=proto.level_to_proto(result.level),
            )

        return await run_idempotent(
            self.uow, "RecordCount", request, pb.RecordCountResponse, handle
        )

    async def ImportStock(
        self, request: pb.ImportStockRequest, context: Context
    ) -> pb.ImportStockResponse:
        if request.WhichOneof("source") == "csv_file":
            rows, parse_errors = parse_csv(request.csv_file)
        else:
            rows = [
                ImportRow(
                    location_id=row.location_id,
                    sku_code=row.sku_code,
                    kind=_kind(row.kind),
                    quantity=row.quantity,
                    idempotency_key=row.idempotency_key,
                    reason=row.reason,
                )
                for row in request.rows.rows
            ]
            parse_errors = []

        async def handle(uow: UnitOfWork) -> pb.ImportStockResponse:
            result = await stock.import_stock(
                uow, rows, f"import:{request.request_id}", parse_errors
            )
            return pb.ImportStockResponse(
                applied_rows=result.applied,
                duplicate_rows=result.duplicates,
                errors=[
                    inventory_pb2.ImportRowError(
                        row=e.row, field=e.field, description=e.description
                    )
                    for e in result.errors
                ],
            )

        return await run_idempotent(
            self.uow, "ImportStock", request, pb.ImportStockResponse, handle
        )

    async def SetSafetyStock(
        self, request: pb.SetSafetyStockRequest, context: Context
    ) -> pb.SetSafetyStockResponse:
        async def handle(uow: UnitOfWork) -> pb.SetSafetyStockResponse:
            level = await stock.set_safety_stock(
                uow, request.location_id, request.sku_code, request.safety_stock
            )
            return pb.SetSafetyStockResponse(stock_level=proto.level_to_proto(level))

        return await run_idempotent(
            self.uow, "SetSafetyStock", request, pb.SetSafetyStockResponse, handle
        )

    async def SetChannelQuota(
        self, request: pb.SetChannelQuotaRequest, context: Context
    ) -> pb.SetChannelQuotaResponse:
        quota = None if request.clear_quota else request.quota

        async def handle(uow: UnitOfWork) -> pb.SetChannelQuotaResponse:
            await stock.set_channel_quota(uow, request.channel, request.sku_code, quota)
            return pb.SetChannelQuotaResponse(
                channel=request.channel, sku_code=request.sku_code, quota=quota
            )

        return await run_idempotent(
            self.uow, "SetChannelQuota", request, pb.SetChannelQuotaResponse, handle
        )

    async def GetStockLevel(
        self, request: pb.GetStockLevelRequest, context: Context
    ) -> pb.GetStockLevelResponse:
        async with self.uow() as uow:
            level = await stock.get_stock_level(uow, request.location_id, request.sku_code)
        return pb.GetStockLevelResponse(stock_level=proto.level_to_proto(level))

    async def ListMovements(
        self, request: pb.ListMovementsRequest, context: Context
    ) -> pb.ListMovementsResponse:
        size = page_size(request.page_size, maximum=MAX_PAGE_SIZE)
        position = decode_token(request.page_token, 1, (int,))
        async with self.uow() as uow:
            page, last = await stock.list_movements(
                uow,
                request.location_id,
                request.sku_code,
                int(position[0]) if position else 0,
                size,
            )
        return pb.ListMovementsResponse(
            movements=[proto.movement_to_proto(m) for m in page],
            next_page_token=encode_token([last]) if last else "",
        )

    # --- availability ----------------------------------------------------------------------

    async def GetAvailability(
        self, request: pb.GetAvailabilityRequest, context: Context
    ) -> pb.GetAvailabilityResponse:
        async with self.uow() as uow:
            results = await stock.get_availability(
                uow, request.channel, list(request.sku_codes), request.include_locations
            )
        return pb.GetAvailabilityResponse(
            skus=[
                inventory_pb2.SkuAvailability(
                    sku_code=r.totals.sku_code,
                    available=r.totals.available,
                    on_hand=r.totals.on_hand,
                    reserved=r.totals.reserved,
                    safety_stock=r.totals.safety_stock,
                    in_transit=r.totals.in_transit,
                    quota=r.totals.quota,
                    locations=[proto.level_to_proto(level) for level in r.locations],
                )
                for r in results
            ]
        )

    async def FindNearestStock(
        self, request: pb.FindNearestStockRequest, context: Context
    ) -> pb.FindNearestStockResponse:
        capability = None
        if request.capability:
            capability = proto.CAPABILITIES.get(request.capability)
            if capability is None:
                raise InvalidArgument.field("capability", "is not a known capability")
        async with self.uow() as uow:
            found = await stock.find_nearest_stock(
                uow,
                latitude=request.latitude,
                longitude=request.longitude,
                radius_m=request.radius_meters,
                wanted=[(s.sku_code, s.quantity) for s in request.skus],
                capability=capability,
                open_now=request.open_now,
                channel=request.channel,
                require_all=request.require_all,
                max_results=request.max_results,
                at=_now(),
            )
        return pb.FindNearestStockResponse(
            locations=[
                inventory_pb2.NearbyStock(
                    location=proto.location_to_proto(n.location),
                    distance_meters=round(n.distance_m, 1),
                    available=[
                        inventory_pb2.SkuQuantity(sku_code=sku, quantity=qty)
                        for sku, qty in sorted(n.available.items())
                    ],
                    has_all=n.has_all,
                )
                for n in found
            ]
        )

    # --- reservations ---------------------------------------------------------------------

    async def Reserve(self, request: pb.ReserveRequest, context: Context) -> pb.ReserveResponse:
        validate_request_id(request.request_id)
        outcome = await self.engine.hold(
            proto.hold_from_reserve(request),
            RequestRecord("Reserve", request.request_id, fingerprint(request), _reserve_response),
        )
        if outcome.stored_response is not None:
            stored = pb.ReserveResponse()
            stored.ParseFromString(outcome.stored_response)
            return stored
        if outcome.error is not None:
            raise outcome.error
        assert outcome.reservation is not None
        return pb.ReserveResponse(reservation=proto.reservation_to_proto(outcome.reservation))

    async def ReserveBatch(
        self, request: pb.ReserveBatchRequest, context: Context
    ) -> pb.ReserveBatchResponse:
        v = Validator()
        v.check(bool(request.holds), "holds", "at least one hold is required")
        v.check(
            len(request.holds) <= MAX_HOLDS_PER_CALL,
            "holds",
            f"at most {MAX_HOLDS_PER_CALL} holds per call",
        )
        v.raise_if_any()
        # Saturated: the whole call is turned away at once (before any hold is queued).
        self.engine.admit(len(request.holds))

        async def one(msg: pb.HoldRequest) -> pb.HoldResult:
            try:
                hold = proto.hold_from_proto(msg)
            except InvalidArgument as error:
                return _hold_result(msg.order_id, HoldOutcome(error=error))
            try:
                outcome = await self.engine.hold(hold)
            except Exception as error:
                # An outage or saturation fails the call (its retry is safe); a fault the
                # engine isolated to this hold fails it alone.
                if (
                    isinstance(error, DomainError)
                    or is_database_unavailable(error)
                    or is_retryable_conflict(error)
                ):
                    raise
                return proto.hold_refusal_to_proto(msg.order_id, error)
            return _hold_result(msg.order_id, outcome)

        # Queued in the order given, so they are decided in that order.
        results = await asyncio.gather(*(one(msg) for msg in request.holds))
        return pb.ReserveBatchResponse(results=results)

    async def ConfirmReservation(
        self, request: pb.ConfirmReservationRequest, context: Context
    ) -> pb.ConfirmReservationResponse:
        async def handle(uow: UnitOfWork) -> pb.ConfirmReservationResponse:
            reservation = await reservations.confirm(uow, request.order_id)
            return pb.ConfirmReservationResponse(
                reservation=proto.reservation_to_proto(reservation)
            )

        return await run_idempotent(
            self.uow, "ConfirmReservation", request, pb.ConfirmReservationResponse, handle
        )

    async def ReleaseReservation(
        self, request: pb.ReleaseReservationRequest, context: Context
    ) -> pb.ReleaseReservationResponse:
        async def handle(uow: UnitOfWork) -> pb.ReleaseReservationResponse:
            reservation = await reservations.release(uow, request.order_id)
            return pb.ReleaseReservationResponse(
                reservation=proto.reservation_to_proto(reservation)
            )

        return await run_idempotent(
            self.uow, "ReleaseReservation", request, pb.ReleaseReservationResponse, handle
        )

    async def MoveReservation(
        self, request: pb.MoveReservationRequest, context: Context
    ) -> pb.MoveReservationResponse:
        async def handle(uow: UnitOfWork) -> pb.MoveReservationResponse:
            reservation = await reservations.move(
                uow, request.order_id, request.line_id, request.to_location_id
            )
            return pb.MoveReservationResponse(reservation=proto.reservation_to_proto(reservation))

        return await run_idempotent(
            self.uow, "MoveReservation", request, pb.MoveReservationResponse, handle
        )

    async def GetReservation(
        self, request: pb.GetReservationRequest, context: Context
    ) -> pb.GetReservationResponse:
        async with self.uow() as uow:
            found = await reservations.get_reservation(uow, request.order_id)
        return pb.GetReservationResponse(reservation=proto.reservation_to_proto(found))

    # --- transfers ------------------------------------------------------------------------

    async def RequestTransfer(
        self, request: pb.RequestTransferRequest, context: Context
    ) -> pb.RequestTransferResponse:
        lines = [(line.sku_code, line.quantity) for line in request.lines]

        async def handle(uow: UnitOfWork) -> pb.RequestTransferResponse:
            transfer = await transfers.request_transfer(
                uow,
                request.from_location_id,
                request.to_location_id,
                lines,
                request.reason,
                _now(),
            )
            return pb.RequestTransferResponse(transfer=proto.transfer_to_proto(transfer))

        return await run_idempotent(
            self.uow, "RequestTransfer", request, pb.RequestTransferResponse, handle
        )

    async def ShipTransfer(
        self, request: pb.ShipTransferRequest, context: Context
    ) -> pb.ShipTransferResponse:
        shipped = [(s.sku_code, s.quantity) for s in request.shipped]

        async def handle(uow: UnitOfWork) -> pb.ShipTransferResponse:
            transfer = await transfers.ship(uow, request.transfer_id, shipped, _now())
            return pb.ShipTransferResponse(transfer=proto.transfer_to_proto(transfer))

        return await run_idempotent(
            self.uow, "ShipTransfer", request, pb.ShipTransferResponse, handle
        )

    async def ReceiveTransfer(
        self, request: pb.ReceiveTransferRequest, context: Context
    ) -> pb.ReceiveTransferResponse:
        received = [(s.sku_code, s.quantity) for s in request.received]

        async def handle(uow: UnitOfWork) -> pb.ReceiveTransferResponse:
            transfer = await transfers.receive(uow, request.transfer_id, received, _now())
            return pb.ReceiveTransferResponse(transfer=proto.transfer_to_proto(transfer))

        return await run_idempotent(
            self.uow, "ReceiveTransfer", request, pb.ReceiveTransferResponse, handle
        )

    async def GetTransfer(
        self, request: pb.GetTransferRequest, context: Context
    ) -> pb.GetTransferResponse:
        async with self.uow() as uow:
            found = await transfers.get_transfer(uow, request.transfer_id)
        return pb.GetTransferResponse(transfer=proto.transfer_to_proto(found))

    async def CancelTransfer(
        self, request: pb.CancelTransferRequest, context: Context
    ) -> pb.CancelTransferResponse:
        async def handle(uow: UnitOfWork) -> pb.CancelTransferResponse:
            transfer = await transfers.cancel(uow, request.transfer_id, request.reason, _now())
            return pb.CancelTransferResponse(transfer=proto.transfer_to_proto(transfer))

        return await run_idempotent(
            self.uow, "CancelTransfer", request, pb.CancelTransferResponse, handle
        )
