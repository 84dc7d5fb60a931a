"""Each service's own PostgreSQL database: create it if missing, migrate it, open sessions."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

# SQLSTATEs of conflicts PostgreSQL resolves by aborting one transaction.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
# The server is there but will not take us now (too many clients, starting up, shutting down).
_UNAVAILABLE_SQLSTATES = {"53300", "57P01", "57P02", "57P03", "08000", "08003", "08006"}


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what it wraps, however the driver and SQLAlchemy chained them."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return chain


def is_retryable_conflict(error: BaseException) -> bool:
    """A serialization failure or deadlock: nothing was committed, a retry may succeed."""
    return any(getattr(e, "sqlstate", None) in _RETRYABLE_SQLSTATES for e in _causes(error))


def is_database_unavailable(error: BaseException) -> bool:
    """The database could not be reached or refused the connection (dead connection, too many
    clients, restarting): infrastructure trouble to retry, never the caller's fault."""
    for e in _causes(error):
        if getattr(e, "connection_invalidated", False) or isinstance(e, ConnectionError | OSError):
            return True
        if getattr(e, "sqlstate", None) in _UNAVAILABLE_SQLSTATES:
            return True
        if isinstance(e, asyncpg.exceptions.PostgresConnectionError):
            return True
    return False


def asyncpg_connect_kwargs(url: URL) -> dict[str, object]:
    """asyncpg's connect() arguments for a SQLAlchemy URL (TCP or a Unix socket via ?host=)."""
    kwargs: dict[str, object] = {
        "user": url.username,
        "password": url.password,
        "database": url.database,
        "host": url.query.get("host", url.host),
        "port": url.port,
    }
    return {key: value for key, value in kwargs.items() if value is not None}


async def ensure_database(url: URL) -> None:
    """Create the database named in ``url`` on its server when it does not exist yet."""
    admin = asyncpg_connect_kwargs(url.set(database="postgres"))
    conn = await asyncpg.connect(**admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{url.database}"')
                log.info("created database", extra={"database": url.database})
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # Another process created it at the same moment (the catalog's unique
                # index on the name can answer before the duplicate check does).
                pass
    finally:
        await conn.close()


async def drop_database(url: URL) -> None:
    admin = asyncpg_connect_kwargs(url.set(database="postgres"))
    conn = await asyncpg.connect(**admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


async def migrate(url: URL, migrations_dir: Path) -> None:
    """Bring the database to the newest Alembic revision of the service's migrations/."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.attributes["url"] = url.render_as_string(hide_password=False)
    # Alembic's env.py runs its own event loop, so it gets a thread without one.
    await asyncio.to_thread(command.upgrade, config, "head")


class Database:
    """The engine and session factory of one service's database."""

    def __init__(self, url: URL, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = url
        # No pre-ping (a round trip per transaction): a connection found dead is invalidated
        # by SQLAlchemy and the call answers UNAVAILABLE, which callers retry.
        # hide_parameters: an error's text never carries the values (phones, names) to a log.
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=1800,
            hide_parameters=True,
        )
        # SQL spans, when switched on (OMNI_TRACE_SQL), come from the driver: see
        # libs.telemetry.instrument_sql (the SQLAlchemy instrumentation does not cover 2.1).
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> AsyncSession:
        return self.sessions()

    async def dispose(self) -> None:
        await self.engine.dispose()
