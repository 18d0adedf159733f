"""Spreadsheets in and out (CSV and XLSX): offices keep their units and volunteers in Excel.

Row numbers are the spreadsheet's (the header is row 1); columns are the header's names, the
same as the event fields (``unit_id``, ``name``, ``kind``…). Lists (``team_ids``) are
separated by ``;``. Every problem is reported as (row, column, reason) and never repeats a
cell's value: a volunteer sheet holds ID-card numbers and phones.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, TypeVar

from openpyxl import load_workbook
from pydantic import BaseModel, ValidationError

from shared.events.units import UnitRegisteredV2, VolunteerRegistered
from shared.sheets import csv_bytes, xlsx_bytes

M = TypeVar("M", bound=BaseModel)

UNIT_COLUMNS = [
    "unit_id",
    "name",
    "kind",
    "parent_id",
    "township_id",
    "category",
    "title_held_since",
    "title_review_due",
    "active",
]
VOLUNTEER_COLUMNS = ["volunteer_id", "name", "id_card", "phone", "unit_id", "team_ids", "active"]
_LISTS = {"team_ids"}
_TRUE = {"1", "true", "yes", "y", "是", "t"}
_FALSE = {"0", "false", "no", "n", "否", "f"}


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    reason: str


class BadSheet(ValueError):
    """The file as a whole cannot be read (not CSV/XLSX, no header…)."""


def read_rows(content: bytes, filename: str) -> list[tuple[int, dict[str, str]]]:
    """(row number, {column: text}) for every non-empty row."""
    if filename.lower().endswith((".xlsx", ".xlsm")):
        try:
            book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        except Exception as error:
            raise BadSheet(f"not a readable XLSX file: {type(error).__name__}") from error
        sheet = book.worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))
        book.close()
        table = [[_cell(v) for v in row] for row in rows]
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise BadSheet("a CSV file must be UTF-8") from error
        table = list(csv.reader(io.StringIO(text)))
    if not table:
        raise BadSheet("the file is empty: the first row must name the columns")
    header = [h.strip() for h in table[0]]
    out = []
    for number, values in enumerate(table[1:], start=2):
        row = {h: (v or "").strip() for h, v in zip(header, values, strict=False) if h}
        if any(row.values()):
            out.append((number, row))
    return out


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat())[:10]
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_fields(row: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for column, text in row.items():
        if text == "":
            continue
        if column in _LISTS:
            fields[column] = [p.strip() for p in text.replace(",", ";").split(";") if p.strip()]
        elif column == "active":
            low = text.lower()
            fields[column] = True if low in _TRUE else False if low in _FALSE else text
        else:
            fields[column] = text
    return fields


def parse_row(model: type[M], number: int, row: dict[str, str]) -> M | list[RowError]:
    try:
        return model.model_validate(_to_fields(row))
    except ValidationError as error:
        return [
            RowError(
                row=number,
                column=str(e["loc"][0]) if e["loc"] else "(row)",
                # pydantic's message, never its input: a cell may hold personal data
                reason=e["msg"] if e["type"] != "extra_forbidden" else "unknown column",
            )
            for e in error.errors(include_url=False, include_input=False)
        ]


def parse_units(content: bytes, filename: str) -> tuple[list[tuple[int, UnitRegisteredV2]], list[RowError]]:
    return _parse(UnitRegisteredV2, content, filename)


def parse_volunteers(
    content: bytes, filename: str
) -> tuple[list[tuple[int, VolunteerRegistered]], list[RowError]]:
    return _parse(VolunteerRegistered, content, filename)


def _parse(model: type[M], content: bytes, filename: str) -> tuple[list[tuple[int, M]], list[RowError]]:
    good: list[tuple[int, M]] = []
    errors: list[RowError] = []
    for number, row in read_rows(content, filename):
        parsed = parse_row(model, number, row)
        if isinstance(parsed, list):
            errors += parsed
        else:
            good.append((number, parsed))
    return good, errors


def write_table(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> bytes:
    """A CSV (UTF-8 with BOM, so Excel reads the Chinese) or XLSX file of ``rows``, with cells
    that survive any stored text and run no formula (``shared.sheets``)."""
    table = [[row.get(c) for c in columns] for row in rows]
    if fmt == "xlsx":
        return xlsx_bytes({"Sheet": (columns, table)})
    return csv_bytes(columns, table)
