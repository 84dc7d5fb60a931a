"""Channel use cases: the channel record, its assortment and its SKU mappings."""

from __future__ import annotations

from collections.abc import Sequence

from omni.catalog.v1 import catalog_pb2, events_pb2

from libs.errors import AlreadyExists, NotFound, Validator
from libs.unit_of_work import UnitOfWork
from services.catalog.adapters.channel_repository import AssortmentEntry, ChannelRepository, Mapping
from services.catalog.adapters.proto import ASSORTMENT_KIND_TO_PROTO, timestamp
from services.catalog.adapters.sku_repository import SkuRepository
from services.catalog.adapters.taxonomy_repository import TaxonomyRepository
from services.catalog.domain.assortments import ChannelKind, check_listing
from services.catalog.domain.pricing import Window
from services.catalog.domain.skus import validate_code

MAX_BATCH = 1000
MAX_EXTERNAL_ID_LENGTH = 128


async def register_channel(
    uow: UnitOfWork, channel_id: str, kind: ChannelKind | None
) -> ChannelKind:
    """Record a channel and whether it sells online or offline; registering it again with the
    same kind is accepted, with another kind refused (its assortment was checked against it)."""
    v = Validator()
    validate_code(v, "channel.channel_id", channel_id)
    v.check(kind is not None, "channel.kind", "must be CHANNEL_KIND_ONLINE or CHANNEL_KIND_OFFLINE")
    v.raise_if_any()
    assert kind is not None
    repo = ChannelRepository(uow.session)
    if not await repo.add_channel(channel_id, kind):
        existing = await repo.channel_kind(channel_id)
        if existing is not kind:
            raise AlreadyExists(f"channel {channel_id} is already registered as {existing}")
    return kind


async def _channel_kind(repo: ChannelRepository, channel_id: str) -> ChannelKind:
    kind = await repo.channel_kind(channel_id)
    if kind is None:
        raise NotFound(f"channel {channel_id} is not registered in the catalog")
    return kind


def entry_to_proto(e: AssortmentEntry) -> catalog_pb2.AssortmentEntry:
    message = catalog_pb2.AssortmentEntry(
        channel_id=e.channel_id, sku_code=e.sku_code, kind=ASSORTMENT_KIND_TO_PROTO[e.kind]
    )
    if e.sellable_from is not None:
        message.sellable_from.CopyFrom(timestamp(e.sellable_from))
    if e.sellable_until is not None:
        message.sellable_until.CopyFrom(timestamp(e.sellable_until))
    return message


async def set_assortment(
    uow: UnitOfWork, channel_id: str, entries: Sequence[AssortmentEntry | None]
) -> list[AssortmentEntry]:
    """Insert or change a channel's assortment entries (one per SKU), all or nothing.

    ``None`` stands for an entry whose kind was not given. Rules per entry are in
    domain.assortments.check_listing; each change is announced as AssortmentChangedEvent."""
    v = Validator()
    validate_code(v, "channel_id", channel_id)
    v.check(0 < len(entries) <= MAX_BATCH, "entries", f"must hold 1-{MAX_BATCH} entries")
    seen: set[str] = set()
    for i, e in enumerate(entries):
        if e is None:
            v.add(f"entries[{i}].kind", "is required")
            continue
        validate_code(v, f"entries[{i}].sku_code", e.sku_code)
        v.check(e.sku_code not in seen, f"entries[{i}].sku_code", "appears twice")
        seen.add(e.sku_code)
        v.check(
            e.channel_id == channel_id,
            f"entries[{i}].channel_id",
            "must be empty or equal to channel_id",
        )
        v.check(
            Window(e.sellable_from, e.sellable_until).is_well_formed(),
            f"entries[{i}].sellable_until",
            "must be after sellable_from",
        )
    v.raise_if_any()
    listed_entries = [e for e in entries if e is not None]
    repo = ChannelRepository(uow.session)
    kind = await _channel_kind(repo, channel_id)
    skus = await SkuRepository(uow.session).get_many(seen, lock=True)
    if missing := sorted(seen - skus.keys()):
        raise NotFound(f"SKUs do not exist: {', '.join(missing[:20])}")
    listed = await repo.listed_skus(channel_id, seen)
    taxonomy = TaxonomyRepository(uow.session)
    brand_online_only: dict[str, bool] = {}
    for code in {s.brand_code for s in skus.values() if s.brand_code}:
        brand = await taxonomy.get_brand(code)
        brand_online_only[code] = bool(brand and brand.online_only)
    for e in listed_entries:
        sku = skus[e.sku_code]
        check_listing(
            sku_code=e.sku_code,
            kind=e.kind,
            channel_id=channel_id,
            channel_kind=kind,
            brand_online_only=brand_online_only.get(sku.brand_code, False),
            lifecycle=sku.lifecycle,
            already_listed=e.sku_code in listed,
        )
    await repo.upsert_entries(listed_entries)
    for e in listed_entries:
        uow.emit(
            events_pb2.AssortmentChangedEvent(entry=entry_to_proto(e)), aggregate_id=e.sku_code
        )
    return listed_entries


def _validate_external_id(v: Validator, field: str, value: str, *, required: bool) -> None:
    if not value:
        v.check(not required, field, "is required")
        return
    v.check(
        len(value) <= MAX_EXTERNAL_ID_LENGTH and value.strip() == value,
        field,
        f"must be at most {MAX_EXTERNAL_ID_LENGTH} characters without surrounding spaces",
    )


async def map_channel_skus(
    uow: UnitOfWork, channel_id: str, mappings: Sequence[Mapping]
) -> list[Mapping]:
    """Map a marketplace's SKU ids to ours. Per channel a marketplace id names one SKU and a SKU
    has one marketplace id: a different existing mapping is ALREADY_EXISTS; the same mapping
    again is accepted (nothing changes)."""
    v = Validator()
    validate_code(v, "channel_id", channel_id)
    v.check(0 < len(mappings) <= MAX_BATCH, "mappings", f"must hold 1-{MAX_BATCH} mappings")
    externals: set[str] = set()
    ours: set[str] = set()
    for i, m in enumerate(mappings):
        validate_code(v, f"mappings[{i}].sku_code", m.sku_code)
        _validate_external_id(v, f"mappings[{i}].external_sku_id", m.external_sku_id, required=True)
        _validate_external_id(
            v, f"mappings[{i}].external_item_id", m.external_item_id, required=False
        )
        v.check(m.channel_id == channel_id, f"mappings[{i}].channel_id", "must equal channel_id")
        v.check(
            m.external_sku_id not in externals, f"mappings[{i}].external_sku_id", "appears twice"
        )
        v.check(m.sku_code not in ours, f"mappings[{i}].sku_code", "appears twice")
        externals.add(m.external_sku_id)
        ours.add(m.sku_code)
    v.raise_if_any()
    repo = ChannelRepository(uow.session)
    await _channel_kind(repo, channel_id)
    found = await SkuRepository(uow.session).get_many(ours)
    if missing := sorted(ours - found.keys()):
        raise NotFound(f"SKUs do not exist: {', '.join(missing[:20])}")
    existing = {
        *await repo.mappings_by_external(channel_id, externals),
        *await repo.mappings_by_sku(channel_id, ours),
    }
    conflicts = sorted(existing - set(mappings), key=lambda m: m.external_sku_id)
    if conflicts:
        m = conflicts[0]
        raise AlreadyExists(
            f"on channel {channel_id} the marketplace SKU {m.external_sku_id} is already mapped "
            f"to {m.sku_code}"
        )
    new = [m for m in mappings if m not in existing]
    if new:
        await repo.insert_mappings(new)
    return list(mappings)


async def resolve_channel_skus(
    uow: UnitOfWork, channel_id: str, external_ids: Sequence[str], sku_codes: Sequence[str]
) -> tuple[list[Mapping], list[str], list[str]]:
    """Both directions in one call: marketplace ids → ours and ours → marketplace ids.

    Returns the mappings found, the marketplace ids without one and our codes without one."""
    v = Validator()
    validate_code(v, "channel_id", channel_id)
    v.check(
        len(external_ids) + len(sku_codes) <= 2 * MAX_BATCH,
        "external_sku_ids",
        f"at most {2 * MAX_BATCH} ids per call",
    )
    v.raise_if_any()
    repo = ChannelRepository(uow.session)
    by_external = await repo.mappings_by_external(channel_id, external_ids) if external_ids else []
    by_sku = await repo.mappings_by_sku(channel_id, sku_codes) if sku_codes else []
    known_external = {m.external_sku_id for m in by_external}
    known_sku = {m.sku_code for m in by_sku}
    found = list(dict.fromkeys([*by_external, *by_sku]))
    return (
        found,
        [e for e in external_ids if e not in known_external],
        [s for s in sku_codes if s not in known_sku],
    )
