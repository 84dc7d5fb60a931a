"""Channels, their assortments and their SKU mappings in the catalog database."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from libs.errors import AlreadyExists
from services.catalog.adapters.tables import assortments, channel_sku_mappings, channels
from services.catalog.domain.assortments import AssortmentKind, ChannelKind


@dataclass(frozen=True)
class AssortmentEntry:
    channel_id: str
    sku_code: str
    kind: AssortmentKind
    sellable_from: datetime | None
    sellable_until: datetime | None


@dataclass(frozen=True)
class Mapping:
    channel_id: str
    sku_code: str
    external_sku_id: str
    external_item_id: str


class ChannelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_channel(self, channel_id: str, kind: ChannelKind) -> bool:
        row = (
            await self.session.execute(
                insert(channels)
                .values(channel_id=channel_id, kind=kind.value)
                .on_conflict_do_nothing()
                .returning(channels.c.channel_id)
            )
        ).first()
        return row is not None

    async def channel_kind(self, channel_id: str) -> ChannelKind | None:
        kind = (
            await self.session.execute(
                sa.select(channels.c.kind).where(channels.c.channel_id == channel_id)
            )
        ).scalar()
        return ChannelKind(kind) if kind else None

    async def listed_skus(self, channel_id: str, sku_codes: Iterable[str]) -> set[str]:
        result = await self.session.execute(
            sa.select(assortments.c.sku_code).where(
                assortments.c.channel_id == channel_id,
                assortments.c.sku_code.in_(list(sku_codes)),
            )
        )
        return set(result.scalars())

    async def upsert_entries(self, entries: Sequence[AssortmentEntry]) -> None:
        rows = [
            {
                "channel_id": e.channel_id,
                "sku_code": e.sku_code,
                "kind": e.kind.value,
                "sellable_from": e.sellable_from,
                "sellable_until": e.sellable_until,
            }
            for e in entries
        ]
        statement = insert(assortments)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[assortments.c.channel_id, assortments.c.sku_code],
                set_={
                    "kind": statement.excluded.kind,
                    "sellable_from": statement.excluded.sellable_from,
                    "sellable_until": statement.excluded.sellable_until,
                    "updated_at": sa.func.now(),
                },
            ),
            rows,
        )

    async def mappings_by_external(
        self, channel_id: str, external_ids: Iterable[str]
    ) -> list[Mapping]:
        result = await self.session.execute(
            sa.select(channel_sku_mappings).where(
                channel_sku_mappings.c.channel_id == channel_id,
                channel_sku_mappings.c.external_sku_id.in_(list(external_ids)),
            )
        )
        return [_mapping(r) for r in result]

    async def mappings_by_sku(self, channel_id: str, sku_codes: Iterable[str]) -> list[Mapping]:
        result = await self.session.execute(
            sa.select(channel_sku_mappings).where(
                channel_sku_mappings.c.channel_id == channel_id,
                channel_sku_mappings.c.sku_code.in_(list(sku_codes)),
            )
        )
        return [_mapping(r) for r in result]

    async def insert_mappings(self, mappings: Sequence[Mapping]) -> None:
        """Insert mappings; one that a concurrent call inserted first is ALREADY_EXISTS."""
        try:
            await self._insert_mappings(mappings)
        except IntegrityError:
            raise AlreadyExists(
                "a concurrent call mapped one of these ids first; resolve and retry"
            ) from None

    async def _insert_mappings(self, mappings: Sequence[Mapping]) -> None:
        await self.session.execute(
            insert(channel_sku_mappings),
            [
                {
                    "channel_id": m.channel_id,
                    "sku_code": m.sku_code,
                    "external_sku_id": m.external_sku_id,
                    "external_item_id": m.external_item_id,
                }
                for m in mappings
            ],
        )


def _mapping(row: sa.Row[tuple[object, ...]]) -> Mapping:
    m = row._mapping
    return Mapping(m["channel_id"], m["sku_code"], m["external_sku_id"], m["external_item_id"])
