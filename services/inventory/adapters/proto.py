"""Domain objects ↔ omni.inventory.v1 messages."""

from __future__ import annotations

from omni.inventory.v1 import inventory_pb2 as pb
from omni.inventory.v1 import inventory_service_pb2 as service_pb

from libs.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
)
from libs.proto_input import optional_timestamp as timestamp
from services.inventory.domain.holds import Hold, Skipped, StaleLocations
from services.inventory.domain.locations import Capability, Location, LocationType, OpeningHours
from services.inventory.domain.reservations import (
    Reservation,
    ReservationLine,
    ReservationStatus,
)
from services.inventory.domain.stock import Movement, MovementKind, StockLevel, shown_key
from services.inventory.domain.transfers import Transfer, TransferStatus

LOCATION_TYPES: dict[int, LocationType] = {
    pb.LOCATION_TYPE_FACTORY_WAREHOUSE: LocationType.FACTORY_WAREHOUSE,
    pb.LOCATION_TYPE_ECOMMERCE_WAREHOUSE: LocationType.ECOMMERCE_WAREHOUSE,
    pb.LOCATION_TYPE_REGIONAL_WAREHOUSE: LocationType.REGIONAL_WAREHOUSE,
    pb.LOCATION_TYPE_STORE: LocationType.STORE,
    pb.LOCATION_TYPE_AGENT_WAREHOUSE: LocationType.AGENT_WAREHOUSE,
}
CAPABILITIES: dict[int, Capability] = {
    pb.CAPABILITY_EXPRESS_SHIPPING: Capability.EXPRESS_SHIPPING,
    pb.CAPABILITY_SAME_CITY_DELIVERY: Capability.SAME_CITY_DELIVERY,
    pb.CAPABILITY_PICKUP: Capability.PICKUP,
    pb.CAPABILITY_TRANSFER: Capability.TRANSFER,
}
MOVEMENT_KINDS: dict[int, MovementKind] = {
    pb.MOVEMENT_KIND_RECEIPT: MovementKind.RECEIPT,
    pb.MOVEMENT_KIND_SALE: MovementKind.SALE,
    pb.MOVEMENT_KIND_ADJUSTMENT: MovementKind.ADJUSTMENT,
    pb.MOVEMENT_KIND_COUNT: MovementKind.COUNT,
    pb.MOVEMENT_KIND_TRANSFER_OUT: MovementKind.TRANSFER_OUT,
    pb.MOVEMENT_KIND_TRANSFER_IN: MovementKind.TRANSFER_IN,
    pb.MOVEMENT_KIND_RETURN: MovementKind.RETURN,
}
RESERVATION_STATUSES: dict[ReservationStatus, pb.ReservationStatus.ValueType] = {
    ReservationStatus.ACTIVE: pb.RESERVATION_STATUS_ACTIVE,
    ReservationStatus.CONFIRMED: pb.RESERVATION_STATUS_CONFIRMED,
    ReservationStatus.RELEASED: pb.RESERVATION_STATUS_RELEASED,
    ReservationStatus.EXPIRED: pb.RESERVATION_STATUS_EXPIRED,
}
TRANSFER_STATUSES: dict[TransferStatus, pb.TransferStatus.ValueType] = {
    TransferStatus.REQUESTED: pb.TRANSFER_STATUS_REQUESTED,
    TransferStatus.IN_TRANSIT: pb.TRANSFER_STATUS_IN_TRANSIT,
    TransferStatus.RECEIVED: pb.TRANSFER_STATUS_RECEIVED,
    TransferStatus.CANCELLED: pb.TRANSFER_STATUS_CANCELLED,
}


def location_from_proto(
    msg: pb.Location, default_safety_stock: int, *, active: bool = True
) -> Location:
    """Unknown enum values become None / are dropped here and are refused by validate()."""
    return Location(
        location_id=msg.location_id,
        name=msg.name,
        type=LOCATION_TYPES.get(msg.type),
        province=msg.province,
        city=msg.city,
        latitude=msg.latitude,
        longitude=msg.longitude,
        time_zone=msg.time_zone,
        opening_hours=tuple(
            OpeningHours(h.day_of_week, h.open_minute, h.close_minute) for h in msg.opening_hours
        ),
        capabilities=frozenset(CAPABILITIES[c] for c in msg.capabilities if c in CAPABILITIES),
        channels=tuple(msg.channels),
        default_safety_stock=default_safety_stock,
        active=active,
    )


def unknown_capabilities(msg: pb.Location) -> list[int]:
    return [i for i, c in enumerate(msg.capabilities) if c not in CAPABILITIES]


_TYPE_TO_PROTO = {v: k for k, v in LOCATION_TYPES.items()}
_CAPABILITY_TO_PROTO = {v: k for k, v in CAPABILITIES.items()}
_KIND_TO_PROTO = {v: k for k, v in MOVEMENT_KINDS.items()}


def capability_to_proto(capability: Capability) -> int:
    return _CAPABILITY_TO_PROTO[capability]


def location_to_proto(location: Location) -> pb.Location:
    return pb.Location(
        location_id=location.location_id,
        name=location.name,
        type=_TYPE_TO_PROTO[location.type] if location.type else 0,  # type: ignore[arg-type]
        province=location.province,
        city=location.city,
        latitude=location.latitude,
        longitude=location.longitude,
        time_zone=location.time_zone,
        opening_hours=[
            pb.OpeningHours(
                day_of_week=h.day_of_week, open_minute=h.open_minute, close_minute=h.close_minute
            )
            for h in location.opening_hours
        ],
        capabilities=sorted(_CAPABILITY_TO_PROTO[c] for c in location.capabilities),  # type: ignore[misc]
        channels=list(location.channels),
        default_safety_stock=location.default_safety_stock,
        active=location.active,
        create_time=timestamp(location.created_at),
    )


def level_to_proto(level: StockLevel) -> pb.StockLevel:
    return pb.StockLevel(
        location_id=level.location_id,
        sku_code=level.sku_code,
        on_hand=level.on_hand,
        reserved=level.reserved,
        safety_stock=level.safety_stock,
        in_transit=level.in_transit,
        available=level.available,
    )


def movement_kind_to_proto(kind: MovementKind) -> int:
    return _KIND_TO_PROTO[kind]


def movement_to_proto(movement: Movement) -> pb.StockMovement:
    return pb.StockMovement(
        movement_id=movement.movement_id,
        location_id=movement.location_id,
        sku_code=movement.sku_code,
        kind=_KIND_TO_PROTO[movement.kind],  # type: ignore[arg-type]
        quantity=movement.quantity,
        on_hand_after=movement.on_hand_after,
        reason=movement.reason,
        idempotency_key=shown_key(movement.idempotency_key),
        reference=movement.reference,
        create_time=timestamp(movement.created_at),
    )


def line_to_proto(line: ReservationLine) -> pb.ReservationLine:
    return pb.ReservationLine(
        line_id=line.line_id,
        sku_code=line.sku_code,
        location_id=line.location_id,
        quantity=line.quantity,
    )


def line_from_proto(msg: pb.ReservationLine) -> ReservationLine:
    return ReservationLine(msg.line_id, msg.sku_code, msg.location_id, msg.quantity)


def reservation_to_proto(reservation: Reservation) -> pb.Reservation:
    return pb.Reservation(
        order_id=reservation.order_id,
        channel=reservation.channel,
        status=RESERVATION_STATUSES[reservation.status],
        lines=[line_to_proto(line) for line in reservation.lines],
        expire_time=timestamp(reservation.expires_at),
        create_time=timestamp(reservation.created_at),
        update_time=timestamp(reservation.updated_at),
    )


def transfer_to_proto(transfer: Transfer) -> pb.Transfer:
    return pb.Transfer(
        transfer_id=transfer.transfer_id,
        from_location_id=transfer.from_location_id,
        to_location_id=transfer.to_location_id,
        status=TRANSFER_STATUSES[transfer.status],
        lines=[
            pb.TransferLine(
                sku_code=line.sku_code,
                requested_quantity=line.requested,
                shipped_quantity=line.shipped,
                received_quantity=line.received,
                discrepancy=line.discrepancy,
            )
            for line in transfer.lines
        ],
        reason=transfer.reason,
        request_time=timestamp(transfer.requested_at),
        ship_time=timestamp(transfer.shipped_at),
        receive_time=timestamp(transfer.received_at),
    )


def hold_from_reserve(msg: service_pb.ReserveRequest) -> Hold:
    return Hold(
        order_id=msg.order_id,
        channel=msg.channel,
        lines=tuple(line_from_proto(line) for line in msg.lines),
        ttl_seconds=msg.ttl_seconds,
    )


def hold_from_proto(msg: service_pb.HoldRequest) -> Hold:
    """Raises InvalidArgument for an unknown capability (the rest is validate_hold's)."""
    capability = None
    if msg.required_capability:
        capability = CAPABILITIES.get(msg.required_capability)
        if capability is None:
            raise InvalidArgument.field("required_capability", "is not a known capability")
    return Hold(
        order_id=msg.order_id,
        channel=msg.channel,
        lines=tuple(line_from_proto(line) for line in msg.lines),
        ttl_seconds=msg.ttl_seconds,
        candidates=tuple(msg.candidate_location_ids),
        capability=capability,
        require_open_now=msg.require_open_now,
        confirm=msg.confirm,
        locations_version=msg.locations_version,
    )


def hold_refusal_to_proto(order_id: str, error: BaseException) -> service_pb.HoldResult:
    """A refused hold's result (nothing was held)."""
    if isinstance(error, InvalidArgument):
        return service_pb.HoldResult(
            order_id=order_id,
            code=service_pb.HOLD_CODE_INVALID_ARGUMENT,
            message=error.message,
            field_violations=[
                service_pb.HoldFieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ],
        )
    if isinstance(error, AlreadyExists):
        return service_pb.HoldResult(
            order_id=order_id, code=service_pb.HOLD_CODE_ALREADY_EXISTS, message=error.message
        )
    if isinstance(error, StaleLocations):
        return service_pb.HoldResult(
            order_id=order_id,
            code=service_pb.HOLD_CODE_STALE_LOCATIONS,
            message=error.message,
            reason=error.reason,
        )
    if isinstance(error, FailedPrecondition):
        return service_pb.HoldResult(
            order_id=order_id,
            code=service_pb.HOLD_CODE_FAILED_PRECONDITION,
            message=error.message,
            reason=error.reason,
        )
    message = error.message if isinstance(error, DomainError) else "internal error"
    return service_pb.HoldResult(
        order_id=order_id, code=service_pb.HOLD_CODE_INTERNAL, message=message
    )


def skipped_to_proto(skipped: Skipped) -> service_pb.SkippedCandidate:
    return service_pb.SkippedCandidate(location_id=skipped.location_id, reason=skipped.reason)
