"""The yearly key project list (重点项目清单), pure: versions, and activities checked against it.

The office publishes a year's list and revises it with higher versions. Every version is
kept: an activity points at the version it was planned under — the latest version the office
had published (by event time) when the activity's schedule was stated — so a revision never
changes what an already-planned activity was measured against. An activity planned before
any list of its year was published points at the year's first version.

Refused: a version re-published with different content (a revision needs a new version
number). Flagged, not refused, on the activity: a project that is not in the list it was
planned under, a month the project does not run in, a unit that is neither a lead nor a
participant. The list and the activities come from different senders and arrive in any
order, and ``wmsj.activity.scheduled.v1`` is accepted as before (supervision counts it), so
the check is made where the list is known — when the calendar is read — and shown there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events import CITY_TZ, KeyProject, ProjectListPublished


@dataclass(frozen=True)
class ListVersion:
    year: int
    version: int
    published_at: datetime  # the office's event time
    content: str  # canonical content of the list
    projects: tuple[KeyProject, ...]

    def project(self, project_id: str) -> KeyProject | None:
        return next((p for p in self.projects if p.project_id == project_id), None)


class RefusedList(ValueError):
    pass


def apply_list(
    versions: list[ListVersion], data: ProjectListPublished, stated_at: datetime
) -> ListVersion | None:
    """The new version to store, or None when this version is already known."""
    content = data.model_dump_json()
    for known in versions:
        if (known.year, known.version) == (data.year, data.version):
            if known.content != content:
                raise RefusedList(
                    f"version {data.version} of the {data.year} key project list was already published "
                    "with different content: a revision needs a new version number"
                )
            return None
    return ListVersion(
        year=data.year,
        version=data.version,
        published_at=stated_at,
        content=content,
        projects=tuple(data.projects),
    )


def planned_under(versions: list[ListVersion], year: int, planned_at: datetime) -> ListVersion | None:
    """The version of ``year``'s list an activity planned at ``planned_at`` points at."""
    of_year = sorted((v for v in versions if v.year == year), key=lambda v: v.version)
    if not of_year:
        return None
    known_then = [v for v in of_year if v.published_at <= planned_at]
    return known_then[-1] if known_then else of_year[0]


@dataclass(frozen=True)
class PlanCheck:
    list_version: int | None
    theme: str | None
    points: float | None
    flags: tuple[str, ...]


def check_plan(
    versions: list[ListVersion],
    unit_id: str,
    unit_kind: str | None,
    project_id: str | None,
    starts_at: datetime,
    planned_at: datetime,
) -> PlanCheck:
    """How an activity stands against the list it was planned under (flags, never refusals)."""
    local = starts_at.astimezone(CITY_TZ)
    if project_id is None:
        return PlanCheck(None, None, None, ("no key project named",))
    version = planned_under(versions, local.year, planned_at)
    if version is None:
        return PlanCheck(None, None, None, (f"no key project list for {local.year}",))
    project = version.project(project_id)
    if project is None:
        return PlanCheck(
            version.version,
            None,
            None,
            (f"project {project_id} is not in version {version.version} of the {local.year} list",),
        )
    flags = []
    if local.month not in project.months:
        flags.append(f"project {project_id} runs in months {project.months}, not in {local.month}")
    named = bool(project.lead_unit_ids or project.participant_unit_ids or project.participant_kinds)
    takes_part = (
        unit_id in project.lead_unit_ids
        or unit_id in project.participant_unit_ids
        or (unit_kind is not None and unit_kind in project.participant_kinds)
    )
    if named and not takes_part:
        flags.append(f"unit {unit_id} is not among the lead or participating units of {project_id}")
    return PlanCheck(version.version, project.theme, project.points, tuple(flags))
