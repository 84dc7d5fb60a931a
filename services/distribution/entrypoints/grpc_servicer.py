"""omni.distribution.v1.DistributionService: read the caller, translate, call a use case,
translate back. The caller is the staff id in the `x-omni-staff-id` metadata."""

from __future__ import annotations

from typing import Any

import grpc
from omni.distribution.v1 import distribution_pb2 as pb
from omni.distribution.v1 import distribution_service_pb2 as svc
from omni.distribution.v1 import distribution_service_pb2_grpc as svc_grpc

from libs.idempotency import run_idempotent
from libs.proto_input import field_time
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory
from services.distribution.adapters.proto import (
    alert_to_proto,
    money,
    staff_to_proto,
    territories_from_proto,
    timestamp,
    unit_to_proto,
)
from services.distribution.adapters.repository import Repository
from services.distribution.domain.organisation import Caller, Staff, StaffRole
from services.distribution.service_layer import (
    alerts,
    organisation,
    rules,
    settlement,
    statistics,
)
from services.distribution.service_layer.access import DistributionConfig, load_caller

Context = grpc.aio.ServicerContext[Any, Any]
CALLER_METADATA_KEY = "x-omni-staff-id"


def caller_staff_id(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_METADATA_KEY:
            return value if isinstance(value, str) else value.decode()
    return ""


class DistributionServicer(svc_grpc.DistributionServiceServicer):
    def __init__(self, uow_factory: UnitOfWorkFactory, config: DistributionConfig) -> None:
        self.uow = uow_factory
        self.config = config

    async def _caller(self, uow: UnitOfWork, context: Context) -> Caller:
        return await load_caller(Repository(uow.session), caller_staff_id(context), self.config)

    async def CreateOrgUnit(
        self, request: svc.CreateOrgUnitRequest, context: Context
    ) -> svc.CreateOrgUnitResponse:
        new = organisation.NewUnit(
            unit_id=request.unit_id.strip(),
            kind=int(request.kind),
            name=request.name,
            parent_id=request.parent_id.strip(),
            province=request.province,
            city=request.city,
            location_id=request.location_id,
            territories=territories_from_proto(request.territories),
        )

        async def handle(uow: UnitOfWork) -> svc.CreateOrgUnitResponse:
            unit = await organisation.create_unit(uow, await self._caller(uow, context), new)
            return svc.CreateOrgUnitResponse(org_unit=unit_to_proto(unit))

        return await run_idempotent(
            self.uow,
            "CreateOrgUnit",
            request,
            svc.CreateOrgUnitResponse,
            handle,
            caller=caller_staff_id(context),
        )

    async def GetOrgUnit(
        self, request: svc.GetOrgUnitRequest, context: Context
    ) -> svc.GetOrgUnitResponse:
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            unit = await organisation.get_unit(uow, caller, request.unit_id)
            return svc.GetOrgUnitResponse(org_unit=unit_to_proto(unit))

    async def ListOrgUnits(
        self, request: svc.ListOrgUnitsRequest, context: Context
    ) -> svc.ListOrgUnitsResponse:
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            units, token = await organisation.list_child_units(
                uow, caller, request.parent_id, request.page_size, request.page_token
            )
            return svc.ListOrgUnitsResponse(
                org_units=[unit_to_proto(u) for u in units], next_page_token=token
            )

    async def SetDealerTerritory(
        self, request: svc.SetDealerTerritoryRequest, context: Context
    ) -> svc.SetDealerTerritoryResponse:
        territories = territories_from_proto(request.territories)

        async def handle(uow: UnitOfWork) -> svc.SetDealerTerritoryResponse:
            unit = await organisation.set_dealer_territory(
                uow, await self._caller(uow, context), request.unit_id, territories
            )
            return svc.SetDealerTerritoryResponse(org_unit=unit_to_proto(unit))

        return await run_idempotent(
            self.uow,
            "SetDealerTerritory",
            request,
            svc.SetDealerTerritoryResponse,
            handle,
            caller=caller_staff_id(context),
        )

    async def CreateStaff(
        self, request: svc.CreateStaffRequest, context: Context
    ) -> svc.CreateStaffResponse:
        role = int(request.role)
        member = Staff(
            staff_id=request.staff_id.strip(),
            unit_id=request.unit_id.strip(),
            name=request.name,
            role=StaffRole(role) if role in (1, 2) else role,  # type: ignore[arg-type]
            is_virtual=request.is_virtual,
        )

        async def handle(uow: UnitOfWork) -> svc.CreateStaffResponse:
            created = await organisation.create_staff(uow, await self._caller(uow, context), member)
            return svc.CreateStaffResponse(staff=staff_to_proto(created))

        return await run_idempotent(
            self.uow,
            "CreateStaff",
            request,
            svc.CreateStaffResponse,
            handle,
            caller=caller_staff_id(context),
        )

    async def GetStaff(
        self, request: svc.GetStaffRequest, context: Context
    ) -> svc.GetStaffResponse:
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            member = await organisation.get_staff(uow, caller, request.staff_id)
            return svc.GetStaffResponse(staff=staff_to_proto(member))

    async def IssueGuideCode(
        self, request: svc.IssueGuideCodeRequest, context: Context
    ) -> svc.IssueGuideCodeResponse:
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            code = await organisation.issue_guide_code(
                uow, caller, request.staff_id, self.config.link_key
            )
            return svc.IssueGuideCodeResponse(guide_code=code)

    async def SetCommissionRule(
        self, request: svc.SetCommissionRuleRequest, context: Context
    ) -> svc.SetCommissionRuleResponse:
        which = request.WhichOneof("amount")
        new = rules.NewRule(
            hq_id=request.hq_id,
            flow=int(request.flow),
            role=int(request.role),
            rate_bp=request.rate_bp if which == "rate_bp" else None,
            fixed_minor=request.fixed_amount.amount_minor if which == "fixed_amount" else None,
            currency=request.fixed_amount.currency_code,
            saved_shipping_minor=request.saved_shipping_cost.amount_minor,
            saved_shipping_currency=request.saved_shipping_cost.currency_code,
            effective_from=field_time(request, "effective_time"),
        )

        async def handle(uow: UnitOfWork) -> svc.SetCommissionRuleResponse:
            rule, currency = await rules.set_rule(uow, await self._caller(uow, context), new)
            return svc.SetCommissionRuleResponse(rule=_rule_to_proto(new.hq_id, rule, currency))

        return await run_idempotent(
            self.uow,
            "SetCommissionRule",
            request,
            svc.SetCommissionRuleResponse,
            handle,
            caller=caller_staff_id(context),
        )

    async def ListCommissionRules(
        self, request: svc.ListCommissionRulesRequest, context: Context
    ) -> svc.ListCommissionRulesResponse:
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            found, currencies = await rules.list_rules(uow, caller, request.hq_id)
            # Every version of every (flow, role) fits one page: the set is small by nature.
            return svc.ListCommissionRulesResponse(
                rules=[
                    _rule_to_proto(
                        request.hq_id,
                        r,
                        currencies.get((int(r.flow), int(r.role), r.version), ""),
                    )
                    for r in found
                ]
            )

    async def SetMinimumPrice(
        self, request: svc.SetMinimumPriceRequest, context: Context
    ) -> svc.SetMinimumPriceResponse:
        price = request.minimum_unit_price

        async def handle(uow: UnitOfWork) -> svc.SetMinimumPriceResponse:
            await rules.set_minimum_price(
                uow,
                await self._caller(uow, context),
                request.hq_id,
                request.sku_code,
                price.amount_minor,
                price.currency_code,
            )
            return svc.SetMinimumPriceResponse(
                sku_code=request.sku_code.strip(), minimum_unit_price=price
            )

        return await run_idempotent(
            self.uow,
            "SetMinimumPrice",
            request,
            svc.SetMinimumPriceResponse,
            handle,
            caller=caller_staff_id(context),
        )

    async def GetOrderCommissions(
        self, request: svc.GetOrderCommissionsRequest, context: Context
    ) -> svc.GetOrderCommissionsResponse:
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            flow, currency, rows = await statistics.order_commissions(uow, caller, request.order_id)
            return svc.GetOrderCommissionsResponse(
                order_id=request.order_id,
                flow=pb.CommissionFlow.ValueType(flow),
                commissions=[
                    pb.OrderCommission(
                        role=pb.CommissionRole.ValueType(int(r.role)),
                        beneficiary_kind=pb.BeneficiaryKind.ValueType(r.beneficiary_kind),
                        beneficiary_id=r.beneficiary_id,
                        paid=money(r.paid_minor, currency),
                        clawed_back=money(r.clawed_minor, currency),
                    )
                    for r in rows
                ],
            )

    async def ListAlerts(
        self, request: svc.ListAlertsRequest, context: Context
    ) -> svc.ListAlertsResponse:
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            found, token = await alerts.list_alerts(
                uow,
                caller,
                unit_id=request.unit_id,
                status=int(request.status),
                kind=int(request.kind),
                page_size=request.page_size,
                page_token=request.page_token,
            )
            return svc.ListAlertsResponse(
                alerts=[alert_to_proto(a) for a in found], next_page_token=token
            )

    async def ResolveAlert(
        self, request: svc.ResolveAlertRequest, context: Context
    ) -> svc.ResolveAlertResponse:
        async def handle(uow: UnitOfWork) -> svc.ResolveAlertResponse:
            row = await alerts.resolve_alert(
                uow, await self._caller(uow, context), request.alert_id, request.resolution_note
            )
            return svc.ResolveAlertResponse(alert=alert_to_proto(row))

        return await run_idempotent(
            self.uow,
            "ResolveAlert",
            request,
            svc.ResolveAlertResponse,
            handle,
            caller=caller_staff_id(context),
        )

    async def GetStatement(
        self, request: svc.GetStatementRequest, context: Context
    ) -> svc.GetStatementResponse:
        currency = request.currency_code or "CNY"
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            page = await settlement.get_statement(
                uow,
                caller,
                kind=int(request.beneficiary_kind),
                beneficiary_id=request.beneficiary_id,
                period=request.period,
                currency=currency,
                page_size=request.page_size,
                page_token=request.page_token,
            )
            return svc.GetStatementResponse(
                statement=settlement.statement_to_proto(
                    int(request.beneficiary_kind),
                    request.beneficiary_id,
                    request.period,
                    currency,
                    page.status,
                    page.totals,
                ),
                entries=[
                    pb.StatementEntry(
                        entry_id=str(e.entry_id),
                        kind=pb.EntryKind.ValueType(e.kind),
                        role=pb.CommissionRole.ValueType(e.role),
                        flow=pb.CommissionFlow.ValueType(e.flow),
                        order_id=e.order_id,
                        return_id=e.return_id,
                        amount=money(e.amount_minor, e.currency),
                        occur_time=timestamp(e.occurred_at),
                    )
                    for e in page.entries
                ],
                next_page_token=page.next_page_token,
            )

    async def ClosePeriod(
        self, request: svc.ClosePeriodRequest, context: Context
    ) -> svc.ClosePeriodResponse:
        async def handle(uow: UnitOfWork) -> svc.ClosePeriodResponse:
            count = await settlement.close_period(
                uow, await self._caller(uow, context), request.hq_id, request.period
            )
            return svc.ClosePeriodResponse(period=request.period, statement_count=count)

        return await run_idempotent(
            self.uow,
            "ClosePeriod",
            request,
            svc.ClosePeriodResponse,
            handle,
            caller=caller_staff_id(context),
        )

    async def GetSalesStatistics(
        self, request: svc.GetSalesStatisticsRequest, context: Context
    ) -> svc.GetSalesStatisticsResponse:
        currency = request.currency_code or "CNY"
        async with self.uow() as uow:
            caller = await self._caller(uow, context)
            rows = await statistics.sales_statistics(
                uow,
                caller,
                dimension=int(request.dimension),
                start=field_time(request, "start_time"),
                end=field_time(request, "end_time"),
                unit_id=request.unit_id,
                currency=currency,
            )
            return svc.GetSalesStatisticsResponse(
                rows=[
                    pb.SalesStatisticsRow(
                        key=r.key,
                        order_count=r.order_count,
                        sales=money(r.sales_minor, currency),
                        refunded=money(r.refunded_minor, currency),
                        commission=money(r.commission_minor, currency),
                    )
                    for r in rows
                ]
            )


def _rule_to_proto(hq_id: str, rule: rules.Rule, currency: str) -> pb.CommissionRule:
    message = pb.CommissionRule(
        hq_id=hq_id,
        flow=pb.CommissionFlow.ValueType(int(rule.flow)),
        role=pb.CommissionRole.ValueType(int(rule.role)),
        effective_time=timestamp(rule.effective_from),
        version=rule.version,
    )
    if rule.fixed_minor is not None:
        message.fixed_amount.CopyFrom(money(rule.fixed_minor, currency))
    else:
        message.rate_bp = rule.rate_bp or 0
    if rule.saved_shipping_minor:
        message.saved_shipping_cost.CopyFrom(money(rule.saved_shipping_minor, currency))
    return message
