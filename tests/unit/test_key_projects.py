"""The key project list: versions kept, activities pointing at the version they were planned
under, and an activity checked against its project (flags, not refusals)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.activities.domain.projects import (
    ListVersion,
    RefusedList,
    apply_list,
    check_plan,
    planned_under,
)
from shared.events import KeyProject, ProjectListPublished, UnitKind

JAN = datetime(2020, 1, 5, tzinfo=UTC)
JUNE_ACTIVITY = datetime(2020, 6, 12, 2, 0, tzinfo=UTC)


def project_list(version: int, months: list[int], theme: str = "理论宣讲") -> ProjectListPublished:
    return ProjectListPublished(
        year=2020,
        version=version,
        projects=[
            KeyProject(
                project_id="2020-P01",
                theme=theme,
                months=months,
                participant_kinds=[UnitKind.VILLAGE],
                lead_unit_ids=["centre"],
                points=5,
            )
        ],
    )


def versions() -> list[ListVersion]:
    v1 = apply_list([], project_list(1, [6]), JAN)
    assert v1 is not None
    v2 = apply_list([v1], project_list(2, [7], theme="修订"), JAN + timedelta(days=90))
    assert v2 is not None
    return [v1, v2]


def test_each_version_is_kept_and_a_repeat_changes_nothing() -> None:
    v1, v2 = versions()
    assert (v1.version, v2.version) == (1, 2)
    assert apply_list([v1, v2], project_list(1, [6]), JAN + timedelta(days=200)) is None


def test_a_version_restated_with_other_content_is_refused() -> None:
    with pytest.raises(RefusedList, match="a revision needs a new version number"):
        apply_list(versions(), project_list(1, [6, 7]), JAN + timedelta(days=1))


def test_an_activity_points_at_the_version_it_was_planned_under() -> None:
    vs = versions()
    assert planned_under(vs, 2020, JAN + timedelta(days=10)).version == 1  # type: ignore[union-attr]
    assert planned_under(vs, 2020, JAN + timedelta(days=100)).version == 2  # type: ignore[union-attr]
    assert planned_under(vs, 2020, JAN - timedelta(days=3)).version == 1  # before any list: the first
    assert planned_under(vs, 2021, JAN) is None


def test_planned_under_version_1_a_june_activity_is_in_order() -> None:
    plan = check_plan(versions(), "village-1", "village", "2020-P01", JUNE_ACTIVITY, JAN + timedelta(days=10))
    assert (plan.list_version, plan.theme, plan.points, plan.flags) == (1, "理论宣讲", 5, ())


def test_the_revision_does_not_change_an_activity_planned_before_it_but_flags_one_planned_after() -> None:
    after = check_plan(
        versions(), "village-1", "village", "2020-P01", JUNE_ACTIVITY, JAN + timedelta(days=100)
    )
    assert after.list_version == 2
    assert after.flags == ("project 2020-P01 runs in months [7], not in 6",)


def test_an_unknown_project_a_missing_list_and_a_non_participant_are_flagged() -> None:
    vs = versions()
    assert check_plan(vs, "v", "village", "2020-P99", JUNE_ACTIVITY, JAN).flags == (
        "project 2020-P99 is not in version 1 of the 2020 list",
    )
    assert check_plan([], "v", "village", "2020-P01", JUNE_ACTIVITY, JAN).flags == (
        "no key project list for 2020",
    )
    assert check_plan(vs, "school-1", "school", "2020-P01", JUNE_ACTIVITY, JAN).flags == (
        "unit school-1 is not among the lead or participating units of 2020-P01",
    )
    assert check_plan(vs, "centre", "practice_centre", "2020-P01", JUNE_ACTIVITY, JAN).flags == ()  # the lead
