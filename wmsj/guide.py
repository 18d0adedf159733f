"""The parts of docs/township-integration.md that are facts of the code, generated from it so
that the guide cannot drift: the allowed parents of each unit kind, the event types and who
publishes them, the evidence size limits, the scoring rules and what each costs.

Each part sits in the guide between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``;
``python -m wmsj.docs`` rewrites them, ``--check`` fails when one differs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from shared.events import ALL_EVENTS, UnitKind

GUIDE = Path("docs/township-integration.md")

KIND_NAMES = {  # the notice's words for each kind
    "city": "市 (city)",
    "township": "乡 (township)",
    "town": "镇 (town)",
    "street": "街道 (street)",
    "village": "村 (village)",
    "community": "社区 (community)",
    "department": "市直单位 (department)",
    "enterprise": "企业 (enterprise)",
    "school": "学校 (school)",
    "institution": "事业单位 (institution)",
    "practice_centre": "新时代文明实践中心 (practice centre)",
    "practice_institute": "文明实践所 (practice institute)",
    "practice_station": "文明实践站 (practice station)",
    "general_team": "志愿服务总队 (general team)",
    "brigade": "大队 (brigade)",
    "squad": "分队 (squad)",
}


def allowed_parents() -> str:
    from services.registry.domain import ALLOWED_PARENTS, TEAMS, TOWNSHIP_LEVEL

    lines = [
        "| kind (`kind`) | its parent may be | may be a root | its township |",
        "| --- | --- | --- | --- |",
    ]
    for kind in UnitKind:
        parents = ALLOWED_PARENTS[kind]
        named = ", ".join(f"`{p.value}`" for p in UnitKind if p in parents) or "—"
        if kind in TOWNSHIP_LEVEL:
            township = "itself"
        elif None in parents and len(parents) == 1:
            township = "none (city level)"
        elif kind in TEAMS:
            township = "its parent's; under a city-level team, the `township_id` it states"
        else:
            township = "its parent's (none at city level)"
        root = "yes" if None in parents else "no: states `parent_id`"
        lines.append(f"| `{kind.value}` {KIND_NAMES[kind.value]} | {named} | {root} | {township} |")
    return "\n".join(lines)


def event_types() -> str:
    who = {
        "township": "township, office",
        "office": "office only",
        "platform": "the platform",
    }
    lines = ["| type | who publishes it | what it says | schema |", "| --- | --- | --- | --- |"]
    order = {"township": 0, "office": 1, "platform": 2}
    for event in sorted(ALL_EVENTS, key=lambda e: (order[e.PUBLISHED_BY], e.TYPE)):
        data = event.model_fields["data"].annotation
        doc = ((getattr(data, "__doc__", None) or "").strip().split("\n\n")[0]).replace("\n", " ")
        doc = re.sub(r"\s+", " ", doc).replace("|", "\\|").replace("``", "`")
        lines.append(
            f"| `{event.TYPE}` | {who[event.PUBLISHED_BY]} | {doc} | [schema](schemas/{event.TYPE}.json) |"
        )
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n // 2**30} GiB" if n >= 2**30 else f"{n // 2**20} MiB"


def size_limits() -> str:
    from services.evidence.domain import MAX_SIZE

    lines = ["| `content_type` | at most |", "| --- | --- |"]
    lines += [f"| `{t}` | {_size(n)} ({n} bytes) |" for t, n in MAX_SIZE.items()]
    return "\n".join(lines)


# What each measure of the rules counts, in the integrator's words (a KeyError here: a new
# measure needs its words).
MEASURE_WORDS = {
    "activities_completed": "activities of the unit completed (wmsj.activity.completed.v1) in the month",
    "key_projects": "the share of the key projects (重点项目) due from the unit in the month that it completed "
    "an activity of (`project_id`) in that month; none due counts as all done",
    "evidence_complete": "the share of the month's completed activities whose required evidence is all stored",
    "evidence_late": "completed activities whose evidence came late or not yet: fewer stored photos than "
    "required, or the last required one reported after the deadline",
    "volunteers": "volunteer attendances at the unit's activities completed in the month",
    "service_hours": "volunteer service hours credited in the year",
    "four_lists_rating": "the mean stars (1–5) of the orders (四单) the unit's activities served",
    "findings": "problems found by the office's inspections (督查)",
    "veto_findings": "serious violations found by an inspection",
    "assessment": "the points the office's inspection set",
}


def _how(item: object) -> str:
    from services.supervision.domain import GRADE_SHARE, Item

    assert isinstance(item, Item)
    what = MEASURE_WORDS[item.measure]
    if item.veto:
        return f"veto: the month scores 0 (一票否决) when there is one ({what})"
    match item.mode:
        case "all_or_nothing":
            return f"all or nothing: at least {item.target:g} ({what})"
        case "graded":
            grades = ", ".join(f"{g} at least {v:g}" for g, v in item.grades.items())
            shares = ", ".join(f"{g} {share:.0%}" for g, share in GRADE_SHARE.items())
            return f"graded by {what}: {grades}; points: {shares} (C# below C)"
        case "deduction":
            return f"−{item.per_occurrence:g} for each ({what}), down to {item.floor:g}"
        case "count":
            return (
                f"bonus: +{item.per_occurrence:g} for each beyond {item.free} ({what}), up to {item.points:g}"
            )
        case _:
            return f"set by the office's inspection (督查), {item.minimum:g}–{item.points:g} (default {item.default:g})"


def scoring_rules() -> str:
    from services.supervision.domain import RuleSet

    path = Path(__file__).resolve().parent.parent / "services/supervision/rules/notice-2026.toml"
    rules = RuleSet.parse("notice-2026", path.read_text(encoding="utf-8"))
    lines = ["| rule id | item | period | points | how |", "| --- | --- | --- | --- | --- |"]
    for item in rules.items:
        lines.append(f"| `{item.id}` | {item.label} | {item.period} | {item.points:g} | {_how(item)} |")
    t = rules.thresholds
    lines.append("")
    lines.append(
        f"Bonuses add at most {rules.bonus_cap:g} per period. 红榜 (red list): a score of at least "
        f"{t.red_list:g}; 黑榜 (black list): below {t.black_list:g}. Evidence of an activity outside "
        f"any key project is late {rules.late_after_days} days after the activity ends."
    )
    return "\n".join(lines)


SECTIONS: dict[str, Callable[[], str]] = {
    "allowed-parents": allowed_parents,
    "event-types": event_types,
    "size-limits": size_limits,
    "scoring-rules": scoring_rules,
}


def render(text: str) -> str:
    """The guide's text with every generated part rewritten from the code."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- /generated:{name} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{GUIDE}: the markers of generated:{name} are missing")
        body = make() + "\n"
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), text)  # type: ignore[misc]
    return text
