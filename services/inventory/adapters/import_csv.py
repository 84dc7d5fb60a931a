"""Parse a stock import file (CSV) into rows; malformed lines become row errors."""

from __future__ import annotations

import csv
import io

from services.inventory.domain.stock import MovementKind
from services.inventory.service_layer.stock import ImportRow, RowError

COLUMNS = ("location_id", "sku_code", "kind", "quantity", "idempotency_key", "reason")


def parse_csv(content: bytes) -> tuple[list[ImportRow | None], list[RowError]]:
    """Rows in file order (None where a line could not be parsed, so row numbers stay the
    file's data-line numbers) and the errors for those lines."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [RowError(0, "csv_file", "must be UTF-8 text")]
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS[:4] if c not in (reader.fieldnames or [])]
    if missing:
        return [], [RowError(0, "csv_file", f"header lacks columns: {', '.join(missing)}")]
    rows: list[ImportRow | None] = []
    errors: list[RowError] = []
    for number, record in enumerate(reader, start=1):
        kind_text = (record.get("kind") or "").strip().lower()
        try:
            quantity = int((record.get("quantity") or "").strip())
        except ValueError:
            rows.append(None)
            errors.append(RowError(number, "quantity", "must be a whole number"))
            continue
        try:
            kind: MovementKind | None = MovementKind(kind_text)
        except ValueError:
            kind = None
        rows.append(
            ImportRow(
                location_id=(record.get("location_id") or "").strip(),
                sku_code=(record.get("sku_code") or "").strip(),
                kind=kind,
                quantity=quantity,
                idempotency_key=(record.get("idempotency_key") or "").strip(),
                reason=(record.get("reason") or "").strip(),
            )
        )
    return rows, errors
