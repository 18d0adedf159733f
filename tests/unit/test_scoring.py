"""Supervision scoring: activity every month (60), evidence for it (30), volunteers taking part (10)."""

from __future__ import annotations

from services.supervision.domain import RULES_VERSION, CompletedActivity, MonthlyScore, score_month


def activity(n: int = 1, volunteers: int = 10, evidence: int = 1) -> CompletedActivity:
    return CompletedActivity(activity_id=f"a{n}", volunteers=volunteers, evidence_count=evidence)


def points(score: MonthlyScore) -> dict[str, float]:
    return {item.rule: item.points for item in score.breakdown}


def reasons(score: MonthlyScore) -> dict[str, str]:
    return {item.rule: item.reason for item in score.breakdown}


def test_a_month_without_activity_scores_zero_with_all_three_rules_listed():
    score = score_month("u1", "2020-06", [])
    assert score.score == 0.0
    assert score.max_score == 100.0
    assert points(score) == {"monthly_activity": 0.0, "evidence": 0.0, "participation": 0.0}
    assert len(score.breakdown) == 3


def test_one_activity_with_evidence_and_ten_volunteers_scores_full_marks():
    score = score_month("u1", "2020-06", [activity(volunteers=10)])
    assert score.score == 100.0
    assert points(score) == {"monthly_activity": 60.0, "evidence": 30.0, "participation": 10.0}


def test_more_than_ten_volunteers_earns_no_more_than_full_participation():
    assert points(score_month("u1", "2020-06", [activity(volunteers=40)]))["participation"] == 10.0


def test_evidence_points_are_proportional_to_the_activities_with_evidence():
    score = score_month("u1", "2020-06", [activity(1, evidence=2), activity(2, evidence=0)])
    assert points(score)["evidence"] == 15.0


def test_participation_scales_with_the_volunteers():
    score = score_month("u1", "2020-06", [activity(volunteers=5)])
    assert points(score)["participation"] == 5.0
    assert score.score == 95.0


def test_volunteers_of_all_activities_count_together():
    score = score_month("u1", "2020-06", [activity(1, volunteers=3), activity(2, volunteers=4)])
    assert points(score)["participation"] == 7.0


def test_the_points_are_rounded_to_one_decimal():
    activities = [activity(1), activity(2, evidence=0), activity(3, evidence=0)]
    assert points(score_month("u1", "2020-06", activities))["evidence"] == 10.0
    assert score_month("u1", "2020-06", activities).score == 80.0


def test_the_reasons_give_the_counts():
    score = score_month("u1", "2020-06", [activity(1, volunteers=3), activity(2, volunteers=4, evidence=0)])
    assert reasons(score) == {
        "monthly_activity": "2 activities completed in 2020-06",
        "evidence": "1 of 2 completed activities have stored evidence",
        "participation": "7 volunteer attendances (full points from 10)",
    }


def test_an_empty_month_says_so():
    assert reasons(score_month("u1", "2020-06", []))["monthly_activity"] == "no activity completed in 2020-06"


def test_the_score_names_its_unit_period_and_rules():
    score = score_month("u1", "2020-06", [])
    assert (score.unit_id, score.period, score.rules_version) == ("u1", "2020-06", RULES_VERSION)


def test_every_rule_scores_within_its_maximum():
    score = score_month("u1", "2020-06", [activity(n, volunteers=99, evidence=5) for n in range(7)])
    assert all(0 <= item.points <= item.max_points for item in score.breakdown)
    assert score.score == sum(item.max_points for item in score.breakdown) == score.max_score


def test_the_same_facts_give_the_same_score():
    facts = [activity(1, volunteers=7), activity(2, volunteers=2, evidence=0)]
    assert score_month("u1", "2020-06", facts) == score_month("u1", "2020-06", list(facts))


def test_the_order_of_the_activities_does_not_matter():
    facts = [activity(1, volunteers=7), activity(2, volunteers=2, evidence=0)]
    assert score_month("u1", "2020-06", facts) == score_month("u1", "2020-06", facts[::-1])
