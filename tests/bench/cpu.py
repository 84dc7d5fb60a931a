"""CPU time of processes from /proc (user + system), for CPU-ms per event figures: a
service process, this process, and the PostgreSQL backends serving one database."""

from __future__ import annotations

import os
from collections.abc import Iterable

import asyncpg

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    # Fields after "(comm)": state is [0]; utime and stime are the 14th and 15th of the line.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def total_cpu_seconds(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def backend_pids(conn: asyncpg.Connection, database: str) -> set[int]:
    """The PostgreSQL backends connected to ``database``, except the one asking."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    )
    return {int(r["pid"]) for r in rows}


class CpuMeter:
    """CPU seconds a set of processes spent between ``start()`` and ``stop()``; PostgreSQL
    backends are found at both ends (a backend that comes and goes between is missed)."""

    def __init__(self, pids: Iterable[int] = ()) -> None:
        self.pids = set(pids)
        self._start: dict[int, float] = {}
        self.seconds = 0.0

    def start(self, more: Iterable[int] = ()) -> None:
        self.pids |= set(more)
        self._start = {pid: cpu_seconds(pid) for pid in self.pids}

    def stop(self, more: Iterable[int] = ()) -> float:
        self.pids |= set(more)
        self.seconds = sum(
            max(0.0, cpu_seconds(pid) - self._start.get(pid, 0.0)) for pid in self.pids
        )
        return self.seconds
