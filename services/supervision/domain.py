"""Supervision scoring, pure: score = f(facts, rules). No I/O here.

The rules are data (``services/supervision/rules/*.toml``, parsed by ``RuleSet.parse``): a
list of items, each assessed over a period (month, quarter or year) in one of four modes —

- ``all_or_nothing``: the item's points if a measure reaches its target, else none;
- ``graded``: grade A/B/C/C# (100/66/33/0 % of the points), given by a rating or by a measure's
  thresholds;
- ``deduction``: a deduction per occurrence, down to a floor (督查扣分);
- ``discretionary``: points an inspector sets within the item's range (酌情打分);

plus ``count`` (points per occurrence, up to the item's points) for bonuses. An item may be a
``veto`` (一票否决: the period scores zero) or a ``bonus`` (加分: on top of the maximum, capped).

A month's score assesses the month's items on the month's facts. A quarter's is the mean of
its months' item points plus its own items; a year's the mean of its quarters plus its own
items. Every item says why it has its points and which facts (activity, evidence, inspection
ids) it counted, so a unit that lost points can see where.

The incremental path (a fact changes → rescore the months it touches, then their quarter and
year from the kept month scores) and a full recompute use the same functions, so they agree.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.events import ScoreItem

Granularity = Literal["month", "quarter", "year"]
Mode = Literal["all_or_nothing", "graded", "deduction", "discretionary", "count"]
GRADE_SHARE = {"A": 1.0, "B": 0.66, "C": 0.33, "C#": 0.0}  # 四档: 100/66/33/0 %
MEASURES = (
    "activities_completed",
    "key_projects",
    "evidence_complete",
    "evidence_late",
    "volunteers",
    "service_hours",
    "four_lists_rating",
    "findings",
    "veto_findings",
    "assessment",
)


# ------------------------------------------------------------------------------ periods


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def quarter_of(month: str) -> str:
    year, m = month.split("-")
    return f"{year}-Q{(int(m) - 1) // 3 + 1}"


def months_of(period: str) -> list[str]:
    """The months a period (``2020-06``, ``2020-Q2`` or ``2020``) covers."""
    if len(period) == 4:
        return [f"{period}-{m:02d}" for m in range(1, 13)]
    if "-Q" in period:
        year, q = period.split("-Q")
        return [f"{year}-{m:02d}" for m in range(3 * int(q) - 2, 3 * int(q) + 1)]
    return [period]


def granularity_of(period: str) -> Granularity:
    return "year" if len(period) == 4 else "quarter" if "-Q" in period else "month"


def sub_periods(period: str) -> list[str]:
    """What a quarter (its months) or a year (its quarters) is the mean of."""
    if granularity_of(period) == "year":
        return [f"{period}-Q{q}" for q in range(1, 5)]
    if granularity_of(period) == "quarter":
        return months_of(period)
    return []


def enclosing(month: str) -> list[str]:
    """A month, its quarter and its year: what a change in the month changes."""
    return [month, quarter_of(month), month[:4]]


# ------------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class Unit:
    unit_id: str
    name: str = ""
    kind: str = ""
    township_id: str | None = None


@dataclass(frozen=True)
class Evidence:
    evidence_id: str
    stored_at: datetime
    content_type: str = ""
    reported_at: datetime | None = None  # the township's report time, when the event carries it
    flagged: bool = False  # a fraud signal: counts only once the office accepts it
    review: str | None = None  # the office's latest verdict: "accepted" or "rejected"

    @property
    def counts(self) -> bool:
        return self.review == "accepted" or (self.review is None and not self.flagged)

    @property
    def reported(self) -> datetime:
        """When the unit reported it: the township's time if known, else when it was stored."""
        return self.reported_at or self.stored_at


@dataclass(frozen=True)
class OrderRating:
    """A 四单 rating (1-5 stars) that counts, of an order this activity served."""

    order_id: str
    rating: int
    rated_at: datetime


@dataclass(frozen=True)
class Activity:
    """What supervision knows of an activity: its plan (project) and its completion."""

    activity_id: str
    unit_id: str
    ended_at: datetime | None = None  # None until it is reported completed
    project_id: str | None = None
    volunteers: int = 0
    service_hours: float = 0.0
    evidence: tuple[Evidence, ...] = ()
    # The evidence ids the evidence service counted when it announced the activity's evidence
    # complete against its project's rule; None while it has not.
    complete_with: tuple[str, ...] | None = None
    ratings: tuple[OrderRating, ...] = ()

    @cached_property
    def month(self) -> str | None:
        return month_of(self.ended_at) if self.ended_at else None


@dataclass(frozen=True)
class Project:
    """One key project (重点项目) as far as scoring needs it."""

    project_id: str
    months: tuple[int, ...]
    lead_unit_ids: tuple[str, ...] = ()
    participant_kinds: tuple[str, ...] = ()
    participant_unit_ids: tuple[str, ...] = ()
    min_photos: int = 1
    report_within_days: int = 7

    def due_for(self, unit: Unit) -> bool:
        return (
            unit.unit_id in self.lead_unit_ids
            or unit.unit_id in self.participant_unit_ids
            or unit.kind in self.participant_kinds
        )


@dataclass(frozen=True)
class Finding:
    """One finding of an office inspection, counted against a rule item."""

    rule: str
    note: str = ""
    occurrences: int = 1
    veto: bool = False


@dataclass(frozen=True)
class Inspection:
    """The office inspected a unit (督查): findings, and points it set for discretionary items."""

    inspection_id: str
    unit_id: str
    period: str  # the month it assesses
    inspected_at: datetime
    findings: tuple[Finding, ...] = ()
    assessments: tuple[tuple[str, float], ...] = ()  # (rule item, points)


@dataclass(frozen=True)
class MonthFacts:
    """Everything a unit's month (or, for a quarter's or year's own items, that period) is
    scored on."""

    unit: Unit
    month: str  # the period
    activities: tuple[Activity, ...] = ()  # completed in the month
    inspections: tuple[Inspection, ...] = ()
    projects: tuple[Project, ...] = ()  # the year's key project list


# ------------------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Item:
    id: str
    label: str
    period: Granularity
    points: float
    mode: Mode
    measure: str = "activities_completed"
    target: float = 1  # all_or_nothing
    grades: Mapping[str, float] = field(default_factory=dict)  # graded by a measure: grade -> threshold
    default_grade: str = "C#"  # graded, when there is no rating
    per_occurrence: float = 0  # deduction, count
    floor: float = 0  # deduction: the lowest it goes (may be negative: a deduction from the total)
    free: int = 0  # count: occurrences that earn nothing
    minimum: float = 0  # discretionary range
    default: float = 0  # discretionary, when no inspector set it
    requires_activity: bool = False  # nothing to assess without a completed activity
    veto: bool = False
    bonus: bool = False

    @property
    def max_points(self) -> float:
        return 0.0 if self.bonus or self.veto else max(self.points, 0.0)


@dataclass(frozen=True)
class Thresholds:
    red_list: float  # 红榜: at least this
    black_list: float  # 黑榜: below this
    eligible_annual: float  # civilized-unit eligibility: the year's score at least this
    eligible_three_year: float  # ... and the mean of this year and the two before at least this


@dataclass(frozen=True)
class RuleSet:
    name: str
    version: str
    items: tuple[Item, ...]
    thresholds: Thresholds
    bonus_cap: float
    late_after_days: int  # evidence of an activity outside any project is due within this
    # A period's red and black lists are due this many days after it ends (公布): reports of its
    # activities may still arrive until then, so a month in progress has scores so far, no lists.
    lists_due_days: int = 7

    def at(self, granularity: Granularity) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.period == granularity)

    @classmethod
    def parse(cls, name: str, text: str) -> RuleSet:
        """A rule set from its TOML text. The version is the name plus a hash of the text, so
        a changed file is a new version and every score says which text made it."""
        raw = tomllib.loads(text)
        items = []
        for entry in raw["items"]:
            item = Item(**{k: v for k, v in entry.items()})
            if item.mode not in ("all_or_nothing", "graded", "deduction", "discretionary", "count"):
                raise ValueError(f"{item.id}: unknown mode {item.mode!r}")
            if item.measure not in MEASURES and item.mode != "discretionary":
                raise ValueError(f"{item.id}: unknown measure {item.measure!r}")
            if item.period not in ("month", "quarter", "year"):
                raise ValueError(f"{item.id}: period must be month, quarter or year")
            items.append(item)
        ids = [i.id for i in items]
        if len(ids) != len(set(ids)):
            raise ValueError("rule item ids must be unique")
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return cls(
            name=name,
            version=f"{name}+{digest}",
            items=tuple(items),
            thresholds=Thresholds(**raw["thresholds"]),
            bonus_cap=float(raw.get("bonus_cap", 0)),
            late_after_days=int(raw.get("late_after_days", 7)),
            lists_due_days=int(raw.get("lists_due_days", raw.get("late_after_days", 7))),
        )


# ------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class ItemResult:
    rule: str
    label: str
    points: float
    max_points: float
    reason: str
    facts: tuple[str, ...] = ()  # ids of the activities, evidence, inspections it counted
    bonus: bool = False
    veto: bool = False  # True: this veto item was triggered

    def as_score_item(self) -> ScoreItem:
        return ScoreItem(rule=self.rule, points=self.points, max_points=self.max_points, reason=self.reason)


@dataclass(frozen=True)
class Score:
    unit_id: str
    period: str  # 2020-06, 2020-Q2 or 2020
    score: float
    max_score: float
    bonus: float
    vetoed: bool
    items: tuple[ItemResult, ...]
    rules_version: str

    @property
    def breakdown(self) -> tuple[ScoreItem, ...]:
        return tuple(i.as_score_item() for i in self.items)


# ------------------------------------------------------------------------------ measures


@dataclass(frozen=True)
class Measure:
    value: float | str | None
    facts: tuple[str, ...]
    text: str


def _due_projects(facts: MonthFacts) -> list[tuple[Project, str]]:
    """(project, month) pairs due from the unit in the period."""
    return [
        (p, m)
        for m in months_of(facts.month)
        for p in facts.projects
        if int(m[5:]) in p.months and p.due_for(facts.unit)
    ]


def _requirement(activity: Activity, facts: MonthFacts, rules: RuleSet) -> tuple[int, int]:
    """(photos required, days to report them) for an activity: its project's, else the rules'."""
    for project in facts.projects:
        if project.project_id == activity.project_id:
            return project.min_photos, project.report_within_days
    return 1, rules.late_after_days


def _complete_with(activity: Activity) -> tuple[str, ...] | None:
    """The evidence the evidence service counted when it found the activity's evidence
    complete — unless the office has since rejected a piece of it: then the activity is
    incomplete until the evidence service announces it complete again."""
    if activity.complete_with is None:
        return None
    rejected = {e.evidence_id for e in activity.evidence if e.review == "rejected"}
    return None if rejected & set(activity.complete_with) else activity.complete_with


def evidence_counts_complete(activity: Activity) -> bool:
    """Whether the activity's evidence counts as complete for scoring (图文资料齐全)."""
    return _complete_with(activity) is not None


def measure(name: str, item: Item, facts: MonthFacts, rules: RuleSet) -> Measure:
    acts = sorted(facts.activities, key=lambda a: a.activity_id)
    ids = tuple(a.activity_id for a in acts)
    if name == "activities_completed":
        return Measure(len(acts), ids, f"{len(acts)} activities completed in {facts.month}")
    if name == "key_projects":
        due = _due_projects(facts)
        if not due:
            return Measure(1.0, (), f"no key project due in {facts.month}")
        done = [(p, m) for p, m in due if any(a.project_id == p.project_id and a.month == m for a in acts)]
        used = tuple(a.activity_id for a in acts if a.project_id in {p.project_id for p, _ in done})
        return Measure(
            len(done) / len(due), used, f"{len(done)} of {len(due)} key projects due in {facts.month} done"
        )
    if name == "evidence_complete":
        counted = {a.activity_id: _complete_with(a) for a in acts}
        complete = [a for a in acts if counted[a.activity_id] is not None]
        share = len(complete) / len(acts) if acts else 0.0
        used = tuple(a.activity_id for a in complete) + tuple(
            e for a in complete for e in sorted(counted[a.activity_id] or ())
        )
        return Measure(
            share, used, f"{len(complete)} of {len(acts)} completed activities have their evidence"
        )
    if name == "evidence_late":
        late = []
        for a in acts:
            photos, days = _requirement(a, facts, rules)
            stored = sorted(e.reported for e in a.evidence if e.counts)
            need = max(photos, 1)
            # Evidence not (yet) reported counts as late: otherwise a unit that reports nothing
            # would keep every timeliness point. The deduction goes once it arrives in time.
            if a.ended_at and (len(stored) < need or stored[need - 1] > a.ended_at + timedelta(days=days)):
                late.append(a.activity_id)
        return Measure(len(late), tuple(late), f"{len(late)} activities reported late or not yet")
    if name == "volunteers":
        n = sum(a.volunteers for a in acts)
        return Measure(n, ids, f"{n} volunteer attendances")
    if name == "service_hours":
        hours = round(sum(a.service_hours for a in acts), 1)
        return Measure(hours, ids, f"{hours} service hours")
    if name == "four_lists_rating":
        ratings = sorted((r for a in acts for r in a.ratings), key=lambda r: r.order_id)
        if not ratings:
            return Measure(None, (), "no rated 四单 order")
        mean = round(sum(r.rating for r in ratings) / len(ratings), 2)
        return Measure(
            mean, tuple(r.order_id for r in ratings), f"{len(ratings)} rated orders, mean {mean:g} of 5"
        )
    if name in ("findings", "veto_findings"):
        found = [
            (i.inspection_id, f)
            for i in sorted(facts.inspections, key=lambda i: i.inspection_id)
            for f in i.findings
            if (f.veto if name == "veto_findings" else f.rule == item.id)
        ]
        n = sum(f.occurrences for _, f in found)
        notes = "; ".join(f.note for _, f in found if f.note)
        return Measure(
            n, tuple(dict.fromkeys(i for i, _ in found)), f"{n} findings" + (f": {notes}" if notes else "")
        )
    # assessment: the points the latest inspection set for this item
    set_by = sorted(
        (
            (i.inspected_at, i.inspection_id, p)
            for i in facts.inspections
            for r, p in i.assessments
            if r == item.id
        )
    )
    if not set_by:
        return Measure(None, (), "not assessed")
    _, inspection_id, points = set_by[-1]
    return Measure(points, (inspection_id,), f"set by inspection {inspection_id}")


# ------------------------------------------------------------------------------ modes


def _r(x: float) -> float:
    return round(x + 0.0, 1)


def assess(item: Item, facts: MonthFacts, rules: RuleSet) -> ItemResult:
    """One item of a month: its points, why, and which facts."""
    m = measure("assessment" if item.mode == "discretionary" else item.measure, item, facts, rules)

    def result(points: float, reason: str, veto: bool = False) -> ItemResult:
        return ItemResult(item.id, item.label, _r(points), item.max_points, reason, m.facts, item.bonus, veto)

    if item.requires_activity and not facts.activities:
        return ItemResult(
            item.id, item.label, 0.0, item.max_points, f"no activity completed in {facts.month}"
        )
    if item.veto:
        hit = isinstance(m.value, int | float) and m.value >= item.target
        return result(0.0, f"VETO: {m.text}" if hit else f"no veto: {m.text}", veto=hit)
    if item.mode == "all_or_nothing":
        ok = isinstance(m.value, int | float) and m.value >= item.target
        return result(
            item.points if ok else 0.0, f"{m.text} (needs {item.target:g}): {'met' if ok else 'not met'}"
        )
    if item.mode == "graded":
        if isinstance(m.value, str) or m.value is None:
            grade = m.value if m.value in GRADE_SHARE else item.default_grade
            text = m.text if m.value is not None else f"{m.text}, counted as {grade}"
        else:
            value = m.value
            grade = next(
                (g for g, t in sorted(item.grades.items(), key=lambda gt: -gt[1]) if value >= t), "C#"
            )
            text = m.text
        return result(item.points * GRADE_SHARE[grade], f"grade {grade}: {text}")
    if item.mode == "deduction":
        n = float(m.value) if isinstance(m.value, int | float) else 0.0
        points = max(item.floor, item.points - item.per_occurrence * n)
        return result(points, f"{m.text}, −{item.per_occurrence:g} each (floor {item.floor:g})")
    if item.mode == "count":
        n = float(m.value) if isinstance(m.value, int | float) else 0.0
        points = min(item.points, item.per_occurrence * max(0.0, n - item.free))
        return result(points, f"{m.text}, +{item.per_occurrence:g} each beyond {item.free}")
    # discretionary
    if isinstance(m.value, int | float):
        points = min(item.points, max(item.minimum, float(m.value)))
        return result(points, f"{points:g} in [{item.minimum:g}, {item.points:g}] {m.text}")
    return result(item.default, f"not assessed by an inspector: default {item.default:g}")


def _total(unit_id: str, period: str, items: Sequence[ItemResult], vetoed: bool, rules: RuleSet) -> Score:
    base = sum(i.points for i in items if not i.bonus)
    bonus = _r(min(rules.bonus_cap, sum(i.points for i in items if i.bonus)))
    total = 0.0 if vetoed else _r(max(0.0, base) + bonus)
    return Score(
        unit_id=unit_id,
        period=period,
        score=total,
        max_score=_r(sum(i.max_points for i in items)),
        bonus=0.0 if vetoed else bonus,
        vetoed=vetoed,
        items=tuple(items),
        rules_version=rules.version,
    )


def score_month(facts: MonthFacts, rules: RuleSet) -> Score:
    items = [assess(item, facts, rules) for item in rules.at("month")]
    return _total(facts.unit.unit_id, facts.month, items, any(i.veto for i in items), rules)


def score_aggregate(
    unit_id: str, period: str, parts: Sequence[Score], own: Sequence[ItemResult], rules: RuleSet
) -> Score:
    """A quarter (from its months) or a year (from its quarters): each item of the parts
    counts with the mean of its points, plus the period's own items."""
    by_rule: dict[str, list[ItemResult]] = {}
    for part in parts:
        for item in part.items:
            by_rule.setdefault(item.rule, []).append(item)
    items = []
    for rule, found in by_rule.items():
        points = [i.points for i in found] + [0.0] * (len(parts) - len(found))
        items.append(
            ItemResult(
                rule=rule,
                label=found[0].label,
                points=_r(sum(points) / len(parts)),
                max_points=found[0].max_points,
                reason="mean of "
                + ", ".join(f"{p.period}: {i.points:g}" for p, i in zip(parts, found, strict=False)),
                facts=tuple(dict.fromkeys(f for i in found for f in i.facts)),
                bonus=found[0].bonus,
                veto=any(i.veto for i in found),
            )
        )
    items += own
    vetoed = any(p.vetoed for p in parts) or any(i.veto for i in own)
    return _total(unit_id, period, items, vetoed, rules)


def own_items(granularity: Granularity, facts: MonthFacts, rules: RuleSet) -> list[ItemResult]:
    """A quarter's or year's own items, assessed on the facts of the whole period."""
    return [assess(item, facts, rules) for item in rules.at(granularity)]


# ------------------------------------------------------------------------------ a unit's year


def month_facts(
    unit: Unit,
    period: str,
    activities: Iterable[Activity],
    inspections: Iterable[Inspection] = (),
    projects: Iterable[Project] = (),
) -> MonthFacts:
    """The facts of a period (a month, or a quarter or year for their own items)."""
    months = set(months_of(period))
    return MonthFacts(
        unit=unit,
        month=period,
        activities=tuple(sorted((a for a in activities if a.month in months), key=lambda a: a.activity_id)),
        inspections=tuple(
            sorted((i for i in inspections if i.period in months), key=lambda i: i.inspection_id)
        ),
        projects=tuple(projects),
    )


def rescore(
    touched_months: Iterable[str],
    facts_of: Callable[[str], MonthFacts],
    kept: Mapping[str, Score],
    rules: RuleSet,
) -> dict[str, Score]:
    """The scores that ``touched_months`` change: those months, then their quarters and years
    from the months (kept ones, or new), then the years from the quarters. ``kept`` holds the
    unit's scores so far (a missing month is scored from its facts); ``facts_of(period)``
    gives the facts of a month, quarter or year."""
    new: dict[str, Score] = {}

    def get(period: str) -> Score:
        if period in new:
            return new[period]
        if period in kept and period not in stale:
            return kept[period]
        return compute(period)

    def compute(period: str) -> Score:
        granularity = granularity_of(period)
        if granularity == "month":
            score = score_month(facts_of(period), rules)
        else:
            own = own_items(granularity, facts_of(period), rules) if rules.at(granularity) else []
            parts = [get(p) for p in sub_periods(period)]
            score = score_aggregate(parts[0].unit_id, period, parts, own, rules)
        new[period] = score
        return score

    stale = {p for m in touched_months for p in enclosing(m)}
    for period in sorted(stale, key=lambda p: (len(p) == 4, "-Q" in p, p)):  # months, quarters, years
        if period not in new:
            compute(period)
    return new


def score_year(year: str, facts_of: Callable[[str], MonthFacts], rules: RuleSet) -> dict[str, Score]:
    """Every score of a unit's year, from its facts alone (the full recompute)."""
    return rescore(months_of(year), facts_of, {}, rules)


# ------------------------------------------------------------------------------ what the office reads


CITY_TIME = ZoneInfo("Asia/Shanghai")  # the office's days and months are China Standard Time


def period_end(period: str) -> datetime:
    """The moment a month, quarter or year ends, in the city's time."""
    last = months_of(period)[-1]
    year, month = int(last[:4]), int(last[5:])
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=CITY_TIME)


def lists_due_at(period: str, rules: RuleSet) -> datetime:
    """When the period's 红榜/黑榜 are due: its end plus the rules' ``lists_due_days``."""
    return period_end(period) + timedelta(days=rules.lists_due_days)


def is_due(period: str, now: datetime, rules: RuleSet) -> bool:
    """Whether the period's lists are due at ``now`` (before: a period in progress)."""
    return now >= lists_due_at(period, rules)


def list_of(score: float, thresholds: Thresholds) -> Literal["red", "black"] | None:
    """红榜 at or above the red threshold, 黑榜 below the black one."""
    if score >= thresholds.red_list:
        return "red"
    if score < thresholds.black_list:
        return "black"
    return None


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    annual: float | None
    three_year_mean: float
    reasons: tuple[str, ...]


def eligibility(year: int, annual: Mapping[int, Score], thresholds: Thresholds) -> Eligibility:
    """Civilized-unit eligibility (文明单位测评): the year's score and the mean of this year and
    the two before (a missing year counts as zero), and no veto in the year."""
    this = annual.get(year)
    scores = [annual[y].score if y in annual else 0.0 for y in (year - 2, year - 1, year)]
    mean = _r(sum(scores) / 3)
    reasons = []
    if this is None or this.score < thresholds.eligible_annual:
        reasons.append(f"annual score {this.score if this else 0:g} below {thresholds.eligible_annual:g}")
    if mean < thresholds.eligible_three_year:
        reasons.append(f"three-year mean {mean:g} below {thresholds.eligible_three_year:g}")
    if this is not None and this.vetoed:
        reasons.append("vetoed in the year (一票否决)")
    return Eligibility(not reasons, this.score if this else None, mean, tuple(reasons))


def rank(rows: list[dict[str, Any]], group: str | None = None) -> None:
    """Rank rows (best score first, then unit id) overall, or within each value of ``group``
    (unit kind or township), in place: ``rank`` or ``rank_in_<group>``."""
    ordered = sorted(rows, key=lambda r: (-r["score"], r["unit_id"]))
    counters: dict[Any, int] = {}
    for row in ordered:
        key = row.get(group) if group else None
        counters[key] = counters.get(key, 0) + 1
        row[f"rank_in_{group}" if group else "rank"] = counters[key]
