"""SKUs that inventory keeps stock for: known from catalog's events, never invented here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TrackedSku:
    sku_code: str
    style_code: str
    barcode: str
    tracked_since: datetime
