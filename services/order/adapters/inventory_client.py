"""The inventory peer as the order service needs it (gRPC through libs.grpc_client).

Every mutating call carries a request_id derived from the order (or fulfilment) so that a
retry after a crash is the same call to inventory, never a second hold or a second sale.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import grpc
from omni.inventory.v1 import inventory_pb2 as res
from omni.inventory.v1 import inventory_service_pb2 as inv
from omni.inventory.v1 import inventory_service_pb2_grpc as inv_grpc

from libs.batching import Batcher
from libs.config import Settings
from libs.errors import FailedPrecondition, Unavailable
from libs.grpc_client import peer_channel
from services.order.adapters.location_directory import CAPABILITIES, LocationDirectory
from services.order.domain.routing import Candidate, Capability, haversine_meters

CAPABILITIES_PB = {v: k for k, v in CAPABILITIES.items()}
# Holds per ReserveBatch call (inventory takes at most 500).
MAX_HOLDS_PER_CALL = 200
log = logging.getLogger(__name__)
# The longest hold inventory grants: the order service ends holds itself (unpaid expiry,
# cancel), so inventory's own expiry is only the last safety net.
MAX_HOLD_SECONDS = 7 * 24 * 3600
SEARCH_RADIUS_METERS = 1_000_000.0
# Inventory's limits per query (GetAvailability, FindNearestStock): larger orders are asked
# about in chunks.
AVAILABILITY_CHUNK = 100
NEARBY_CHUNK = 50

TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
}


class StockRefused(FailedPrecondition):
    """Inventory refused a hold or a transfer (e.g. not enough stock); the workflow
    compensates, and a caller that meets it sees FAILED_PRECONDITION."""


class InventoryRefused(FailedPrecondition):
    """Inventory refused a call for a reason a retry will not change (INVALID_ARGUMENT,
    NOT_FOUND, ...): routing parks the order as unfillable with the reason; a caller that
    meets it elsewhere sees FAILED_PRECONDITION, never INTERNAL."""


@dataclass(frozen=True)
class Place:
    location_id: str
    city: str
    latitude: float
    longitude: float
    capabilities: frozenset[Capability]


@dataclass(frozen=True)
class HoldLine:
    line_id: str
    sku_code: str
    location_id: str
    quantity: int


@dataclass(frozen=True)
class FirstFitHold:
    """Hold the whole order at the first of ``candidates`` that can take every line."""

    key: str
    channel: str
    # (line id, sku, quantity)
    lines: tuple[tuple[str, str, int], ...]
    candidates: tuple[str, ...]
    capability: Capability | None
    require_open_now: bool
    # A sale at the counter: held and confirmed (the goods leave now) in one step.
    confirm: bool
    locations_version: int


@dataclass(frozen=True)
class FirstFitAnswer:
    # Where the whole order is held ("" when refused).
    location_id: str = ""
    # Refused: why; stale: the ranking was made from locations that changed since.
    reason: str = ""
    stale: bool = False
    # Candidates ranked before the one that took it (or all, when refused), and why not.
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return bool(self.location_id)


def _raise(exc: grpc.aio.AioRpcError, what: str) -> NoReturn:
    if exc.code() in TRANSIENT:
        raise Unavailable(f"inventory unavailable during {what}: {exc.details()}") from exc
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        raise StockRefused(exc.details() or what) from exc
    raise InventoryRefused(
        f"inventory refused {what} ({exc.code().name}): {exc.details() or 'no details'}"
    ) from exc


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _place(loc: res.Location) -> Place:
    return Place(
        loc.location_id,
        loc.city,
        loc.latitude,
        loc.longitude,
        frozenset(CAPABILITIES[c] for c in loc.capabilities if c in CAPABILITIES),
    )


class InventoryClient:
    def __init__(self, settings: Settings) -> None:
        self._channel = peer_channel(settings, "inventory")
        self._stub: inv_grpc.InventoryServiceAsyncStub = inv_grpc.InventoryServiceStub(
            self._channel
        )
        self.directory = LocationDirectory(self._stub)
        # Concurrent captures share ReserveBatch calls (group commit at inventory).
        self._holds: Batcher[FirstFitHold, FirstFitAnswer] = Batcher(
            self._hold_batch, max_batch=MAX_HOLDS_PER_CALL, name="reserve-batch"
        )

    async def close(self) -> None:
        await self._holds.close()
        await self._channel.close()

    async def hold_first_fit(self, hold: FirstFitHold) -> FirstFitAnswer:
        """Idempotent on ``hold.key``: asking again answers as the first time did."""
        return await self._holds.submit(hold)

    async def _hold_batch(
        self, holds: Sequence[FirstFitHold]
    ) -> list[FirstFitAnswer | BaseException]:
        try:
            got = await self._stub.ReserveBatch(
                inv.ReserveBatchRequest(
                    holds=[
                        inv.HoldRequest(
                            order_id=h.key,
                            channel=h.channel,
                            ttl_seconds=MAX_HOLD_SECONDS,
                            lines=[
                                res.ReservationLine(line_id=line_id, sku_code=sku, quantity=qty)
                                for line_id, sku, qty in h.lines
                            ],
                            candidate_location_ids=list(h.candidates),
                            required_capability=CAPABILITIES_PB[h.capability]
                            if h.capability is not None
                            else res.CAPABILITY_UNSPECIFIED,
                            require_open_now=h.require_open_now,
                            confirm=h.confirm,
                            locations_version=h.locations_version,
                        )
                        for h in holds
                    ]
                )
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in TRANSIENT:
                raise Unavailable(
                    f"inventory unavailable during ReserveBatch: {exc.details()}"
                ) from exc
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                # An inventory without batched holds: every order is routed in full.
                return [FirstFitAnswer(reason="inventory holds one order at a time")] * len(holds)
            raise InventoryRefused(
                f"inventory refused ReserveBatch ({exc.code().name}): {exc.details()}"
            ) from exc
        answers: list[FirstFitAnswer | BaseException] = []
        for result in got.results:
            skipped = {s.location_id: s.reason for s in result.skipped}
            if result.code == inv.HOLD_CODE_OK:
                where = result.reservation.lines[0].location_id if result.reservation.lines else ""
                answers.append(FirstFitAnswer(location_id=where, skipped=skipped))
            elif result.code == inv.HOLD_CODE_STALE_LOCATIONS:
                answers.append(FirstFitAnswer(reason=result.message, stale=True))
            else:
                answers.append(
                    FirstFitAnswer(
                        reason=result.message or "no candidate could take it", skipped=skipped
                    )
                )
        if len(answers) != len(holds):
            raise InventoryRefused(
                f"inventory answered {len(answers)} holds for {len(holds)} asked"
            )
        return answers

    async def place(self, location_id: str) -> Place | None:
        try:
            got = await self._stub.GetLocation(inv.GetLocationRequest(location_id=location_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}:
                return None
            _raise(exc, "GetLocation")
        if not got.location.active:
            return None
        return _place(got.location)

    async def candidates(
        self,
        channel: str,
        wanted: dict[str, int],
        point: tuple[float, float] | None,
        need_open_state: bool,
    ) -> list[Candidate]:
        """Every location serving the channel that holds some wanted SKU: ATP per location
        from GetAvailability, distance/city/capabilities from FindNearestStock around the
        point (and GetLocation for holders beyond it), open-now from a second search. Asked
        in chunks within inventory's limits; a refusal that a retry will not change (e.g. a
        SKU inventory has not registered yet) is InventoryRefused."""
        skus = sorted(wanted)
        available: dict[str, dict[str, int]] = {}
        for chunk in _chunks(skus, AVAILABILITY_CHUNK):
            try:
                atp = await self._stub.GetAvailability(
                    inv.GetAvailabilityRequest(
                        channel=channel, sku_codes=chunk, include_locations=True
                    )
                )
            except grpc.aio.AioRpcError as exc:
                _raise(exc, "the availability query")
            for sku in atp.skus:
                for level in sku.locations:
                    if level.available > 0:
                        available.setdefault(level.location_id, {})[sku.sku_code] = level.available
        places: dict[str, tuple[Place, float | None]] = {}
        open_ids: set[str] | None = None
        if point is not None and available:
            open_ids = set() if need_open_state else None
            for chunk in _chunks(skus, NEARBY_CHUNK):
                for open_now in (False, True) if need_open_state else (False,):
                    try:
                        found = await self._stub.FindNearestStock(
                            inv.FindNearestStockRequest(
                                latitude=point[0],
                                longitude=point[1],
                                radius_meters=SEARCH_RADIUS_METERS,
                                skus=[res.SkuQuantity(sku_code=s, quantity=1) for s in chunk],
                                channel=channel,
                                open_now=open_now,
                                max_results=200,
                            )
                        )
                    except grpc.aio.AioRpcError as exc:
                        _raise(exc, "the nearest-stock query")
                    for near in found.locations:
                        if open_now:
                            assert open_ids is not None
                            open_ids.add(near.location.location_id)
                        else:
                            places[near.location.location_id] = (
                                _place(near.location),
                                near.distance_meters,
                            )
        result: list[Candidate] = []
        for location_id, stock in sorted(available.items()):
            if location_id in places:
                place, distance = places[location_id]
            else:
                found_place = await self.place(location_id)
                if found_place is None:
                    continue
                place = found_place
                distance = (
                    haversine_meters(point[0], point[1], place.latitude, place.longitude)
                    if point is not None
                    else None
                )
            result.append(
                Candidate(
                    location_id=location_id,
                    city=place.city,
                    capabilities=place.capabilities,
                    available=stock,
                    distance_meters=distance,
                    open_now=open_ids is None or location_id in open_ids,
                )
            )
        return result

    async def reserve(self, key: str, channel: str, lines: Sequence[HoldLine]) -> None:
        try:
            await self._stub.Reserve(
                inv.ReserveRequest(
                    request_id=f"reserve:{key}",
                    order_id=key,
                    channel=channel,
                    lines=[
                        res.ReservationLine(
                            line_id=line.line_id,
                            sku_code=line.sku_code,
                            location_id=line.location_id,
                            quantity=line.quantity,
                        )
                        for line in lines
                    ],
                    ttl_seconds=MAX_HOLD_SECONDS,
                )
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                # E.g. a location stopped serving the channel since routing: refuse the hold.
                raise StockRefused(exc.details() or "hold refused") from exc
            _raise(exc, "Reserve")

    async def hold_is_active(self, key: str) -> bool:
        """Whether the reservation under ``key`` still holds its units (a replayed Reserve
        answers with its first success even when the hold was given back since)."""
        try:
            got = await self._stub.GetReservation(inv.GetReservationRequest(order_id=key))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            _raise(exc, "GetReservation")
        return got.reservation.status == res.RESERVATION_STATUS_ACTIVE

    async def release(self, key: str, reason: str) -> None:
        try:
            await self._stub.ReleaseReservation(
                inv.ReleaseReservationRequest(
                    request_id=f"release:{key}", order_id=key, reason=reason
                )
            )
        except grpc.aio.AioRpcError as exc:
            # Never held (crash before the hold) or already ended: nothing to give back.
            if exc.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION}:
                return
            _raise(exc, "ReleaseReservation")

    async def confirm(self, key: str) -> None:
        try:
            await self._stub.ConfirmReservation(
                inv.ConfirmReservationRequest(request_id=f"confirm:{key}", order_id=key)
            )
        except grpc.aio.AioRpcError as exc:
            _raise(exc, "ConfirmReservation")

    async def request_transfer(
        self, request_id: str, from_id: str, to_id: str, lines: dict[str, int], reason: str
    ) -> str:
        try:
            got = await self._stub.RequestTransfer(
                inv.RequestTransferRequest(
                    request_id=request_id,
                    from_location_id=from_id,
                    to_location_id=to_id,
                    lines=[
                        res.SkuQuantity(sku_code=s, quantity=q) for s, q in sorted(lines.items())
                    ],
                    reason=reason,
                )
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise StockRefused(exc.details() or "transfer refused") from exc
            _raise(exc, "RequestTransfer")
        return got.transfer.transfer_id

    async def cancel_transfer(self, request_id: str, transfer_id: str, reason: str) -> bool:
        """Call off a requested transfer; False when its goods already left (it shipped)."""
        try:
            await self._stub.CancelTransfer(
                inv.CancelTransferRequest(
                    request_id=request_id, transfer_id=transfer_id, reason=reason[:500]
                )
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return True
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return False
            _raise(exc, "CancelTransfer")
        return True

    async def ship_transfer(self, request_id: str, transfer_id: str) -> None:
        try:
            await self._stub.ShipTransfer(
                inv.ShipTransferRequest(request_id=request_id, transfer_id=transfer_id)
            )
        except grpc.aio.AioRpcError as exc:
            _raise(exc, "ShipTransfer")

    async def receive_transfer(self, request_id: str, transfer_id: str) -> None:
        try:
            await self._stub.ReceiveTransfer(
                inv.ReceiveTransferRequest(request_id=request_id, transfer_id=transfer_id)
            )
        except grpc.aio.AioRpcError as exc:
            _raise(exc, "ReceiveTransfer")

    async def restock_return(
        self, key: str, location_id: str, sku_code: str, quantity: int, reference: str
    ) -> None:
        try:
            await self._stub.RecordMovement(
                inv.RecordMovementRequest(
                    request_id=f"return:{key}",
                    location_id=location_id,
                    sku_code=sku_code,
                    kind=res.MOVEMENT_KIND_RETURN,
                    quantity=quantity,
                    reason="customer return",
                    idempotency_key=f"order-return:{key}",
                    reference=reference,
                )
            )
        except grpc.aio.AioRpcError as exc:
            _raise(exc, "RecordMovement")
