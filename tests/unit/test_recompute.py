"""On a generated year for 1,000 units, the scores kept after each event (incremental, as
the service rescores) equal a full recompute from the final facts."""

from __future__ import annotations

import pytest

from bench.recompute import default_rules, full_recompute, generate_year, incremental


# 120 units in the fast tier; the full 1,000 (≈70 s) with the rest of the suite.
@pytest.mark.parametrize("size", [pytest.param(120), pytest.param(1000, marks=pytest.mark.slow)])
def test_incremental_scores_equal_a_full_recompute_for_a_generated_year(size: int) -> None:
    rules = default_rules()
    units, projects, events = generate_year(size)
    assert len(events) > 50 * size
    assert {e.kind for e in events} >= {"flag", "review", "complete", "rating"}
    states = incremental(units, projects, events, rules)
    full = full_recompute(states, projects, "2020", rules)
    mismatched = [
        (unit_id, period)
        for unit_id, scores in full.items()
        for period, score in scores.items()
        if states[unit_id].scores.get(
            period, score if not states[unit_id].activities and not states[unit_id].inspections else None
        )
        != score
    ]
    assert mismatched == []
    # The year is not trivial: scores spread, some vetoed, bonuses, and late evidence.
    annual = [s["2020"] for s in full.values()]
    assert len({s.score for s in annual}) > 50
    assert any(s.vetoed for s in annual) and any(s.bonus > 0 for s in annual)
    items = [i for s in full.values() for m in s.values() for i in m.items]
    assert any(i.rule == "evidence_timely" and i.points < i.max_points for i in items)
    # ... and evidence not (yet) complete, and 四单 ratings of every grade.
    assert any(i.rule == "evidence" and 0 < i.points < i.max_points for i in items)
    assert {i.points for i in items if i.rule == "four_lists"} >= {10, 6.6, 3.3, 0}
