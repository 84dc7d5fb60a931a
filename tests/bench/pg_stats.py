"""Transactions per service database from pg_stat_database (xact_commit + xact_rollback).

Backends report their counts to the cumulative statistics at most once a second while busy
and within PGSTAT_IDLE_INTERVAL (10 s) once idle, so a reading taken right after a burst
misses its last transactions: read the end figure STATS_FLUSH_S after the platform went
quiet. Read over one connection to the server's maintenance database, opened before the
measurement, so reading adds no transaction to the service databases and no backend start
to the window."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

STATS_FLUSH_S = 11.0


class TransactionCounts:
    def __init__(self, pg_dsn: str, databases: Mapping[str, str]) -> None:
        """``databases``: service → its database name."""
        self.pg_dsn = pg_dsn
        self.databases = dict(databases)
        self.connection: asyncpg.Connection | None = None

    async def open(self) -> None:
        self.connection = await asyncpg.connect(self.pg_dsn)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def read(self) -> dict[str, int]:
        """Committed + rolled back transactions so far, per service. Each read is its own
        transaction, so it sees a fresh statistics snapshot."""
        assert self.connection is not None
        rows = await self.connection.fetch(
            "SELECT datname, xact_commit + xact_rollback AS xacts FROM pg_stat_database "
            "WHERE datname = ANY($1::text[])",
            list(self.databases.values()),
        )
        by_name = {row["datname"]: int(row["xacts"]) for row in rows}
        return {service: by_name.get(name, 0) for service, name in self.databases.items()}
