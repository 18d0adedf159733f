"""Every file the services write survives any stored text and runs no formula
(``shared.sheets``): control characters are replaced, CSV cells that a spreadsheet program
would run are made text, XLSX cells are strings."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook

from shared.sheets import REPLACEMENT, clean_text, csv_bytes, csv_cell, sheet_title, xlsx_bytes, xlsx_cell

HOSTILE = [
    '=HYPERLINK("http://evil.example/","点我")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    "名\x00字",
    "\x07\x1b[31m红\x7f\x85",
    "\ufffe",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_csv_cell_is_never_a_formula_nor_holds_a_control_character(text: str) -> None:
    cell = csv_cell(text)
    assert isinstance(cell, str)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert not any(c in cell for c in "\x00\x07\x1b\x7f\x85\ufffe")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (-3, -3),
        (2.5, 2.5),
        (True, True),
        (None, None),
        (["t1", "t2"], "t1;t2"),
        ("平安村", "平安村"),
        ("a\nb\tc", "a\nb\tc"),
        ("=1+1", "'=1+1"),
        ("-", "'-"),
        ("名\x00字", f"名{REPLACEMENT}字"),
    ],
)
def test_csv_cells(value: object, cell: object) -> None:
    assert csv_cell(value) == cell


def test_an_xlsx_cell_keeps_its_text_without_what_xml_cannot_hold() -> None:
    assert xlsx_cell("=1+1") == "=1+1"  # written as a string: see below
    assert xlsx_cell("a\x00b\x0bc\td\ne") == f"a{REPLACEMENT}b{REPLACEMENT}c\td\ne"
    assert xlsx_cell(-3) == -3
    assert clean_text("正常的名字") == "正常的名字"


def test_a_whole_csv_reads_back_as_text() -> None:
    data = csv_bytes(["unit_id", "name", "score"], [["u1", text, -1.5] for text in HOSTILE])
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["unit_id", "name", "score"]
    assert all(r[1][0] not in "=+-@\t\r" and r[2] == "-1.5" for r in rows[1:])


def test_a_whole_workbook_opens_and_every_text_is_a_string() -> None:
    data = xlsx_bytes({"units [1/2]: *?": (["unit_id", "name", "score"], [["u1", t, -1] for t in HOSTILE])})
    book = load_workbook(io.BytesIO(data))
    sheet = book.active
    assert sheet is not None and sheet.title == "units -1-2-- --"
    for row in sheet.iter_rows(min_row=2):
        name, score = row[1], row[2]
        assert name.data_type == "s" and isinstance(name.value, str)
        assert (score.data_type, score.value) == ("n", -1)
    formulas = [c.value for row in sheet.iter_rows(min_row=2) for c in row if c.data_type == "f"]
    assert formulas == []


def test_a_sheet_title_excel_accepts() -> None:
    assert sheet_title("x" * 40) == "x" * 31
    assert sheet_title("\x00") == REPLACEMENT
    assert sheet_title("") == "sheet"
