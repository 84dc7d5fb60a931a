"""Parse a stock import file (CSV) into rows; malformed lines become row errors.

A file that cannot be read as a whole — not UTF-8, a NUL character, no header with the
columns, or CSV structure the parser refuses (e.g. a field over the csv module's 131,072
characters, an unterminated quote) — is INVALID_ARGUMENT on ``csv_file`` naming the row and
nothing of it is applied: past such a point the parser's rows can no longer be trusted, and a
half-applied file is hard to resend without applying its first part twice. Rows that parse but
carry bad values are reported one by one while the good rows land (service_layer.stock)."""

from __future__ import annotations

import csv
import io
import re

from libs.errors import InvalidArgument
from services.inventory.domain.stock import MovementKind
from services.inventory.service_layer.stock import ImportRow, RowError

COLUMNS = ("location_id", "sku_code", "kind", "quantity", "idempotency_key", "reason")
QUANTITY = re.compile(r"^[+-]?[0-9]{1,19}$")


def parse_csv(content: bytes) -> tuple[list[ImportRow | None], list[RowError]]:
    """Rows in file order (None where a line could not be parsed, so row numbers stay the
    file's data-line numbers) and the errors for those lines. Raises InvalidArgument on
    ``csv_file`` when the file as a whole can't be read (see the module docstring)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidArgument.field(
            "csv_file", f"must be UTF-8 text (undecodable byte at offset {error.start})"
        ) from None
    if (nul := text.find("\x00")) >= 0:
        line = text.count("\n", 0, nul) + 1
        raise InvalidArgument.field("csv_file", f"line {line} contains a NUL character")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows: list[ImportRow | None] = []
    errors: list[RowError] = []
    number = 0
    try:
        missing = [c for c in COLUMNS[:4] if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidArgument.field("csv_file", f"header lacks columns: {', '.join(missing)}")
        for number, record in enumerate(reader, start=1):
            rows.append(_row(number, record, errors))
    except csv.Error as error:
        where = f"row {number + 1}" if reader.fieldnames else "the header"
        raise InvalidArgument.field("csv_file", f"{where} is not valid CSV: {error}") from None
    return rows, errors


def _row(number: int, record: dict[str, str | None], errors: list[RowError]) -> ImportRow | None:
    quantity_text = (record.get("quantity") or "").strip()
    if not QUANTITY.match(quantity_text):
        errors.append(RowError(number, "quantity", "must be a whole number"))
        return None
    kind_text = (record.get("kind") or "").strip().lower()
    try:
        kind: MovementKind | None = MovementKind(kind_text)
    except ValueError:
        kind = None
    return ImportRow(
        location_id=(record.get("location_id") or "").strip(),
        sku_code=(record.get("sku_code") or "").strip(),
        kind=kind,
        quantity=int(quantity_text),
        idempotency_key=(record.get("idempotency_key") or "").strip(),
        reason=(record.get("reason") or "").strip(),
    )
