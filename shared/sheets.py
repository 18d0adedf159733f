"""Cells of every file the services write (CSV, XLSX) that survive any stored text.

A unit's name, a caption or a reason is stated by a township and ends up in a spreadsheet
the office opens. Two things must never follow it there:

- **Characters a file format cannot hold.** XLSX (XML 1.0) has no place for NUL and most
  other C0 control characters: openpyxl raises ``IllegalCharacterError``, and one unit's
  name would break the export for everyone. They are replaced with U+FFFD (so a reader
  sees that something was there); DEL and the C1 controls go too. Tab, newline and
  carriage return stay in XLSX, where they are text.
- **Formulas** (CSV injection). A spreadsheet program runs a CSV cell that starts with
  ``= + - @`` (or a tab or carriage return, which some programs skip before one) as a
  formula: such a cell gets a leading ``'``, which the programs show as text. XLSX cells
  are written with the string type, so they are text whatever they start with.

Numbers and booleans are written as they are (``-3`` points is a number, not a formula).
``csv_bytes`` and ``xlsx_bytes`` write a whole table with these rules; every exporter uses
them or ``csv_cell``/``xlsx_cell``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import Any

# C0 controls except tab, LF, CR; DEL; C1 controls. (XML 1.0 also forbids U+FFFE/U+FFFF.)
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
REPLACEMENT = "\ufffd"

Cell = str | int | float | bool | None


def clean_text(text: str) -> str:
    """``text`` without the characters no file format here can hold."""
    return _ILLEGAL.sub(REPLACEMENT, text)


def _plain(value: Any) -> Cell:
    if value is None or isinstance(value, bool | int | float):
        return value  # type: ignore[no-any-return]
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return str(value)


def csv_cell(value: Any) -> Cell:
    """A value as a CSV cell: text cleaned, and a text that a spreadsheet program would run
    as a formula made plain text with a leading ``'``."""
    plain = _plain(value)
    if not isinstance(plain, str):
        return plain
    text = clean_text(plain)
    return "'" + text if text.startswith(_FORMULA_START) else text


def xlsx_cell(value: Any) -> Cell:
    """A value as an XLSX cell's value: text cleaned (``xlsx_bytes`` writes it as a string)."""
    plain = _plain(value)
    return clean_text(plain) if isinstance(plain, str) else plain


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file, UTF-8 with a BOM (so spreadsheet programs read the Chinese)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow(["" if (c := csv_cell(v)) is None else c for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def append_row(sheet: Any, row: Sequence[Any]) -> None:
    """Append a row to an openpyxl worksheet with every text cell typed as a string (never a
    formula, whatever it starts with)."""
    sheet.append([xlsx_cell(v) for v in row])
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"


def xlsx_bytes(sheets: dict[str, tuple[Sequence[str], Iterable[Sequence[Any]]]]) -> bytes:
    """An XLSX workbook: one worksheet per entry (title → header and rows)."""
    from openpyxl import Workbook

    book = Workbook()
    first = True
    for title, (header, rows) in sheets.items():
        sheet = book.active if first else book.create_sheet()
        assert sheet is not None
        sheet.title = sheet_title(title)
        first = False
        append_row(sheet, header)
        for row in rows:
            append_row(sheet, row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def sheet_title(title: str) -> str:
    """A worksheet title Excel accepts: at most 31 characters, none of ``[]:*?/\\``."""
    return re.sub(r"[\[\]:*?/\\]", "-", clean_text(title))[:31] or "sheet"
