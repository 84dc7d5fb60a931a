"""CPU accounting of the platform's OS processes from /proc/<pid>/stat.

A process's figure is its own user + system time plus what its reaped children used
(cutime + cstime), plus the same for each child still alive, recursively. For PostgreSQL
that is the postmaster and every backend and worker: a backend that exits during a window
is counted through the postmaster's cutime/cstime once the postmaster has reaped it, and a
live one through its own utime/stime. (A backend that exits between the two reads of one
sample is missed or counted twice in that sample only; the next sample is right again.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_TCP_LISTEN = "0A"


@dataclass(frozen=True)
class ProcStat:
    pid: int
    comm: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int


def read_stat(pid: int) -> ProcStat | None:
    """The process's stat line, or None if it is gone."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm is in parentheses and may itself contain spaces or ')'.
    head, _, rest = raw.rpartition(")")
    fields = rest.split()
    # fields[0] is field 3 (state) of proc(5): ppid is field 4, utime..cstime 14..17.
    return ProcStat(
        pid=pid,
        comm=head.partition("(")[2],
        ppid=int(fields[1]),
        utime=int(fields[11]),
        stime=int(fields[12]),
        cutime=int(fields[13]),
        cstime=int(fields[14]),
    )


def children_by_parent() -> dict[int, list[int]]:
    """Every live process's children, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = read_stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat.ppid, []).append(stat.pid)
    return children


def tree_cpu_seconds(pid: int, children: Mapping[int, list[int]]) -> float:
    """CPU seconds used so far by ``pid`` and all its descendants, reaped or alive. The
    parent is read before its children, so a child that exits in between is missed in this
    sample rather than counted twice."""
    stat = read_stat(pid)
    if stat is None:
        return 0.0
    ticks = stat.utime + stat.stime + stat.cutime + stat.cstime
    total = ticks / TICKS_PER_SECOND
    for child in children.get(pid, []):
        total += tree_cpu_seconds(child, children)
    return total


def sample(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process tree."""
    children = children_by_parent()
    return {name: tree_cpu_seconds(pid, children) for name, pid in pids.items()}


def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def listening_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` (IPv4 or IPv6), found through the socket's
    inode in /proc/net/tcp* and the processes' open file descriptors."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        path = PROC / "net" / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return None
