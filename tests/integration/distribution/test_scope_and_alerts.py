"""Scoping (a caller sees and changes only their unit and below), bad input, and diversion
and price alerts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import distribution_service_pb2 as svc

from libs.grpc_errors import field_violations, not_found_field
from libs.testing.services import eventually
from services.distribution.domain.settlement import period_of
from tests.integration.distribution.support import (
    EPOCH,
    build_world,
    cny,
    completed,
    order,
    ts,
)


@pytest.fixture
async def world(api, unique):
    return await build_world(api, unique)


async def rpc_error(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_city_manager_cannot_read_another_citys_statements(api, world):
    w = world
    period = period_of(datetime.now(UTC))
    s1_statement = svc.GetStatementRequest(
        beneficiary_kind=pb.BENEFICIARY_KIND_STORE, beneficiary_id=w.id("S1"), period=period
    )
    g1_statement = svc.GetStatementRequest(
        beneficiary_kind=pb.BENEFICIARY_KIND_GUIDE, beneficiary_id=w.id("G1"), period=period
    )
    for request in (s1_statement, g1_statement):
        denied = await rpc_error(api.as_(w.id("GZM")).call("GetStatement", request))
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        # Their own city's manager and HQ may.
        for caller in ("SZM", "HQM"):
            got = await api.as_(w.id(caller)).call("GetStatement", request)
            assert got.statement.status == pb.PERIOD_STATUS_OPEN
    denied = await rpc_error(
        api.as_(w.id("GZM")).call("GetOrgUnit", svc.GetOrgUnitRequest(unit_id=w.id("S1")))
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    # Nor a unit above them, nor another brand's tree.
    denied = await rpc_error(
        api.as_(w.id("GZM")).call("GetOrgUnit", svc.GetOrgUnitRequest(unit_id=w.id("GD")))
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    children = await api.as_(w.id("GZM")).call(
        "ListOrgUnits", svc.ListOrgUnitsRequest(parent_id=w.id("GZ"))
    )
    assert [u.unit_id for u in children.org_units] == [w.id("S2")]
    for caller in ("", "nobody-" + w.u):
        anonymous = await rpc_error(
            api.as_(caller).call("GetOrgUnit", svc.GetOrgUnitRequest(unit_id=w.id("S1")))
        )
        assert anonymous.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_commands_outside_scope_are_denied_and_write_nothing(api, world):
    w = world
    gz = api.as_(w.id("GZM"))
    denied = await rpc_error(
        gz.call(
            "CreateOrgUnit",
            svc.CreateOrgUnitRequest(
                request_id=f"x-unit-{w.u}",
                unit_id=w.id("S9"),
                kind=pb.ORG_UNIT_KIND_STORE,
                name="Intruder",
                parent_id=w.id("SZ"),
            ),
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    denied = await rpc_error(
        gz.call(
            "CreateStaff",
            svc.CreateStaffRequest(
                request_id=f"x-staff-{w.u}",
                staff_id=w.id("G9"),
                unit_id=w.id("S1"),
                name="Intruder",
                role=pb.STAFF_ROLE_GUIDE,
            ),
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    denied = await rpc_error(
        gz.call(
            "SetCommissionRule",
            svc.SetCommissionRuleRequest(
                request_id=f"x-rule-{w.u}",
                hq_id=w.hq,
                flow=pb.COMMISSION_FLOW_OWN_STORE,
                role=pb.COMMISSION_ROLE_OWNING_GUIDE,
                rate_bp=10_000,
                effective_time=ts(EPOCH),
            ),
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    admin = api.as_("platform-admin")
    missing = await rpc_error(admin.call("GetOrgUnit", svc.GetOrgUnitRequest(unit_id=w.id("S9"))))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    missing = await rpc_error(admin.call("GetStaff", svc.GetStaffRequest(staff_id=w.id("G9"))))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    rules = await admin.call("ListCommissionRules", svc.ListCommissionRulesRequest(hq_id=w.hq))
    assert list(rules.rules) == []
    # The same request id, retried by someone in scope, does the work (the denial left no claim).
    created = await api.as_(w.id("SZM")).call(
        "CreateStaff",
        svc.CreateStaffRequest(
            request_id=f"x-staff-{w.u}",
            staff_id=w.id("G9"),
            unit_id=w.id("S1"),
            name="Intruder",
            role=pb.STAFF_ROLE_GUIDE,
        ),
    )
    assert created.staff.unit_id == w.id("S1")


@pytest.mark.parametrize(
    ("method", "build", "field"),
    [
        (
            "CreateOrgUnit",
            lambda w: svc.CreateOrgUnitRequest(
                unit_id="bad id!", kind=pb.ORG_UNIT_KIND_STORE, name="x", parent_id=w.id("SZ")
            ),
            "unit_id",
        ),
        (
            "CreateOrgUnit",
            lambda w: svc.CreateOrgUnitRequest(
                unit_id=w.id("S7"), kind=pb.ORG_UNIT_KIND_STORE, name="x", parent_id=w.id("GD")
            ),
            "parent_id",
        ),
        (
            "CreateOrgUnit",
            lambda w: svc.CreateOrgUnitRequest(
                unit_id=w.id("D7"),
                kind=pb.ORG_UNIT_KIND_DISTRIBUTOR,
                name="x",
                parent_id=w.id("GD"),
            ),
            "territories",
        ),
        (
            "CreateStaff",
            lambda w: svc.CreateStaffRequest(
                staff_id=w.id("G7"), unit_id=w.id("SZ"), name="x", role=pb.STAFF_ROLE_GUIDE
            ),
            "unit_id",
        ),
        (
            "SetCommissionRule",
            lambda w: svc.SetCommissionRuleRequest(
                hq_id=w.hq,
                flow=pb.COMMISSION_FLOW_OWN_STORE,
                role=pb.COMMISSION_ROLE_OWNING_GUIDE,
                rate_bp=20_000,
                effective_time=ts(EPOCH),
            ),
            "rate_bp",
        ),
        (
            "SetCommissionRule",
            lambda w: svc.SetCommissionRuleRequest(
                hq_id=w.hq,
                flow=pb.COMMISSION_FLOW_OWN_STORE,
                role=pb.COMMISSION_ROLE_OWNING_GUIDE,
                rate_bp=100,
            ),
            "effective_time",
        ),
        (
            "SetMinimumPrice",
            lambda w: svc.SetMinimumPriceRequest(
                hq_id=w.hq, sku_code="SKU", minimum_unit_price=cny(-1)
            ),
            "minimum_unit_price.amount_minor",
        ),
        (
            "CreateStaff",
            lambda w: svc.CreateStaffRequest(staff_id=w.id("G8"), unit_id=w.id("S1"), name="x"),
            "role",
        ),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field_and_writes_nothing(
    api, world, method, build, field
):
    w = world
    request = build(w)
    request.request_id = f"bad-{method}-{field}-{w.u}"
    error = await rpc_error(api.as_(w.id("HQM")).call(method, request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in field_violations(error)]
    admin = api.as_("platform-admin")
    for unit_id in (w.id("S7"), w.id("D7")):
        missing = await rpc_error(admin.call("GetOrgUnit", svc.GetOrgUnitRequest(unit_id=unit_id)))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        assert not_found_field(missing) == "unit_id"
    for staff_id in (w.id("G7"), w.id("G8")):
        missing = await rpc_error(admin.call("GetStaff", svc.GetStaffRequest(staff_id=staff_id)))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
        assert not_found_field(missing) == "staff_id"
    rules = await admin.call("ListCommissionRules", svc.ListCommissionRulesRequest(hq_id=w.hq))
    assert list(rules.rules) == []


async def test_not_found_names_the_field(api, world):
    w = world
    hq = api.as_(w.id("HQM"))
    nobody = f"NOBODY-{w.u}"
    cases = [
        ("ListOrgUnits", svc.ListOrgUnitsRequest(parent_id=nobody), "parent_id"),
        ("IssueGuideCode", svc.IssueGuideCodeRequest(staff_id=nobody), "staff_id"),
        ("GetOrderCommissions", svc.GetOrderCommissionsRequest(order_id=nobody), "order_id"),
        (
            "GetStatement",
            svc.GetStatementRequest(
                beneficiary_kind=pb.BENEFICIARY_KIND_GUIDE, beneficiary_id=nobody, period="2026-01"
            ),
            "beneficiary_id",
        ),
        (
            "GetStatement",
            svc.GetStatementRequest(
                beneficiary_kind=pb.BENEFICIARY_KIND_STORE, beneficiary_id=nobody, period="2026-01"
            ),
            "beneficiary_id",
        ),
        (
            "ResolveAlert",
            svc.ResolveAlertRequest(
                request_id=f"nf-alert-{w.u}", alert_id=nobody, resolution_note="n/a"
            ),
            "alert_id",
        ),
        ("ListAlerts", svc.ListAlertsRequest(unit_id=nobody), "unit_id"),
    ]
    for method, request, field in cases:
        error = await rpc_error(hq.call(method, request))
        assert error.code() == grpc.StatusCode.NOT_FOUND, method
        assert not_found_field(error) == field, method


async def test_diversion_alert_for_out_of_territory_shipment_only(api, events, world):
    order_events, _ = events
    w = world
    hq = api.as_(w.id("HQM"))
    await hq.call(
        "SetMinimumPrice",
        svc.SetMinimumPriceRequest(
            request_id=f"min-{w.u}", hq_id=w.hq, sku_code="SKU-A", minimum_unit_price=cny(12_000)
        ),
    )
    distributor = w.id("D")

    def dealer_order(order_id: str, province: str, city: str):
        return order(
            order_id,
            channel=4,
            mode=2,
            selling_store=distributor,
            province=province,
            city=city,
            fulfilments=[("F1", w.id("LOC-D"), ["L1", "L2"])],
        )

    outside = dealer_order(w.id("OUT"), "Hunan", "Changsha")
    inside = dealer_order(w.id("IN"), "Guangdong", "Foshan")
    await order_events.emit(inside.order_id, completed(inside))
    await order_events.emit(outside.order_id, completed(outside))

    async def both_listed() -> list[pb.Alert]:
        page = await hq.call("ListAlerts", svc.ListAlertsRequest(unit_id=distributor))
        orders = {a.evidence.order_id for a in page.alerts}
        assert orders == {outside.order_id, inside.order_id}
        return list(page.alerts)

    found = await eventually(both_listed, timeout=30)
    kinds = sorted((a.evidence.order_id, a.kind) for a in found)
    assert kinds == sorted(
        [
            (outside.order_id, pb.ALERT_KIND_OUT_OF_TERRITORY_SHIPMENT),
            (outside.order_id, pb.ALERT_KIND_OUT_OF_TERRITORY_SALE),
            # Both orders sold SKU-A at 100.00 a unit, below the 120.00 minimum.
            (outside.order_id, pb.ALERT_KIND_PRICE_BELOW_MINIMUM),
            (inside.order_id, pb.ALERT_KIND_PRICE_BELOW_MINIMUM),
        ]
    )
    shipment = next(a for a in found if a.kind == pb.ALERT_KIND_OUT_OF_TERRITORY_SHIPMENT)
    assert shipment.dealer_id == distributor
    assert (shipment.evidence.delivery_province, shipment.evidence.delivery_city) == (
        "Hunan",
        "Changsha",
    )
    assert [(t.province, t.city) for t in shipment.evidence.territories] == [("Guangdong", "")]
    price = next(a for a in found if a.kind == pb.ALERT_KIND_PRICE_BELOW_MINIMUM)
    assert price.evidence.unit_price.amount_minor == 10_000
    assert price.evidence.minimum_unit_price.amount_minor == 12_000

    # A city manager does not see the province's distributor; resolving needs scope too.
    denied = await rpc_error(
        api.as_(w.id("GZM")).call("ListAlerts", svc.ListAlertsRequest(unit_id=distributor))
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    denied = await rpc_error(
        api.as_(w.id("GZM")).call(
            "ResolveAlert",
            svc.ResolveAlertRequest(
                request_id=f"res-x-{w.u}", alert_id=shipment.alert_id, resolution_note="no"
            ),
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    resolved = await hq.call(
        "ResolveAlert",
        svc.ResolveAlertRequest(
            request_id=f"res-{w.u}",
            alert_id=shipment.alert_id,
            resolution_note="dealer warned, shipment recalled",
        ),
    )
    assert resolved.alert.status == pb.ALERT_STATUS_RESOLVED
    assert resolved.alert.resolved_by_staff_id == w.id("HQM")
    again = await rpc_error(
        hq.call(
            "ResolveAlert",
            svc.ResolveAlertRequest(
                request_id=f"res2-{w.u}", alert_id=shipment.alert_id, resolution_note="again"
            ),
        )
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    still_open = await hq.call(
        "ListAlerts",
        svc.ListAlertsRequest(unit_id=distributor, status=pb.ALERT_STATUS_OPEN),
    )
    assert shipment.alert_id not in {a.alert_id for a in still_open.alerts}
    assert len(still_open.alerts) == 3


async def test_retries_are_idempotent_and_concurrent_rule_versions_never_collide(api, world):
    w = world
    hq = api.as_(w.id("HQM"))
    request = svc.CreateOrgUnitRequest(
        request_id=f"idem-{w.u}",
        unit_id=w.id("S5"),
        kind=pb.ORG_UNIT_KIND_STORE,
        name="Fifth",
        parent_id=w.id("SZ"),
    )
    first = await hq.call("CreateOrgUnit", request)
    again = await hq.call("CreateOrgUnit", request)
    assert first == again
    # Another caller replaying the same request id gets no answer meant for someone else.
    replayed = await rpc_error(api.as_(w.id("GZM")).call("CreateOrgUnit", request))
    assert replayed.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in [f for f, _ in field_violations(replayed)]
    assert first.org_unit.city == "Shenzhen" and first.org_unit.province == "Guangdong"
    request.name = "Different"
    reused = await rpc_error(hq.call("CreateOrgUnit", request))
    assert reused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in [f for f, _ in field_violations(reused)]
    duplicate = await rpc_error(
        hq.call(
            "CreateOrgUnit",
            svc.CreateOrgUnitRequest(
                request_id=f"idem2-{w.u}",
                unit_id=w.id("S5"),
                kind=pb.ORG_UNIT_KIND_STORE,
                name="Fifth",
                parent_id=w.id("SZ"),
            ),
        )
    )
    assert duplicate.code() == grpc.StatusCode.ALREADY_EXISTS

    async def version(n: int) -> int:
        response = await hq.call(
            "SetCommissionRule",
            svc.SetCommissionRuleRequest(
                request_id=f"conc-{w.u}-{n}",
                hq_id=w.hq,
                flow=pb.COMMISSION_FLOW_EXPRESS,
                role=pb.COMMISSION_ROLE_OWNING_GUIDE,
                rate_bp=100 + n,
                effective_time=ts(EPOCH),
            ),
        )
        return int(response.rule.version)

    versions = await asyncio.gather(*(version(n) for n in range(6)))
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]


async def test_malformed_values_are_invalid_argument_not_internal(api, world):
    w = world
    hq = api.as_(w.id("HQM"))
    cases = [
        (
            "CreateOrgUnit",
            svc.CreateOrgUnitRequest(
                request_id=f"nul-{w.u}",
                unit_id=w.id("S8"),
                kind=pb.ORG_UNIT_KIND_STORE,
                name="bad\x00name",
                parent_id=w.id("SZ"),
            ),
            "name",
        ),
        (
            "GetStatement",
            svc.GetStatementRequest(
                beneficiary_kind=pb.BENEFICIARY_KIND_STORE,
                beneficiary_id=w.id("S1"),
                period="2026-01",
                page_token="9" * 30,
            ),
            "page_token",
        ),
        (
            "GetSalesStatistics",
            svc.GetSalesStatisticsRequest(
                dimension=pb.STATISTICS_DIMENSION_STORE,
                start_time=Timestamp(seconds=2**62),
                end_time=ts(EPOCH),
            ),
            "start_time",
        ),
        (
            "CreateOrgUnit",
            svc.CreateOrgUnitRequest(
                request_id=f"kind-{w.u}",
                unit_id=w.id("S8"),
                kind=pb.OrgUnitKind.ValueType(99),
                name="x",
                parent_id=w.id("SZ"),
            ),
            "kind",
        ),
    ]
    # Page tokens this service never issued: "²" passes str.isdigit() but not int().
    # ([1] is a statement's kind of position, ["x"] an alert list's.)
    for token, other_kind in (("²", "²"), ("٣", "٣"), ("9" * 30, "9" * 30), ("WyJ4Il0=", "WzFd")):
        cases += [
            (
                "GetStatement",
                svc.GetStatementRequest(
                    beneficiary_kind=pb.BENEFICIARY_KIND_STORE,
                    beneficiary_id=w.id("S1"),
                    period="2026-01",
                    page_token=token,
                ),
                "page_token",
            ),
            (
                "ListAlerts",
                svc.ListAlertsRequest(unit_id=w.id("SZ"), page_token=other_kind),
                "page_token",
            ),
        ]
    cases += [
        (
            "ListOrgUnits",
            svc.ListOrgUnitsRequest(parent_id=w.id("SZ"), page_token=token),
            "page_token",
        )
        for token in ("²", "WzFd", "not a token")
    ]
    # Months a calendar cannot end (9999-12) or begin (0000-xx), and a trailing newline.
    for period in ("9999-12", "0000-05", "0000-12", "2020-01\n"):
        cases.append(
            (
                "ClosePeriod",
                svc.ClosePeriodRequest(
                    request_id=f"close-{period!r}-{w.u}", hq_id=w.hq, period=period
                ),
                "period",
            )
        )
        cases.append(
            (
                "GetStatement",
                svc.GetStatementRequest(
                    beneficiary_kind=pb.BENEFICIARY_KIND_STORE,
                    beneficiary_id=w.id("S1"),
                    period=period,
                ),
                "period",
            )
        )
    for method, request, field in cases:
        error = await rpc_error(hq.call(method, request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, request)
        assert field in [f for f, _ in field_violations(error)]
    # The tokens this service issues still work.
    children = await hq.call(
        "ListOrgUnits", svc.ListOrgUnitsRequest(parent_id=w.id("SZ"), page_size=1)
    )
    assert children.next_page_token
    rest = await hq.call(
        "ListOrgUnits",
        svc.ListOrgUnitsRequest(
            parent_id=w.id("SZ"), page_size=10, page_token=children.next_page_token
        ),
    )
    assert [u.unit_id for u in [*children.org_units, *rest.org_units]] == [w.id("FR"), w.id("S1")]
