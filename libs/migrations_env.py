"""The Alembic environment every service's migrations/env.py delegates to."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Replicas starting together must not run the same migration twice.
_MIGRATION_LOCK_ID = 0x6F6D6E69


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        # Held until the migrations commit or roll back; a second replica waits, then finds
        # nothing left to do.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_env() -> None:
    if context.is_offline_mode():
        raise RuntimeError("offline migrations are not supported; run them against a database")
    url = context.config.attributes.get("url")
    if url is None:
        raise RuntimeError("the database URL is not set (libs.db.migrate sets it)")
    asyncio.run(_run_async(url))
