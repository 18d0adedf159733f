"""A generated year of events, scored incrementally (as the service does, event by event)
and by a full recompute: the two must agree. Run as a benchmark:

    .venv/bin/python -m bench.recompute --units 10000

prints the time of a full-year recompute of every unit (pure scoring, in memory).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.supervision.domain import (
    Activity,
    Evidence,
    Finding,
    Inspection,
    MonthFacts,
    OrderRating,
    Project,
    RuleSet,
    Score,
    Unit,
    month_facts,
    months_of,
    rescore,
    score_year,
)

RULES_FILE = Path(__file__).resolve().parents[1] / "services/supervision/rules/notice-2026.toml"
KINDS = ("village", "community", "practice_station", "school", "enterprise")


def default_rules() -> RuleSet:
    return RuleSet.parse("notice-2026", RULES_FILE.read_text(encoding="utf-8"))


@dataclass
class Event:
    """One fact as supervision hears it, with the time it was stated."""

    kind: str  # schedule, completion, evidence, flag, review, complete, rating, inspection
    at: datetime
    unit_id: str
    activity_id: str = ""
    project_id: str | None = None
    ended_at: datetime | None = None
    volunteers: int = 0
    hours: float = 0.0
    evidence: Evidence | None = None
    inspection: Inspection | None = None
    evidence_id: str = ""  # flag, review
    verdict: str = ""  # review: accepted or rejected
    evidence_ids: tuple[str, ...] = ()  # complete: what the evidence service counted
    order_id: str = ""  # rating
    rating: int | None = None  # rating: None when it stops counting


def generate_year(
    units: int, year: int = 2020, seed: int = 5
) -> tuple[list[Unit], list[Project], list[Event]]:
    """A year for ``units`` units: 0-3 activities a month each (some months none), evidence
    on time, late or missing, flagged and reviewed, announced complete or not, 四单 ratings
    (some restated, some withdrawn), corrected reports that move an activity to another
    month, inspections with findings, assessments and the odd veto; in a shuffled order."""
    rng = random.Random(seed)
    unit_list = [
        Unit(f"u{n:05d}", f"unit {n}", KINDS[n % len(KINDS)], f"t{n % 20:02d}") for n in range(units)
    ]
    projects = [
        Project("P1", tuple(range(1, 13)), participant_kinds=("village", "community")),
        Project("P2", (3, 6, 9, 12), participant_kinds=("school",), min_photos=2, report_within_days=5),
    ]
    events: list[Event] = []
    for unit in unit_list:
        for month in range(1, 13):
            for k in range(rng.choice((0, 1, 1, 2, 2, 3, 5))):
                aid = f"{unit.unit_id}-{month:02d}-{k}"
                ended = datetime(year, month, rng.randint(1, 28), 10, tzinfo=UTC)
                project = rng.choice((None, "P1", "P2"))
                events.append(
                    Event("schedule", ended - timedelta(days=3), unit.unit_id, aid, project_id=project)
                )
                events.append(
                    Event(
                        "completion",
                        ended,
                        unit.unit_id,
                        aid,
                        ended_at=ended,
                        volunteers=rng.randint(0, 15),
                        hours=rng.choice((0, 8, 40, 400)),
                    )
                )
                if rng.random() < 0.1:  # a corrected report, stated later, moves it a month on
                    moved = ended + timedelta(days=31) if month < 12 else ended - timedelta(days=31)
                    events.append(
                        Event(
                            "completion",
                            ended + timedelta(days=40),
                            unit.unit_id,
                            aid,
                            ended_at=moved,
                            volunteers=3,
                            hours=6,
                        )
                    )
                photos = []
                for e in range(rng.choice((0, 1, 2, 2))):
                    stored = ended + timedelta(days=rng.choice((0, 1, 3, 9, 20)))
                    reported = stored - timedelta(days=rng.choice((0, 0, 5)))  # some stored long after
                    evidence = Evidence(f"{aid}-e{e}", stored, "image/png", reported_at=reported)
                    photos.append(evidence.evidence_id)
                    events.append(Event("evidence", stored, unit.unit_id, aid, evidence=evidence))
                    if rng.random() < 0.15:  # a fraud signal, and perhaps the office's verdict(s)
                        events.append(
                            Event("flag", stored, unit.unit_id, aid, evidence_id=evidence.evidence_id)
                        )
                        for r in range(rng.choice((0, 1, 1, 2))):
                            events.append(
                                Event(
                                    "review",
                                    stored + timedelta(days=2 + r),
                                    unit.unit_id,
                                    aid,
                                    evidence_id=evidence.evidence_id,
                                    verdict=rng.choice(("accepted", "rejected")),
                                )
                            )
                if photos and rng.random() < 0.8:  # the evidence service found it complete
                    done = ended + timedelta(days=rng.choice((1, 10, 21)))
                    counted = tuple(rng.sample(photos, rng.randint(1, len(photos))))
                    events.append(Event("complete", done, unit.unit_id, aid, evidence_ids=counted))
                for o in range(rng.choice((0, 0, 0, 1, 2))):  # 四单 orders this activity served
                    rated = ended + timedelta(days=rng.randint(1, 5))
                    order = f"{aid}-o{o}"
                    events.append(
                        Event("rating", rated, unit.unit_id, aid, order_id=order, rating=rng.randint(1, 5))
                    )
                    if rng.random() < 0.2:  # restated: a new figure, or no longer counting
                        again = rng.choice((None, rng.randint(1, 5)))
                        events.append(
                            Event(
                                "rating",
                                rated + timedelta(days=1),
                                unit.unit_id,
                                aid,
                                order_id=order,
                                rating=again,
                            )
                        )
            if rng.random() < 0.08:
                at = datetime(year, month, 28, tzinfo=UTC)
                findings = (
                    Finding("inspection_findings", "台账不全", rng.randint(1, 5), veto=rng.random() < 0.05),
                )
                assessments = (("office_assessment", float(rng.randint(0, 5))),) if month == 12 else ()
                inspection = Inspection(
                    f"i-{unit.unit_id}-{month}",
                    unit.unit_id,
                    f"{year}-{month:02d}",
                    at,
                    findings,
                    assessments,
                )
                events.append(Event("inspection", at, unit.unit_id, inspection=inspection))
    rng.shuffle(events)
    return unit_list, projects, events


Stated = tuple[datetime, str]


@dataclass
class UnitState:
    unit: Unit
    activities: dict[str, Activity] = field(default_factory=dict)
    stated: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (activity, part) -> time
    inspections: dict[str, Inspection] = field(default_factory=dict)
    scores: dict[str, Score] = field(default_factory=dict)
    # What the service keeps beside the activity, applied to it when scored.
    flagged: set[str] = field(default_factory=set)
    reviews: dict[str, tuple[Stated, str]] = field(default_factory=dict)  # evidence -> latest verdict
    complete: dict[str, tuple[datetime, tuple[str, ...]]] = field(default_factory=dict)
    # activity -> order -> the latest statement of its rating
    ratings: dict[str, dict[str, tuple[Stated, OrderRating | None]]] = field(
        default_factory=lambda: defaultdict(dict)
    )

    def activity(self, a: Activity) -> Activity:
        return replace(
            a,
            evidence=tuple(
                replace(
                    e,
                    flagged=e.evidence_id in self.flagged,
                    review=self.reviews[e.evidence_id][1] if e.evidence_id in self.reviews else None,
                )
                for e in a.evidence
            ),
            complete_with=self.complete[a.activity_id][1] if a.activity_id in self.complete else None,
            ratings=tuple(
                r for _, (_, r) in sorted(self.ratings.get(a.activity_id, {}).items()) if r is not None
            ),
        )

    def facts_of(self, projects: list[Project]):  # type: ignore[no-untyped-def]
        completed = [self.activity(a) for a in self.activities.values() if a.ended_at]
        inspections = list(self.inspections.values())

        def of(month: str) -> MonthFacts:
            return month_facts(self.unit, month, completed, inspections, projects)

        return of


def apply(state: UnitState, event: Event) -> set[str]:
    """Keep the fact (latest statement wins); the months whose scores it may change — the
    same rule the service applies (app.record_fact)."""
    if event.kind == "inspection":
        assert event.inspection
        state.inspections[event.inspection.inspection_id] = event.inspection
        return {event.inspection.period}
    before = state.activities.get(event.activity_id) or Activity(event.activity_id, event.unit_id)
    after = before
    if event.kind == "flag":
        state.flagged.add(event.evidence_id)
    elif event.kind == "review":
        stated = (event.at, event.verdict)
        if event.evidence_id not in state.reviews or state.reviews[event.evidence_id][0] < stated:
            state.reviews[event.evidence_id] = (stated, event.verdict)
    elif event.kind == "complete":
        if event.activity_id not in state.complete or state.complete[event.activity_id][0] < event.at:
            state.complete[event.activity_id] = (event.at, event.evidence_ids)
    elif event.kind == "rating":
        orders = state.ratings[event.activity_id]
        stated = (event.at, str(event.rating))
        if event.order_id not in orders or orders[event.order_id][0] < stated:
            rating = OrderRating(event.order_id, event.rating, event.at) if event.rating else None
            orders[event.order_id] = (stated, rating)
    elif event.kind == "evidence":
        assert event.evidence
        if event.evidence not in before.evidence:
            after = replace(
                before,
                evidence=tuple(sorted((*before.evidence, event.evidence), key=lambda e: e.evidence_id)),
            )
    elif state.stated.get((event.activity_id, event.kind), datetime.min.replace(tzinfo=UTC)) < event.at:
        state.stated[(event.activity_id, event.kind)] = event.at
        if event.kind == "schedule":
            after = replace(before, project_id=event.project_id)
        else:
            after = replace(
                before, ended_at=event.ended_at, volunteers=event.volunteers, service_hours=event.hours
            )
    state.activities[event.activity_id] = after
    return {m for m in (before.month, after.month) if m}


def incremental(
    units: list[Unit], projects: list[Project], events: list[Event], rules: RuleSet
) -> dict[str, UnitState]:
    states = {u.unit_id: UnitState(u) for u in units}
    for event in events:
        state = states[event.unit_id]
        touched = apply(state, event)
        if touched:
            state.scores.update(rescore(sorted(touched), state.facts_of(projects), state.scores, rules))
    return states


def full_recompute(
    states: dict[str, UnitState], projects: list[Project], year: str, rules: RuleSet
) -> dict[str, dict[str, Score]]:
    return {unit_id: score_year(year, s.facts_of(projects), rules) for unit_id, s in states.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=10_000)
    args = parser.parse_args()
    rules = default_rules()
    started = time.perf_counter()
    units, projects, events = generate_year(args.units)
    generated = time.perf_counter()
    states: dict[str, UnitState] = defaultdict()
    states = {u.unit_id: UnitState(u) for u in units}
    for event in events:  # facts only: the recompute below is what is timed
        apply(states[event.unit_id], event)
    loaded = time.perf_counter()
    scores = full_recompute(states, projects, "2020", rules)
    done = time.perf_counter()
    count = sum(len(s) for s in scores.values())
    print(
        f"{args.units} units, {len(events)} events generated in {generated - started:.1f} s, facts kept in {loaded - generated:.1f} s"
    )
    print(
        f"full-year recompute: {count} scores (months, quarters, years) in {done - loaded:.2f} s "
        f"({(done - loaded) / args.units * 1000:.2f} ms per unit) with rules {rules.version}"
    )
    assert months_of("2020")


if __name__ == "__main__":
    main()
