"""The township guide's facts are the code's: its generated parts (allowed parents, event
types, size limits, scoring rules) match what ``wmsj.guide`` makes from the code now."""

from __future__ import annotations

from services.registry.domain import ALLOWED_PARENTS
from shared.events import ALL_EVENTS
from wmsj.docs import ROOT
from wmsj.guide import GUIDE, allowed_parents, event_types, render


def test_the_guides_generated_parts_match_the_code() -> None:
    text = (ROOT / GUIDE).read_text(encoding="utf-8")
    assert render(text) == text, "the guide is out of date: run python -m wmsj.docs"


def test_the_allowed_parents_table_has_every_kind_and_every_parent() -> None:
    table = allowed_parents()
    for kind, parents in ALLOWED_PARENTS.items():
        [row] = [line for line in table.splitlines() if line.startswith(f"| `{kind.value}` ")]
        cells = row.split(" | ")
        assert {p.value for p in parents if p is not None} == {
            c.strip("`") for c in cells[1].split(", ") if c != "—"
        }


def test_every_event_type_is_in_the_guide() -> None:
    table = event_types()
    assert all(f"| `{event.TYPE}` |" in table for event in ALL_EVENTS)
    assert "| `wmsj.activity.cancelled.v1` | township, office |" in table
