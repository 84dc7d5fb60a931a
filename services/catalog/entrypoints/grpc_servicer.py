"""omni.catalog.v1.CatalogService: translate, call a use case, translate back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
from omni.catalog.v1 import catalog_pb2
from omni.catalog.v1 import catalog_service_pb2 as pb
from omni.catalog.v1 import catalog_service_pb2_grpc as pb_grpc

from libs.errors import InvalidArgument, Validator
from libs.idempotency import run_idempotent
from libs.unit_of_work import UnitOfWork, UnitOfWorkFactory
from services.catalog.adapters.channel_repository import AssortmentEntry, Mapping
from services.catalog.adapters.price_repository import Promotion
from services.catalog.adapters.proto import (
    ASSORTMENT_KIND_FROM_PROTO,
    CHANNEL_KIND_FROM_PROTO,
    CHANNEL_KIND_TO_PROTO,
    LIFECYCLE_FROM_PROTO,
    money_from_proto,
    money_to_proto,
    new_sku_from_request,
    optional_time,
    sku_to_proto,
)
from services.catalog.adapters.sku_repository import SkuSearch, Style
from services.catalog.adapters.taxonomy_repository import Brand, Category
from services.catalog.domain.pricing import ChannelRule, Money, Window
from services.catalog.domain.skus import Lifecycle
from services.catalog.service_layer import channels, imports, prices, skus, taxonomy

Context = grpc.aio.ServicerContext[Any, Any]


def _category(c: Category) -> catalog_pb2.Category:
    return catalog_pb2.Category(
        category_code=c.category_code, name=c.name, parent_code=c.parent_code
    )


def _style(s: Style) -> catalog_pb2.Style:
    return catalog_pb2.Style(
        style_code=s.style_code,
        name=s.name,
        brand_code=s.brand_code,
        category_code=s.category_code,
        attributes=s.attributes,
    )


def _mapping(m: Mapping) -> catalog_pb2.ChannelSkuMapping:
    return catalog_pb2.ChannelSkuMapping(
        channel_id=m.channel_id,
        sku_code=m.sku_code,
        external_sku_id=m.external_sku_id,
        external_item_id=m.external_item_id,
    )


def _at(message: Any) -> datetime:
    return optional_time(message, "at", "at") or datetime.now(UTC)


class CatalogServicer(pb_grpc.CatalogServiceServicer):
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow = uow_factory

    async def CreateBrand(
        self, request: pb.CreateBrandRequest, context: Context
    ) -> pb.CreateBrandResponse:
        b = request.brand
        brand = Brand(
            b.brand_code.strip(), b.name.strip(), b.same_price_online_offline, b.online_only
        )

        async def handle(uow: UnitOfWork) -> pb.CreateBrandResponse:
            return pb.CreateBrandResponse(
                brand=taxonomy.brand_to_proto(await taxonomy.create_brand(uow, brand))
            )

        return await run_idempotent(
            self.uow, "CreateBrand", request, pb.CreateBrandResponse, handle
        )

    async def UpdateBrandPolicy(
        self, request: pb.UpdateBrandPolicyRequest, context: Context
    ) -> pb.UpdateBrandPolicyResponse:
        async def handle(uow: UnitOfWork) -> pb.UpdateBrandPolicyResponse:
            brand = await taxonomy.update_brand_policy(
                uow,
                request.brand_code.strip(),
                same_price=(
                    request.same_price_online_offline
                    if request.HasField("same_price_online_offline")
                    else None
                ),
                online_only=request.online_only if request.HasField("online_only") else None,
            )
            return pb.UpdateBrandPolicyResponse(brand=taxonomy.brand_to_proto(brand))

        return await run_idempotent(
            self.uow, "UpdateBrandPolicy", request, pb.UpdateBrandPolicyResponse, handle
        )

    async def CreateCategory(
        self, request: pb.CreateCategoryRequest, context: Context
    ) -> pb.CreateCategoryResponse:
        c = request.category
        category = Category(c.category_code.strip(), c.name.strip(), c.parent_code.strip())

        async def handle(uow: UnitOfWork) -> pb.CreateCategoryResponse:
            created = await taxonomy.create_category(uow, category)
            return pb.CreateCategoryResponse(category=_category(created))

        return await run_idempotent(
            self.uow, "CreateCategory", request, pb.CreateCategoryResponse, handle
        )

    async def MoveCategory(
        self, request: pb.MoveCategoryRequest, context: Context
    ) -> pb.MoveCategoryResponse:
        async def handle(uow: UnitOfWork) -> pb.MoveCategoryResponse:
            moved = await taxonomy.move_category(
                uow, request.category_code.strip(), request.new_parent_code.strip()
            )
            return pb.MoveCategoryResponse(category=_category(moved))

        return await run_idempotent(
            self.uow, "MoveCategory", request, pb.MoveCategoryResponse, handle
        )

    async def CreateStyle(
        self, request: pb.CreateStyleRequest, context: Context
    ) -> pb.CreateStyleResponse:
        s = request.style
        style = Style(
            s.style_code.strip(),
            s.name.strip(),
            s.brand_code.strip(),
            s.category_code.strip(),
            dict(s.attributes),
        )

        async def handle(uow: UnitOfWork) -> pb.CreateStyleResponse:
            return pb.CreateStyleResponse(style=_style(await skus.create_style(uow, style)))

        return await run_idempotent(
            self.uow, "CreateStyle", request, pb.CreateStyleResponse, handle
        )

    async def CreateSku(
        self, request: pb.CreateSkuRequest, context: Context
    ) -> pb.CreateSkuResponse:
        new = new_sku_from_request(request)
        new.validate()

        async def handle(uow: UnitOfWork) -> pb.CreateSkuResponse:
            return pb.CreateSkuResponse(sku=sku_to_proto(await skus.create_sku(uow, new)))

        return await run_idempotent(self.uow, "CreateSku", request, pb.CreateSkuResponse, handle)

    async def GetSku(self, request: pb.GetSkuRequest, context: Context) -> pb.GetSkuResponse:
        async with self.uow() as uow:
            return pb.GetSkuResponse(sku=sku_to_proto(await skus.get_sku(uow, request.sku_code)))

    async def UpdateSku(
        self, request: pb.UpdateSkuRequest, context: Context
    ) -> pb.UpdateSkuResponse:
        async def handle(uow: UnitOfWork) -> pb.UpdateSkuResponse:
            sku = await skus.update_sku(
                uow,
                request.sku_code.strip(),
                name=request.name.strip(),
                color=request.color.strip(),
                size=request.size.strip(),
                attributes=dict(request.attributes),
            )
            return pb.UpdateSkuResponse(sku=sku_to_proto(sku))

        return await run_idempotent(self.uow, "UpdateSku", request, pb.UpdateSkuResponse, handle)

    async def ActivateSku(
        self, request: pb.ActivateSkuRequest, context: Context
    ) -> pb.ActivateSkuResponse:
        async def handle(uow: UnitOfWork) -> pb.ActivateSkuResponse:
            sku = await skus.change_lifecycle(uow, request.sku_code.strip(), Lifecycle.ACTIVE)
            return pb.ActivateSkuResponse(sku=sku_to_proto(sku))

        return await run_idempotent(
            self.uow, "ActivateSku", request, pb.ActivateSkuResponse, handle
        )

    async def DiscontinueSku(
        self, request: pb.DiscontinueSkuRequest, context: Context
    ) -> pb.DiscontinueSkuResponse:
        async def handle(uow: UnitOfWork) -> pb.DiscontinueSkuResponse:
            sku = await skus.change_lifecycle(uow, request.sku_code.strip(), Lifecycle.DISCONTINUED)
            return pb.DiscontinueSkuResponse(sku=sku_to_proto(sku))

        return await run_idempotent(
            self.uow, "DiscontinueSku", request, pb.DiscontinueSkuResponse, handle
        )

    async def SearchSkus(
        self, request: pb.SearchSkusRequest, context: Context
    ) -> pb.SearchSkusResponse:
        lifecycle: Lifecycle | None = None
        if request.lifecycle != catalog_pb2.SKU_LIFECYCLE_UNSPECIFIED:
            if request.lifecycle not in LIFECYCLE_FROM_PROTO:
                raise InvalidArgument.field("lifecycle", "is not a known lifecycle")
            lifecycle = LIFECYCLE_FROM_PROTO[request.lifecycle]
        criteria = SkuSearch(
            text=request.text.strip(),
            category_code=request.category_code.strip(),
            brand_code=request.brand_code.strip(),
            channel_id=request.channel_id.strip(),
            lifecycle=lifecycle,
        )
        async with self.uow() as uow:
            found, token = await skus.search_skus(
                uow, criteria, request.page_size, request.page_token
            )
        return pb.SearchSkusResponse(skus=[sku_to_proto(s) for s in found], next_page_token=token)

    async def ImportSkus(
        self, request_iterator: AsyncIterator[pb.ImportSkusRequest], context: Context
    ) -> pb.ImportSkusResponse:
        total = pb.ImportSkusResponse()
        position = 0
        async for chunk in request_iterator:
            rows = []
            for r in chunk.rows:
                position += 1
                rows.append(
                    imports.ImportRow(
                        line_number=r.line_number or position,
                        style_code=r.style_code.strip(),
                        style_name=r.style_name.strip(),
                        brand_code=r.brand_code.strip(),
                        category_code=r.category_code.strip(),
                        sku_code=r.sku_code.strip(),
                        name=r.name.strip(),
                        barcode=r.barcode.strip(),
                        color=r.color.strip(),
                        size=r.size.strip(),
                        list_price=money_from_proto(r, "list_price"),
                    )
                )

            async def handle(
                uow: UnitOfWork, rows: list[imports.ImportRow] = rows
            ) -> pb.ImportSkusResponse:
                report = await imports.import_chunk(uow, rows)
                return pb.ImportSkusResponse(
                    created=report.created,
                    updated=report.updated,
                    unchanged=report.unchanged,
                    rejected=[
                        pb.RejectedRow(
                            line_number=x.line_number, sku_code=x.sku_code, reasons=x.reasons
                        )
                        for x in report.rejected
                    ],
                )

            part = await run_idempotent(
                self.uow, "ImportSkus", chunk, pb.ImportSkusResponse, handle
            )
            total.created += part.created
            total.updated += part.updated
            total.unchanged += part.unchanged
            total.rejected.extend(part.rejected)
        return total

    async def RegisterChannel(
        self, request: pb.RegisterChannelRequest, context: Context
    ) -> pb.RegisterChannelResponse:
        channel_id = request.channel.channel_id.strip()
        kind = CHANNEL_KIND_FROM_PROTO.get(request.channel.kind)

        async def handle(uow: UnitOfWork) -> pb.RegisterChannelResponse:
            registered = await channels.register_channel(uow, channel_id, kind)
            return pb.RegisterChannelResponse(
                channel=catalog_pb2.Channel(
                    channel_id=channel_id, kind=CHANNEL_KIND_TO_PROTO[registered]
                )
            )

        return await run_idempotent(
            self.uow, "RegisterChannel", request, pb.RegisterChannelResponse, handle
        )

    async def SetAssortment(
        self, request: pb.SetAssortmentRequest, context: Context
    ) -> pb.SetAssortmentResponse:
        channel_id = request.channel_id.strip()
        entries: list[AssortmentEntry | None] = []
        bad_times = Validator()
        for i, e in enumerate(request.entries):
            kind = ASSORTMENT_KIND_FROM_PROTO.get(e.kind)
            window: list[datetime | None] = []
            for field in ("sellable_from", "sellable_until"):
                try:
                    window.append(optional_time(e, field, f"entries[{i}].{field}"))
                except InvalidArgument as error:
                    bad_times.violations.extend(error.violations)
                    window.append(None)
            entries.append(
                None
                if kind is None
                else AssortmentEntry(
                    channel_id=e.channel_id.strip() or channel_id,
                    sku_code=e.sku_code.strip(),
                    kind=kind,
                    sellable_from=window[0],
                    sellable_until=window[1],
                )
            )
        bad_times.raise_if_any()

        async def handle(uow: UnitOfWork) -> pb.SetAssortmentResponse:
            done = await channels.set_assortment(uow, channel_id, entries)
            return pb.SetAssortmentResponse(entries=[channels.entry_to_proto(e) for e in done])

        return await run_idempotent(
            self.uow, "SetAssortment", request, pb.SetAssortmentResponse, handle
        )

    async def MapChannelSkus(
        self, request: pb.MapChannelSkusRequest, context: Context
    ) -> pb.MapChannelSkusResponse:
        channel_id = request.channel_id.strip()
        mappings = [
            Mapping(
                m.channel_id.strip() or channel_id,
                m.sku_code.strip(),
                m.external_sku_id,
                m.external_item_id,
            )
            for m in request.mappings
        ]

        async def handle(uow: UnitOfWork) -> pb.MapChannelSkusResponse:
            done = await channels.map_channel_skus(uow, channel_id, mappings)
            return pb.MapChannelSkusResponse(mappings=[_mapping(m) for m in done])

        return await run_idempotent(
            self.uow, "MapChannelSkus", request, pb.MapChannelSkusResponse, handle
        )

    async def ResolveChannelSkus(
        self, request: pb.ResolveChannelSkusRequest, context: Context
    ) -> pb.ResolveChannelSkusResponse:
        async with self.uow() as uow:
            found, unknown, unmapped = await channels.resolve_channel_skus(
                uow,
                request.channel_id.strip(),
                list(request.external_sku_ids),
                list(request.sku_codes),
            )
        return pb.ResolveChannelSkusResponse(
            mappings=[_mapping(m) for m in found],
            unknown_external_sku_ids=unknown,
            unmapped_sku_codes=unmapped,
        )

    async def SetListPrice(
        self, request: pb.SetListPriceRequest, context: Context
    ) -> pb.SetListPriceResponse:
        price = money_from_proto(request, "list_price")

        async def handle(uow: UnitOfWork) -> pb.SetListPriceResponse:
            sku = await prices.set_list_price(uow, request.sku_code.strip(), price)
            return pb.SetListPriceResponse(sku=sku_to_proto(sku))

        return await run_idempotent(
            self.uow, "SetListPrice", request, pb.SetListPriceResponse, handle
        )

    async def SetChannelPriceRule(
        self, request: pb.SetChannelPriceRuleRequest, context: Context
    ) -> pb.SetChannelPriceRuleResponse:
        r = request.rule
        which = r.WhichOneof("rule")
        rule = ChannelRule(
            fixed=money_from_proto(r, "fixed_price") if which == "fixed_price" else None,
            percentage_bp=r.percentage_of_list_bp if which == "percentage_of_list_bp" else None,
        )
        channel_id, sku_code = r.channel_id.strip(), r.sku_code.strip()

        async def handle(uow: UnitOfWork) -> pb.SetChannelPriceRuleResponse:
            done = await prices.set_channel_price_rule(uow, channel_id, sku_code, rule)
            return pb.SetChannelPriceRuleResponse(
                rule=prices.rule_to_proto(channel_id, sku_code, done)
            )

        return await run_idempotent(
            self.uow, "SetChannelPriceRule", request, pb.SetChannelPriceRuleResponse, handle
        )

    async def SetRegionalPrice(
        self, request: pb.SetRegionalPriceRequest, context: Context
    ) -> pb.SetRegionalPriceResponse:
        r = request.regional_price
        sku_code, region = r.sku_code.strip(), r.region_code.strip()
        price = money_from_proto(r, "price")

        async def handle(uow: UnitOfWork) -> pb.SetRegionalPriceResponse:
            done = await prices.set_regional_price(uow, sku_code, region, price)
            return pb.SetRegionalPriceResponse(
                regional_price=catalog_pb2.RegionalPrice(
                    sku_code=sku_code, region_code=region, price=money_to_proto(done)
                )
            )

        return await run_idempotent(
            self.uow, "SetRegionalPrice", request, pb.SetRegionalPriceResponse, handle
        )

    async def DeclarePromotion(
        self, request: pb.DeclarePromotionRequest, context: Context
    ) -> pb.DeclarePromotionResponse:
        p = request.promotion
        for i, item in enumerate(p.items):
            if not item.HasField("price"):
                raise InvalidArgument.field(f"promotion.items[{i}].price", "is required")
        promotion = Promotion(
            promotion_id=p.promotion_id.strip(),
            name=p.name.strip(),
            channel_ids=tuple(c.strip() for c in p.channel_ids),
            items=tuple(
                (i.sku_code.strip(), Money(i.price.currency_code.strip(), i.price.amount_minor))
                for i in p.items
            ),
            window=Window(
                optional_time(p, "start_time", "promotion.start_time"),
                optional_time(p, "end_time", "promotion.end_time"),
            ),
        )

        async def handle(uow: UnitOfWork) -> pb.DeclarePromotionResponse:
            done = await prices.declare_promotion(uow, promotion)
            return pb.DeclarePromotionResponse(promotion=prices.promotion_to_proto(done))

        return await run_idempotent(
            self.uow, "DeclarePromotion", request, pb.DeclarePromotionResponse, handle
        )

    async def ResolvePrice(
        self, request: pb.ResolvePriceRequest, context: Context
    ) -> pb.ResolvePriceResponse:
        at = _at(request)
        channel_id, region = request.channel_id.strip(), request.region_code.strip()
        sku_code = request.sku_code.strip()
        async with self.uow() as uow:
            [resolved] = await prices.resolve_prices(uow, [sku_code], channel_id, region, at)
        return pb.ResolvePriceResponse(
            price=prices.resolved_to_proto(sku_code, channel_id, region, at, resolved)
        )

    async def ResolveCartPrices(
        self, request: pb.ResolveCartPricesRequest, context: Context
    ) -> pb.ResolveCartPricesResponse:
        at = _at(request)
        channel_id, region = request.channel_id.strip(), request.region_code.strip()
        codes = [line.sku_code.strip() for line in request.lines]
        async with self.uow() as uow:
            resolved = await prices.resolve_prices(uow, codes, channel_id, region, at)
        return pb.ResolveCartPricesResponse(
            prices=[
                prices.resolved_to_proto(code, channel_id, region, at, r)
                for code, r in zip(codes, resolved, strict=True)
            ]
        )
