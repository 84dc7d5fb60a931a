"""Domain objects ↔ protobuf messages for distribution."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from omni.common.v1 import money_pb2
from omni.distribution.v1 import distribution_pb2 as pb

from libs.proto_input import optional_timestamp as timestamp
from services.distribution.domain.organisation import OrgUnit, Staff, Territory


def money(amount_minor: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount_minor)


def from_timestamp(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def territories_to_proto(territories: Iterable[Territory]) -> list[pb.Territory]:
    return [pb.Territory(province=t.province, city=t.city) for t in territories]


def territories_from_proto(territories: Iterable[pb.Territory]) -> tuple[Territory, ...]:
    return tuple(Territory(t.province.strip(), t.city.strip()) for t in territories)


def unit_to_proto(unit: OrgUnit) -> pb.OrgUnit:
    return pb.OrgUnit(
        unit_id=unit.unit_id,
        kind=pb.OrgUnitKind.ValueType(int(unit.kind)),
        name=unit.name,
        parent_id=unit.parent_id,
        province=unit.province,
        city=unit.city,
        location_id=unit.location_id,
        territories=territories_to_proto(unit.territories),
        hq_id=unit.hq_id,
    )


def staff_to_proto(member: Staff) -> pb.Staff:
    return pb.Staff(
        staff_id=member.staff_id,
        unit_id=member.unit_id,
        name=member.name,
        role=pb.StaffRole.ValueType(int(member.role)),
        is_virtual=member.is_virtual,
    )


def alert_to_proto(row: dict[str, object]) -> pb.Alert:
    evidence = row["evidence"]
    assert isinstance(evidence, dict)
    currency = str(evidence.get("currency", ""))
    raised = row["raised_at"]
    resolved = row.get("resolved_at")
    assert isinstance(raised, datetime)
    assert resolved is None or isinstance(resolved, datetime)
    proto_evidence = pb.AlertEvidence(
        order_id=str(row["order_id"]),
        fulfilment_id=str(evidence.get("fulfilment_id", "")),
        delivery_province=str(evidence.get("delivery_province", "")),
        delivery_city=str(evidence.get("delivery_city", "")),
        territories=[
            pb.Territory(province=t["province"], city=t.get("city", ""))
            for t in evidence.get("territories", [])
        ],
        sku_code=str(evidence.get("sku_code", "")),
    )
    if evidence.get("sku_code"):
        proto_evidence.unit_price.CopyFrom(money(int(evidence["unit_price_minor"]), currency))
        proto_evidence.minimum_unit_price.CopyFrom(
            money(int(evidence["minimum_unit_price_minor"]), currency)
        )
    return pb.Alert(
        alert_id=str(row["alert_id"]),
        kind=pb.AlertKind.ValueType(int(str(row["kind"]))),
        status=pb.AlertStatus.ValueType(int(str(row["status"]))),
        dealer_id=str(row["dealer_id"]),
        evidence=proto_evidence,
        raise_time=timestamp(raised),
        resolution_note=str(row.get("resolution_note") or ""),
        resolved_by_staff_id=str(row.get("resolved_by") or ""),
        resolve_time=timestamp(resolved),
    )
