"""Migration 0004 on a database that already has a ledger: senders' keys move into their
namespace (so their retries are still recognised), the service's own keys stay, and a key a
sender had taken no longer blocks the confirm that needs it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

from libs.db import Database, drop_database, ensure_database

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "inventory" / "migrations"


async def upgrade(url: URL, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url.render_as_string(hide_password=False)
    await asyncio.to_thread(command.upgrade, config, revision)


LEGACY = [
    # (kind, quantity, key, reason, reference, location, sku)
    ("receipt", 5, "pos-1", "", "", "L1", "S1"),
    ("receipt", 5, "reservation:O1:L1:S1", "", "", "L1", "S1"),  # a sender took it
    ("count", 0, "request:R1", "", "", "L1", "S1"),
    ("adjustment", 1, "import:R2:1", "", "", "L1", "S1"),
    ("sale", -1, "reservation:O2:L1:S1", "reservation confirmed", "O2", "L1", "S1"),
    ("transfer_out", -1, "transfer:T1:S1:out", "", "T1", "L1", "S1"),
]


async def test_0004_moves_senders_keys_into_their_namespace(test_stack, unique):
    base = test_stack.settings("inventory").database_url()
    url = base.set(database=f"{base.database}_m{unique.lower()}")
    await ensure_database(url)
    db = Database(url, pool_size=1, max_overflow=0)
    try:
        await upgrade(url, "0003")
        async with db.engine.begin() as conn:
            for kind, quantity, key, reason, reference, location, sku in LEGACY:
                await conn.execute(
                    sa.text(
                        "INSERT INTO stock_movements (location_id, sku_code, kind, quantity, "
                        "on_hand_after, idempotency_key, reason, reference) "
                        "VALUES (:l, :s, :k, :q, 0, :key, :r, :ref)"
                    ),
                    {
                        "l": location,
                        "s": sku,
                        "k": kind,
                        "q": quantity,
                        "key": key,
                        "r": reason,
                        "ref": reference,
                    },
                )
        await upgrade(url, "head")
        async with db.engine.connect() as conn:
            keys = list(
                (
                    await conn.execute(
                        sa.text("SELECT idempotency_key FROM stock_movements ORDER BY movement_id")
                    )
                ).scalars()
            )
            # the ledger is append-only again after the rename
            trigger = (
                await conn.execute(
                    sa.text(
                        "SELECT tgenabled::text FROM pg_trigger "
                        "WHERE tgname = 'stock_movements_append_only'"
                    )
                )
            ).scalar_one()
        assert keys == [
            "client:pos-1",
            "client:reservation:O1:L1:S1",
            "request:R1",
            "import:R2:1",
            "reservation:O2:L1:S1",
            "transfer:T1:S1:out",
        ]
        assert trigger == "O"
    finally:
        await db.dispose()
        await drop_database(url)
