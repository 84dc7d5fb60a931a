"""Bulk import of styles, SKUs and list prices, one chunk per transaction.

A row is an upsert keyed by the SKU code: a new SKU is created (with its style when the
style is new), an existing one is updated when the row differs and left alone when it is
identical — so importing the same file twice changes nothing and emits nothing the second
time. A bad row is reported with its reasons and the good rows of the chunk still land.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from omni.catalog.v1 import events_pb2
from sqlalchemy.exc import IntegrityError

from libs.errors import Aborted, Validator
from libs.unit_of_work import UnitOfWork
from services.catalog import metrics
from services.catalog.adapters.price_repository import PriceRepository
from services.catalog.adapters.proto import sku_to_proto
from services.catalog.adapters.sku_repository import SkuRepository
from services.catalog.adapters.taxonomy_repository import TaxonomyRepository
from services.catalog.domain.pricing import Money, currency_clash, sku_currencies
from services.catalog.domain.skus import MAX_NAME_LENGTH, NewSku, Sku, gtin13, validate_code

MAX_CHUNK_ROWS = 5000


@dataclass(frozen=True)
class ImportRow:
    line_number: int
    style_code: str
    style_name: str
    brand_code: str
    category_code: str
    sku_code: str
    name: str
    barcode: str
    color: str
    size: str
    list_price: Money | None


@dataclass(frozen=True)
class RejectedRow:
    line_number: int
    sku_code: str
    reasons: list[str]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)


def _new_sku(row: ImportRow) -> NewSku:
    return NewSku(
        sku_code=row.sku_code,
        style_code=row.style_code,
        name=row.name,
        barcode=row.barcode,
        color=row.color,
        size=row.size,
        list_price=row.list_price,
    )


def _row_violations(row: ImportRow) -> list[str]:
    v = Validator()
    _new_sku(row).collect_violations(v)
    validate_code(v, "brand_code", row.brand_code, required=False)
    validate_code(v, "category_code", row.category_code, required=False)
    v.check(
        len(row.style_name) <= MAX_NAME_LENGTH,
        "style_name",
        f"must be at most {MAX_NAME_LENGTH} characters",
    )
    return [f"{x.field}: {x.description}" for x in v.violations]


async def import_chunk(uow: UnitOfWork, rows: Sequence[ImportRow]) -> ImportReport:
    """Import one chunk (see the module docstring for the rules)."""
    v = Validator()
    v.check(0 < len(rows) <= MAX_CHUNK_ROWS, "rows", f"must hold 1-{MAX_CHUNK_ROWS} rows")
    v.raise_if_any()
    report = ImportReport()

    def reject(row: ImportRow, *reasons: str) -> None:
        report.rejected.append(RejectedRow(row.line_number, row.sku_code, list(reasons)))

    candidates: list[ImportRow] = []
    seen_skus: set[str] = set()
    seen_gtins: set[str] = set()
    for row in rows:
        if problems := _row_violations(row):
            reject(row, *problems)
        elif row.sku_code in seen_skus:
            reject(row, f"sku_code: {row.sku_code} appears earlier in the same chunk")
        elif row.barcode and gtin13(row.barcode) in seen_gtins:
            reject(row, f"barcode: GTIN {gtin13(row.barcode)} appears earlier in the same chunk")
        else:
            seen_skus.add(row.sku_code)
            if row.barcode:
                seen_gtins.add(gtin13(row.barcode))
            candidates.append(row)

    skus_repo = SkuRepository(uow.session)
    taxonomy = TaxonomyRepository(uow.session)
    brands = await taxonomy.existing_brands({r.brand_code for r in candidates if r.brand_code})
    categories = await taxonomy.existing_categories(
        {r.category_code for r in candidates if r.category_code}
    )
    styles = await skus_repo.get_styles(r.style_code for r in candidates)
    existing = await skus_repo.get_many((r.sku_code for r in candidates), lock=True)
    # The currencies of the other prices of existing SKUs (a SKU has one currency).
    other_currencies = await PriceRepository(uow.session).currencies_of(
        [r.sku_code for r in candidates if r.list_price is not None and r.sku_code in existing]
    )
    owners = await skus_repo.gtin_owners(r.barcode for r in candidates if r.barcode)

    now = datetime.now(UTC)
    new_styles: dict[str, tuple[str, str]] = {}  # style → (brand, category) chosen in this chunk
    style_rows: list[dict[str, object]] = []
    sku_rows: list[dict[str, object]] = []
    created: list[Sku] = []
    for row in candidates:
        reasons: list[str] = []
        if row.brand_code and row.brand_code not in brands:
            reasons.append(f"brand_code: brand {row.brand_code} does not exist")
        if row.category_code and row.category_code not in categories:
            reasons.append(f"category_code: category {row.category_code} does not exist")
        owner = owners.get(gtin13(row.barcode)) if row.barcode else None
        if owner is not None and owner != row.sku_code:
            reasons.append(f"barcode: {row.barcode} is already used by SKU {owner}")
        style = styles.get(row.style_code)
        brand, category = (
            (style.brand_code, style.category_code)
            if style
            else new_styles.get(row.style_code, (row.brand_code, row.category_code))
        )
        if row.brand_code and row.brand_code != brand:
            reasons.append(f"brand_code: style {row.style_code} belongs to brand '{brand}'")
        if row.category_code and row.category_code != category:
            reasons.append(f"category_code: style {row.style_code} is in category '{category}'")
        current = existing.get(row.sku_code)
        if current is not None and current.style_code != row.style_code:
            reasons.append(f"style_code: SKU {row.sku_code} belongs to style {current.style_code}")
        if current is not None and row.list_price is not None:
            priced_in = sku_currencies(
                current.list_price, other_currencies.get(row.sku_code, set())
            )
            if clash := currency_clash(row.list_price.currency, priced_in):
                reasons.append(f"list_price.currency_code: SKU {row.sku_code} is priced in {clash}")
        if reasons:
            reject(row, *reasons)
            continue
        if style is None and row.style_code not in new_styles:
            new_styles[row.style_code] = (row.brand_code, row.category_code)
            style_rows.append(
                {
                    "style_code": row.style_code,
                    "name": row.style_name.strip() or row.name,
                    "brand_code": row.brand_code or None,
                    "category_code": row.category_code or None,
                }
            )
        if current is None:
            new_row = {**SkuRepository.row_for(_new_sku(row)), "created_at": now, "updated_at": now}
            sku_rows.append(new_row)
            created.append(
                Sku(
                    sku_code=row.sku_code,
                    style_code=row.style_code,
                    name=row.name,
                    barcode=row.barcode,
                    color=row.color,
                    size=row.size,
                    created_at=now,
                    list_price=row.list_price,
                    brand_code=brand,
                    category_code=category,
                    updated_at=now,
                )
            )
            continue
        changes = {
            k: val
            for k, val in (
                ("name", row.name),
                ("barcode", row.barcode),
                ("color", row.color),
                ("size", row.size),
            )
            if getattr(current, k) != val
        }
        price_changed = row.list_price is not None and row.list_price != current.list_price
        if not changes and not price_changed:
            report.unchanged += 1
            continue
        values: dict[str, object] = {**changes}
        if "barcode" in values:
            values["barcode"] = values["barcode"] or None
        if price_changed and row.list_price is not None:
            values.update(
                list_price_minor=row.list_price.amount_minor, currency=row.list_price.currency
            )
        try:
            updated = await skus_repo.update(row.sku_code, **values)
        except IntegrityError:
            raise Aborted(
                "a concurrent change took one of these barcodes; retry the chunk"
            ) from None
        report.updated += 1
        uow.emit(events_pb2.SkuChangedEvent(sku=sku_to_proto(updated)), aggregate_id=row.sku_code)
        if price_changed:
            uow.emit(
                events_pb2.PriceChangedEvent(
                    sku_code=row.sku_code, list_price_of=sku_to_proto(updated)
                ),
                aggregate_id=row.sku_code,
            )
    try:
        await skus_repo.ensure_styles(style_rows)
        await skus_repo.insert_many(sku_rows)
    except IntegrityError:
        raise Aborted("a concurrent import wrote some of these SKUs; retry the chunk") from None
    for sku in created:
        uow.emit(events_pb2.SkuCreatedEvent(sku=sku_to_proto(sku)), aggregate_id=sku.sku_code)
    report.created = len(created)
    report.rejected.sort(key=lambda r: r.line_number)
    uow.after_commit(lambda: count(report))
    return report


def count(report: ImportReport) -> None:
    """Record the chunk's outcome in the business metrics (once it committed)."""
    metrics.IMPORT_ROWS.labels("created").inc(report.created)
    metrics.IMPORT_ROWS.labels("updated").inc(report.updated)
    metrics.IMPORT_ROWS.labels("unchanged").inc(report.unchanged)
    metrics.IMPORT_ROWS.labels("rejected").inc(len(report.rejected))
    metrics.SKUS_CREATED.labels("import").inc(report.created)
