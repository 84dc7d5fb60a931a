"""Settlement periods: calendar months (UTC) named "YYYY-MM".

An entry belongs to the month it happened in; once that month is closed it lands in the
first later month that is still open, so a closed statement never changes.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime

PERIOD_PATTERN = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
# The first and last months whose start and end a datetime can represent (year 1 to 9999).
FIRST_PERIOD, LAST_PERIOD = "0001-01", "9999-11"


def is_period(text: str) -> bool:
    """A month "YYYY-MM" from 0001-01 to 9999-11: "0000-05" has no start and "9999-12" no end
    a calendar can name."""
    return PERIOD_PATTERN.fullmatch(text) is not None and FIRST_PERIOD <= text <= LAST_PERIOD


def period_of(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def period_end(period: str) -> datetime:
    """The first instant after the period."""
    following = next_period(period)
    return datetime(int(following[:4]), int(following[5:]), 1, tzinfo=UTC)


def landing_period(occurred: datetime, closed: Collection[str]) -> str:
    """The period an entry that happened at ``occurred`` is booked in."""
    period = period_of(occurred)
    while period in closed:
        period = next_period(period)
    return period
