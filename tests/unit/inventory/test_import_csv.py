"""The stock import file parser: rows with bad values are row errors, a file that can't be
read as CSV is INVALID_ARGUMENT on csv_file naming where, never an internal error."""

from __future__ import annotations

import pytest

from libs.errors import InvalidArgument
from services.inventory.adapters.import_csv import parse_csv
from services.inventory.domain.stock import MovementKind

HEADER = b"location_id,sku_code,kind,quantity,idempotency_key,reason\n"


def refused(content: bytes) -> str:
    with pytest.raises(InvalidArgument) as caught:
        parse_csv(content)
    [violation] = caught.value.violations
    assert violation.field == "csv_file"
    return violation.description


def test_good_and_bad_rows_are_told_apart():
    rows, errors = parse_csv(
        HEADER + b"L1,S1,receipt,5,k1,\nL1,S1,receipt,1_0,k2,\nL1,S1,x,1,k3,\n"
    )
    assert [r.kind if r else None for r in rows] == [MovementKind.RECEIPT, None, None]
    assert rows[0] is not None and rows[0].quantity == 5
    assert [(e.row, e.field) for e in errors] == [(2, "quantity")]


def test_a_field_over_the_csv_limit_names_its_row():
    assert refused(
        HEADER + b"L1,S1,receipt,5,k1,\nL1,S1,receipt,5,k2," + b"x" * 140_000 + b"\n"
    ) == ("row 2 is not valid CSV: field larger than field limit (131072)")
    assert "header" in refused(b"location_id," + b"y" * 140_000 + b"\n")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\xff\xfe" + HEADER, "UTF-8"),
        (HEADER + b"L1,S1,rec\x00eipt,5,,\n", "line 2 contains a NUL"),
        (b"", "header lacks columns"),
        (b"location_id,sku_code\nL1,S1\n", "header lacks columns: kind, quantity"),
    ],
)
def test_an_unreadable_file_is_invalid_argument(content, says):
    assert says in refused(content)


def test_a_huge_number_is_a_row_error_not_a_crash():
    rows, errors = parse_csv(HEADER + b"L1,S1,receipt," + b"9" * 5000 + b",k,\n")
    assert rows == [None]
    assert [(e.row, e.field) for e in errors] == [(1, "quantity")]
