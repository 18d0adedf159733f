"""Spreadsheet files the office opens: CSV and XLSX that survive any stored text.

A unit's name is a township's text. A spreadsheet program runs a cell that starts with
``= + - @`` (or a tab or CR before one) as a formula, so such a CSV cell gets a leading
apostrophe, and every XLSX text cell is written as text (never a formula). Control
characters openpyxl cannot store are dropped, so one bad name cannot break the office's
export. The cell rules are shared.sheets' (every service's files follow them); this module
adds the office's layout: bold frozen header, filter, widths.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import TYPE_STRING
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from shared.sheets import csv_bytes as csv_bytes  # UTF-8 with a BOM, formulas neutralised
from shared.sheets import sheet_title, xlsx_cell


def _width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(c) > 0x2E7F else 1 for c in text)  # a CJK character is two columns wide


def add_sheet(
    book: Workbook,
    title: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    first: bool = False,
) -> Worksheet:
    """A sheet with a bold, frozen header row, an auto-filter and fitted column widths;
    text written as text."""
    sheet = book.active if first else book.create_sheet()
    assert isinstance(sheet, Worksheet)
    sheet.title = sheet_title(title)
    widths = [_width(h) for h in header]
    sheet.append([xlsx_cell(h) for h in header])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for r, row in enumerate(rows, start=2):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(row=r, column=c)
            cell.value = xlsx_cell(value)
            if isinstance(cell.value, str):
                cell.data_type = TYPE_STRING  # never a formula, whatever it starts with
            if c <= len(widths):
                widths[c - 1] = max(widths[c - 1], _width(cell.value))
    for c, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(c)].width = min(max(width + 2, 6), 60)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = sheet.dimensions
    return sheet


def xlsx_bytes(book: Workbook) -> bytes:
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()
