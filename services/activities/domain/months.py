"""Months (城市时间), pure: which activities fall in a month, and the monthly early warning.

An activity belongs to the month its (latest) schedule starts in; one completed before its
schedule is known, to the month it ended in. The early warning (月月有活动) names every known
unit — known from the registry's accepted ``unit.registered`` facts — that has nothing
scheduled (and not cancelled) or completed in the month.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.activities.domain.lifecycle import Activity
from shared.events import CITY_TZ, period_of


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a YYYY-MM month in city time."""
    year, month = int(period[:4]), int(period[5:7])
    start = datetime(year, month, 1, tzinfo=CITY_TZ)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=CITY_TZ)
    return start, end


def period_of_activity(activity: Activity) -> str | None:
    if activity.schedule is not None:
        return period_of(activity.schedule.starts_at)
    if activity.completion is not None:
        return period_of(activity.completion.ended_at)
    return None


def in_month(activity: Activity, period: str) -> bool:
    if period_of_activity(activity) == period:
        return True
    # Completed in the month although scheduled in another (it overran, or was reported late).
    return (
        activity.status == "completed"
        and activity.completion is not None
        and period_of(activity.completion.ended_at) == period
    )


def units_without_activity(unit_ids: Iterable[str], activities: Iterable[Activity], period: str) -> list[str]:
    """The units with nothing scheduled or completed in ``period``, sorted."""
    active = {a.unit_id for a in activities if a.counts and in_month(a, period)}
    return sorted(set(unit_ids) - active)


def warnings_by_township(
    units: Iterable[tuple[str, str | None]], missing: Iterable[str]
) -> dict[str, tuple[list[str], int]]:
    """The monthly warning cut per township: ``units`` are (unit id, owning township or None
    for city level); for each township, its units without activity and how many it has.
    A township with every unit active gets an empty list (its to-do is done)."""
    lacking = set(missing)
    out: dict[str, tuple[list[str], int]] = {}
    for unit_id, township in sorted(units, key=lambda u: u[0]):
        if township is None:
            continue
        ids, known = out.get(township, ([], 0))
        out[township] = ([*ids, unit_id] if unit_id in lacking else ids, known + 1)
    return out
