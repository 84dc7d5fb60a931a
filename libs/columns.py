"""Rows as column arrays: a batch goes to PostgreSQL as one parameter per column and comes
back out with ``unnest($1::text[], $2::bigint[], …)``, so one statement carries any number
of rows (asyncpg encodes each array in one go; no statement text grows with the batch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def columns(rows: Sequence[T], *getters: Callable[[T], object]) -> list[list[object]]:
    """One list per getter, each holding that getter's value of every row, in row order."""
    return [[get(row) for row in rows] for get in getters]
