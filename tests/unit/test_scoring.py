"""Supervision scoring, pure: every mode, threshold, veto and bonus of the rule model, the
default rules, periods, rankings, lists and eligibility."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bench.recompute import RULES_FILE, default_rules
from services.supervision.domain import (
    Activity,
    Evidence,
    Finding,
    Inspection,
    Item,
    MonthFacts,
    OrderRating,
    Project,
    RuleSet,
    Score,
    Thresholds,
    Unit,
    assess,
    eligibility,
    list_of,
    month_facts,
    rank,
    score_month,
    score_year,
)

UNIT = Unit("u1", "禾青镇第一村", "village", "t1")
ENDED = datetime(2020, 6, 12, 10, tzinfo=UTC)
RULES = default_rules()
RULES_ITEMS = {i.id: i for i in RULES.items}
THRESHOLDS = RULES.thresholds


def act(
    n: int = 1,
    volunteers: int = 10,
    photos: int = 1,
    delay_days: float = 0,
    project: str | None = None,
    complete: bool | None = None,
    ratings: tuple[int, ...] = (),
) -> Activity:
    """An activity of June; its evidence announced complete by the evidence service when it
    has a photo, unless ``complete`` says otherwise."""
    stored = ENDED + timedelta(days=delay_days)
    evidence = tuple(Evidence(f"a{n}-e{k}", stored) for k in range(photos))
    return Activity(
        f"a{n}",
        "u1",
        ENDED,
        project,
        volunteers,
        8.0,
        evidence,
        tuple(e.evidence_id for e in evidence) if (photos > 0 if complete is None else complete) else None,
        tuple(OrderRating(f"o{n}-{k}", r, ENDED + timedelta(days=1)) for k, r in enumerate(ratings)),
    )


def june(
    *activities: Activity,
    inspections: tuple[Inspection, ...] = (),
    projects: tuple[Project, ...] = (),
) -> MonthFacts:
    return MonthFacts(UNIT, "2020-06", activities, inspections, projects)


def inspection(*findings: Finding, assessments: tuple[tuple[str, float], ...] = (), n: int = 1) -> Inspection:
    return Inspection(f"i{n}", "u1", "2020-06", ENDED + timedelta(days=n), findings, assessments)


def item(**fields: object) -> Item:
    base: dict[str, object] = {
        "id": "x",
        "label": "x",
        "period": "month",
        "points": 10,
        "mode": "all_or_nothing",
    }
    return Item(**{**base, **fields})  # type: ignore[arg-type]


def points(score: Score) -> dict[str, float]:
    return {i.rule: i.points for i in score.items}


# ------------------------------------------------------------------ the four modes (and count)


def test_all_or_nothing_gives_all_points_at_the_target_and_none_below() -> None:
    rule = item(measure="activities_completed", target=2)
    assert assess(rule, june(act(1), act(2)), RULES).points == 10
    assert assess(rule, june(act(1)), RULES).points == 0
    assert "not met" in assess(rule, june(act(1)), RULES).reason


@pytest.mark.parametrize(
    ("volunteers", "grade", "expected"), [(12, "A", 10), (6, "B", 6.6), (2, "C", 3.3), (0, "C#", 0)]
)
def test_graded_by_thresholds_gives_100_66_33_0_percent(volunteers: int, grade: str, expected: float) -> None:
    rule = item(mode="graded", measure="volunteers", grades={"A": 10, "B": 5, "C": 1})
    result = assess(rule, june(act(volunteers=volunteers)), RULES)
    assert result.points == expected and result.reason.startswith(f"grade {grade}:")


@pytest.mark.parametrize(
    ("stars", "grade", "expected"),
    [((5, 4), "A", 10), ((4, 3, 3), "B", 6.6), ((2, 3), "C", 3.3), ((1, 2), "C#", 0)],
)
def test_four_lists_are_graded_by_the_mean_rating_of_the_months_orders(
    stars: tuple[int, ...], grade: str, expected: float
) -> None:
    month = june(act(1, ratings=stars[:1]), act(2, ratings=stars[1:]))
    result = assess(RULES_ITEMS["four_lists"], month, RULES)
    assert result.points == expected and result.reason.startswith(f"grade {grade}:")
    assert len(result.facts) == len(stars) and f"{len(stars)} rated orders" in result.reason


def test_graded_without_a_rating_uses_the_default_grade() -> None:
    assert (
        assess(item(mode="graded", measure="four_lists_rating", default_grade="B"), june(act()), RULES).points
        == 6.6
    )


def test_a_month_without_a_rated_order_keeps_the_four_lists_points_by_the_default_rules() -> None:
    result = assess(RULES_ITEMS["four_lists"], june(act()), RULES)
    assert result.points == 10 and "no rated 四单 order" in result.reason


def test_deduction_per_occurrence_stops_at_the_floor() -> None:
    rule = item(
        id="inspection_findings", mode="deduction", measure="findings", points=0, per_occurrence=5, floor=-12
    )
    one = inspection(Finding("inspection_findings", "台账不全"))
    assert assess(rule, june(act(), inspections=(one,)), RULES).points == -5
    three = inspection(Finding("inspection_findings", "台账不全", occurrences=3))
    result = assess(rule, june(act(), inspections=(three,)), RULES)
    assert result.points == -12 and result.facts == ("i1",) and "台账不全" in result.reason


def test_deduction_counts_only_findings_against_its_own_item() -> None:
    rule = item(
        id="inspection_findings", mode="deduction", measure="findings", points=0, per_occurrence=5, floor=-20
    )
    other = inspection(Finding("something_else"))
    assert assess(rule, june(act(), inspections=(other,)), RULES).points == 0


def test_discretionary_takes_the_inspectors_points_clamped_to_the_range_or_the_default() -> None:
    rule = item(id="office_assessment", mode="discretionary", points=5, minimum=1, default=2)
    assert assess(rule, june(act()), RULES).points == 2  # not assessed
    assert (
        assess(
            rule, june(act(), inspections=(inspection(assessments=(("office_assessment", 4),)),)), RULES
        ).points
        == 4
    )
    assert (
        assess(
            rule, june(act(), inspections=(inspection(assessments=(("office_assessment", 9),)),)), RULES
        ).points
        == 5
    )
    later = inspection(assessments=(("office_assessment", 3),), n=2)
    both = (inspection(assessments=(("office_assessment", 4),)), later)
    assert assess(rule, june(act(), inspections=both), RULES).points == 3  # the latest inspection's


def test_count_gives_points_per_occurrence_beyond_the_free_ones_up_to_its_points() -> None:
    rule = item(mode="count", measure="activities_completed", per_occurrence=1, free=4, points=3)
    assert assess(rule, june(*(act(n) for n in range(4))), RULES).points == 0
    assert assess(rule, june(*(act(n) for n in range(6))), RULES).points == 2
    assert assess(rule, june(*(act(n) for n in range(20))), RULES).points == 3


def test_an_item_that_requires_activity_scores_nothing_in_an_empty_month() -> None:
    rule = item(mode="deduction", measure="evidence_late", per_occurrence=5, requires_activity=True)
    assert assess(rule, june(), RULES).points == 0
    assert assess(rule, june(act()), RULES).points == 10


# ------------------------------------------------------------------ veto and bonus


def test_a_veto_finding_zeroes_the_month_its_quarter_and_its_year() -> None:
    facts = june(act(), inspections=(inspection(Finding("serious_violation", "虚报活动", veto=True)),))
    score = score_month(facts, RULES)
    assert score.vetoed and score.score == 0
    assert next(i for i in score.items if i.rule == "serious_violation").reason.startswith("VETO")
    year = score_year("2020", lambda m: facts if m == "2020-06" else month_facts(UNIT, m, []), RULES)
    assert year["2020-Q2"].vetoed and year["2020"].vetoed and year["2020"].score == 0
    assert not year["2020-Q1"].vetoed


def test_without_a_veto_finding_nothing_is_vetoed() -> None:
    assert not score_month(june(act()), RULES).vetoed


def test_bonus_points_come_on_top_of_the_maximum_up_to_the_cap() -> None:
    six = june(*(act(n) for n in range(6)))
    score = score_month(six, RULES)
    assert score.max_score == 100 and score.bonus == 2 and score.score == 102
    capped = RuleSet.parse("capped", RULES_TEXT.replace("bonus_cap = 5", "bonus_cap = 1"))
    assert score_month(six, capped).score == 101


def test_bonus_items_do_not_count_in_the_maximum() -> None:
    assert all(i.max_points == 0 for i in score_month(june(act()), RULES).items if i.bonus)


# ------------------------------------------------------------------ the default rules


def test_a_month_with_one_good_activity_scores_full_marks_with_every_item_explained() -> None:
    score = score_month(june(act()), RULES)
    assert score.score == 100 and score.max_score == 100 and score.rules_version == RULES.version
    assert points(score)["monthly_activity"] == 30 and points(score)["evidence"] == 20
    assert all(i.reason for i in score.items)
    assert "a1-e0" in next(i for i in score.items if i.rule == "evidence").facts


def test_an_empty_month_scores_zero() -> None:
    assert score_month(june(), RULES).score == 0


def test_evidence_stored_after_the_deadline_is_late() -> None:
    late = score_month(june(act(delay_days=9)), RULES)
    assert points(late)["evidence_timely"] == 5 and late.score == 95
    assert points(score_month(june(act(delay_days=6)), RULES))["evidence_timely"] == 10


def test_evidence_never_reported_is_late_too() -> None:
    # A unit that reports nothing must not keep the timeliness points.
    silent = score_month(june(act(photos=0)), RULES)
    assert points(silent)["evidence_timely"] == 5 and points(silent)["evidence"] == 0


def test_a_project_sets_the_photos_and_the_days_its_activities_need_in_time() -> None:
    project = Project("P1", (6,), participant_kinds=("village",), min_photos=2, report_within_days=3)
    one_photo = score_month(june(act(project="P1", photos=1, complete=False), projects=(project,)), RULES)
    assert points(one_photo)["evidence"] == 0 and points(one_photo)["key_projects"] == 20
    assert points(one_photo)["evidence_timely"] == 5  # the second photo is missing
    slow = score_month(june(act(project="P1", photos=2, delay_days=4), projects=(project,)), RULES)
    assert points(slow)["evidence_timely"] == 5 and points(slow)["evidence"] == 20


def test_evidence_counts_as_complete_only_once_the_evidence_service_says_so() -> None:
    photos_but_not_complete = score_month(june(act(photos=3, complete=False)), RULES)
    assert points(photos_but_not_complete)["evidence"] == 0
    item = next(i for i in score_month(june(act(photos=2)), RULES).items if i.rule == "evidence")
    assert item.points == 20 and item.facts == ("a1", "a1-e0", "a1-e1")


def test_evidence_the_office_rejected_undoes_the_completeness_it_was_counted_in() -> None:
    complete = act(photos=2)
    rejected = replace(
        complete, evidence=(complete.evidence[0], replace(complete.evidence[1], review="rejected"))
    )
    assert points(score_month(june(rejected), RULES))["evidence"] == 0
    accepted = replace(complete, evidence=tuple(replace(e, review="accepted") for e in complete.evidence))
    assert points(score_month(june(accepted), RULES))["evidence"] == 20


def test_flagged_evidence_is_not_reported_in_time_until_the_office_accepts_it() -> None:
    on_time = act(photos=1)
    flagged = replace(on_time, evidence=(replace(on_time.evidence[0], flagged=True),))
    assert points(score_month(june(flagged), RULES))["evidence_timely"] == 5
    accepted = replace(flagged, evidence=(replace(flagged.evidence[0], review="accepted"),))
    assert points(score_month(june(accepted), RULES))["evidence_timely"] == 10
    rejected = replace(on_time, evidence=(replace(on_time.evidence[0], review="rejected"),))
    assert points(score_month(june(rejected), RULES))["evidence_timely"] == 5


def test_timeliness_uses_the_townships_report_time_when_known() -> None:
    stored_late = act(delay_days=30)
    reported = replace(stored_late, evidence=(replace(stored_late.evidence[0], reported_at=ENDED),))
    assert points(score_month(june(stored_late), RULES))["evidence_timely"] == 5
    assert points(score_month(june(reported), RULES))["evidence_timely"] == 10


def test_a_key_project_due_and_not_done_costs_its_points() -> None:
    due = (Project("P1", (6,), participant_kinds=("village",)), Project("P2", (6,), lead_unit_ids=("u1",)))
    score = score_month(june(act(project="P1"), projects=due), RULES)
    assert points(score)["key_projects"] == 6.6  # 1 of 2 = 0.5: grade C = 33 %
    assert points(score_month(june(act(project="P1"), projects=due[:1]), RULES))["key_projects"] == 20


def test_a_quarter_is_the_mean_of_its_months() -> None:
    year = score_year("2020", lambda m: june(act()) if m == "2020-06" else month_facts(UNIT, m, []), RULES)
    assert year["2020-06"].score == 100 and year["2020-Q2"].score == 33.3 and year["2020"].score == 8.3
    assert "2020-06: 30" in next(i for i in year["2020-Q2"].items if i.rule == "monthly_activity").reason


def test_the_year_has_its_own_items() -> None:
    year = score_year("2020", lambda m: month_facts(UNIT, m, []), RULES)
    assert {i.rule for i in year["2020"].items} >= {"office_assessment", "service_hours_year"}
    assert "office_assessment" not in {i.rule for i in year["2020-06"].items}


# ------------------------------------------------------------------ rules as versioned data

RULES_TEXT = RULES_FILE.read_text(encoding="utf-8")


def test_the_version_is_the_name_and_a_hash_of_the_text() -> None:
    assert RuleSet.parse("notice-2026", RULES_TEXT).version == RULES.version
    assert RuleSet.parse("notice-2026", RULES_TEXT + "\n# edited\n").version != RULES.version
    assert RULES.version.startswith("notice-2026+")


def test_a_changed_rule_changes_the_score() -> None:
    heavier = RuleSet.parse("x", RULES_TEXT.replace("points = 30", "points = 50", 1))
    assert score_month(june(act()), heavier).max_score == 120


@pytest.mark.parametrize(
    "bad",
    ['mode = "all_or_nothing"\nmeasure = "nope"', 'mode = "sometimes"', 'period = "week"\nmode = "count"'],
)
def test_a_broken_rules_file_is_refused(bad: str) -> None:
    text = RULES_TEXT + f'\n[[items]]\nid = "bad"\nlabel = "bad"\npoints = 1\n{bad}\n'
    if "period" not in bad:
        text = text.replace('id = "bad"', 'id = "bad"\nperiod = "month"')
    with pytest.raises(ValueError):
        RuleSet.parse("bad", text)


# ------------------------------------------------------------------ thresholds, rankings, eligibility


@pytest.mark.parametrize(
    ("score", "expected"),
    [(100, "red"), (90, "red"), (89.9, None), (60, None), (59.9, "black"), (0, "black")],
)
def test_red_and_black_lists_at_the_thresholds(score: float, expected: str | None) -> None:
    assert (
        list_of(score, Thresholds(red_list=90, black_list=60, eligible_annual=80, eligible_three_year=75))
        == expected
    )


def annual(score: float, vetoed: bool = False) -> Score:
    return Score("u1", "2020", score, 100, 0, vetoed, (), "v")


def test_eligible_with_a_good_year_and_a_good_three_year_mean() -> None:
    result = eligibility(2020, {2018: annual(80), 2019: annual(70), 2020: annual(85)}, THRESHOLDS)
    assert result.eligible and result.three_year_mean == 78.3


def test_not_eligible_below_the_annual_threshold() -> None:
    result = eligibility(2020, {2018: annual(99), 2019: annual(99), 2020: annual(79.9)}, THRESHOLDS)
    assert not result.eligible and "annual score 79.9 below 80" in result.reasons


def test_not_eligible_below_the_three_year_mean_a_missing_year_counting_zero() -> None:
    result = eligibility(2020, {2019: annual(100), 2020: annual(100)}, THRESHOLDS)
    assert not result.eligible and result.three_year_mean == 66.7


def test_a_vetoed_year_is_not_eligible() -> None:
    assert not eligibility(
        2020, {y: annual(100, vetoed=(y == 2020)) for y in (2018, 2019, 2020)}, THRESHOLDS
    ).eligible


def test_rankings_overall_within_a_kind_and_within_a_township() -> None:
    rows = [
        {"unit_id": "a", "score": 90, "kind": "village", "township_id": "t1"},
        {"unit_id": "b", "score": 95, "kind": "school", "township_id": "t1"},
        {"unit_id": "c", "score": 80, "kind": "village", "township_id": "t2"},
        {"unit_id": "d", "score": 90, "kind": "village", "township_id": "t2"},
    ]
    rank(rows)
    rank(rows, "kind")
    rank(rows, "township_id")
    by = {r["unit_id"]: (r["rank"], r["rank_in_kind"], r["rank_in_township_id"]) for r in rows}
    assert by == {"b": (1, 1, 1), "a": (2, 1, 2), "d": (3, 2, 1), "c": (4, 3, 2)}


def test_the_same_facts_in_any_order_give_the_same_score() -> None:
    a = (act(1, volunteers=3), act(2, volunteers=4, photos=0))
    assert score_month(june(*a), RULES) == score_month(june(*a[::-1]), RULES)
