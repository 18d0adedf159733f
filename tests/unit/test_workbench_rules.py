"""The workbench's pure rules: when a period's lists are due, the monthly warning cut per
township, spreadsheet cells that are never formulas, session cookies, the project list sheet."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from openpyxl import Workbook

from services.activities.domain.months import warnings_by_township
from services.supervision.domain import RuleSet, is_due, lists_due_at
from services.supervision.office import PROJECT_COLUMNS, ProjectListError, parse_project_list
from services.supervision.session import Sessions
from services.supervision.settings import RULES_DIR
from shared.auth import Caller
from shared.sheets import csv_cell

RULES = RuleSet.parse("notice-2026", (RULES_DIR / "notice-2026.toml").read_text(encoding="utf-8"))


def test_a_months_lists_are_due_days_after_it_ends_in_city_time() -> None:
    assert RULES.lists_due_days == 7
    due = lists_due_at("2026-05", RULES)
    assert due == datetime(2026, 6, 7, 16, 0, tzinfo=UTC)  # 2026-06-08 00:00 in Shanghai
    assert not is_due("2026-05", datetime(2026, 6, 7, 15, 59, tzinfo=UTC), RULES)
    assert is_due("2026-05", due, RULES)
    assert lists_due_at("2026-Q4", RULES) == lists_due_at("2026", RULES) == lists_due_at("2026-12", RULES)


def test_the_monthly_warning_is_cut_per_township() -> None:
    units = [("a", "t1"), ("t1", "t1"), ("b", "t2"), ("c", "t1"), ("city-dept", None)]
    assert warnings_by_township(units, ["a", "b", "city-dept"]) == {"t1": (["a"], 3), "t2": (["b"], 1)}
    assert warnings_by_township(units, []) == {"t1": ([], 3), "t2": ([], 1)}


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_csv_cell_that_would_be_a_formula_is_neutralised(text: str) -> None:
    assert csv_cell(text) == "'" + text
    assert csv_cell("禾青镇第一村") == "禾青镇第一村" and csv_cell(-1.5) == -1.5
    assert csv_cell("a\x00b") == "a\ufffdb"


def test_a_session_cookie_names_its_key_without_holding_it_and_expires() -> None:
    sessions = Sessions({"secret-key": Caller("township", "t1")})
    cookie = sessions.cookie_for("secret-key", now=1000.0)
    assert "secret-key" not in cookie
    assert sessions.caller_of_cookie(cookie, now=1001.0) == Caller("township", "t1")
    assert sessions.caller_of_cookie(cookie, now=1000.0 + 9 * 3600) is None  # expired
    fingerprint, expires, mac = cookie.split(".")
    assert sessions.caller_of_cookie(f"{fingerprint}.{int(expires) + 9999}.{mac}", now=1001.0) is None
    assert Sessions({"other": Caller("office")}).caller_of_cookie(cookie, now=1001.0) is None  # key withdrawn


def sheet(*rows: list[object]) -> bytes:
    book = Workbook()
    active = book.active
    assert active is not None
    active.append([h for h, _ in PROJECT_COLUMNS])
    for row in rows:
        active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_the_project_list_sheet_is_read_or_every_error_is_named() -> None:
    [project] = parse_project_list(sheet(["P1", "关爱留守儿童", "3,6，9", "", "village", "", 2, "否", 5, 10]))
    assert project.months == [3, 6, 9] and project.participant_kinds == ["village"]
    assert project.evidence.min_photos == 2 and not project.evidence.text_report
    with pytest.raises(ProjectListError) as refused:
        parse_project_list(
            sheet(["P1", "", "13", "", "", "", 1, "是", 7, 0], ["P2", "x", "a-b", "", "", "", 1, "", 7, 0])
        )
    where = [e["location"] for e in refused.value.errors]
    assert any(w.startswith("第 2 行") for w in where) and any(w.startswith("第 3 行") for w in where)
    with pytest.raises(ProjectListError):
        parse_project_list(b"not a spreadsheet")


def test_a_townships_to_do_names_what_is_missing_and_both_sides_of_a_flagged_pair() -> None:
    from datetime import timedelta

    from services.supervision.domain import Activity, Evidence
    from services.supervision.todo import FlaggedPair, township_todo

    ended = datetime(2026, 5, 10, tzinfo=UTC)
    photo = Evidence("e-copy", ended, "image/png", ended + timedelta(days=9), flagged=True)
    activity = Activity("a1", "v1", ended_at=ended, evidence=(photo,))
    units = {"v1": {"name": "一村", "kind": "village"}, "v2": {"name": "二村", "kind": "village"}}
    pair = FlaggedPair("e-copy", "v1", "a1", None, "e-original", "v2", "a2")
    todo = township_todo(units, [activity], [pair], {}, RULES, ended + timedelta(days=30))
    assert [u["unit_id"] for u in todo["without_activity"]] == ["v2"]
    assert todo["incomplete_evidence"][0]["missing"] == [
        "还差 1 张照片",
        "缺文字报告",
    ]  # the flagged photo does not count
    assert [(f["unit_id"], f["evidence_id"]) for f in todo["flagged_evidence"]] == [
        ("v1", "e-copy"),
        ("v2", "e-original"),
    ]
    assert [a["activity_id"] for a in todo["late_reports"]] == ["a1"]
    settled = FlaggedPair("e-copy", "v1", "a1", "accepted", "e-original", "v2", "a2")
    assert township_todo(units, [activity], [settled], {}, RULES, ended)["flagged_evidence"] == []
