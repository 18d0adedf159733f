"""The 四单 workflow: 点单 → 派单 → 接单 (or decline) → the activity runs → 评单; escalation of
orders nobody accepts in time; and arrival order not mattering."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from services.activities.domain.orders import (
    CountedRating,
    Order,
    add_statement,
    counted_rating,
    due_escalation,
    view,
)
from shared.events import Data
from shared.events.activities import (
    OrderAnswered,
    OrderDispatched,
    OrderEscalated,
    OrderPlaced,
    OrderRated,
)

T0 = datetime(2020, 6, 3, 1, 0, tzinfo=UTC)
WITHIN = timedelta(hours=48)
# station -> institute -> centre (the unit tree as the registry states it)
PARENTS = {"station-1": "institute-1", "institute-1": "centre", "centre": None}


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


PLACED = OrderPlaced(
    order_id="o1",
    requester_id="resident-7",
    requester_kind="resident",
    unit_id="institute-1",
    need="老人助餐",
)


def dispatched(by: str = "institute-1", team: str = "team-a") -> OrderDispatched:
    return OrderDispatched(order_id="o1", dispatcher_id=by, team_id=team)


def answered(team: str = "team-a", accepted: bool = True) -> OrderAnswered:
    return OrderAnswered(
        order_id="o1", team_id=team, accepted=accepted, activity_id="act-1" if accepted else None
    )


def rated(by: str = "resident-7", rating: int = 5) -> OrderRated:
    return OrderRated(order_id="o1", requester_id=by, rating=rating, comment="很满意")


def build(*steps: tuple[str, Data, datetime]) -> Order:
    order: Order | None = None
    for kind, data, at in steps:
        order = add_statement(order, "o1", kind, data, at) or order  # type: ignore[arg-type]
    assert order is not None
    return order


def test_an_order_is_placed_with_the_unit_it_was_ordered_from() -> None:
    v = view(build(("placed", PLACED, h(0))), WITHIN)
    assert (v.status, v.handler_id, v.requester_id, v.requester_kind) == (
        "placed",
        "institute-1",
        "resident-7",
        "resident",
    )
    assert v.accept_due_at == h(48)


def test_a_village_can_order_too() -> None:
    by_village = OrderPlaced(
        order_id="o1",
        requester_id="village-3",
        requester_kind="village",
        unit_id="station-1",
        need="移风易俗宣讲",
    )
    assert view(build(("placed", by_village, h(0))), WITHIN).status == "placed"


def test_the_holder_dispatches_to_a_team() -> None:
    v = view(build(("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1))), WITHIN)
    assert (v.status, v.team_id) == ("dispatched", "team-a")


def test_a_dispatch_by_a_unit_that_does_not_hold_the_order_changes_nothing() -> None:
    v = view(build(("placed", PLACED, h(0)), ("dispatched", dispatched(by="centre"), h(1))), WITHIN)
    assert v.status == "placed"
    assert v.ignored == (("dispatched", h(1), "the order is with institute-1, not centre"),)


def test_the_team_accepts_and_names_the_activity() -> None:
    v = view(
        build(("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1)), ("answered", answered(), h(2))),
        WITHIN,
    )
    assert (v.status, v.activity_id, v.accept_due_at) == ("accepted", "act-1", None)


def test_the_team_declines_and_the_order_can_be_dispatched_again() -> None:
    order = build(
        ("placed", PLACED, h(0)),
        ("dispatched", dispatched(), h(1)),
        ("answered", answered(accepted=False), h(2)),
    )
    v = view(order, WITHIN)
    assert (v.status, v.team_id, v.declined_by) == ("declined", None, ("team-a",))
    assert v.accept_due_at == h(48)  # declining does not stop the clock
    v = view(build(*_steps(order), ("dispatched", dispatched(team="team-b"), h(3))), WITHIN)
    assert (v.status, v.team_id) == ("dispatched", "team-b")


def test_an_answer_from_another_team_changes_nothing() -> None:
    v = view(
        build(
            ("placed", PLACED, h(0)),
            ("dispatched", dispatched(), h(1)),
            ("answered", answered(team="team-x"), h(2)),
        ),
        WITHIN,
    )
    assert v.status == "dispatched"
    assert v.ignored[0][2] == "the order was dispatched to team-a, not team-x"


def test_once_its_activity_is_completed_the_order_is_done_and_the_requester_rates_it() -> None:
    order = build(
        ("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1)), ("answered", answered(), h(2))
    )
    assert view(order, WITHIN, activity_completed=True).status == "done"
    rated_order = build(*_steps(order), ("rated", rated(), h(100)))
    v = view(rated_order, WITHIN, activity_completed=True)
    assert (v.status, v.rating, v.comment) == ("rated", 5, "很满意")


def test_a_rating_before_the_activity_is_completed_waits_for_it() -> None:
    order = build(
        ("placed", PLACED, h(0)),
        ("dispatched", dispatched(), h(1)),
        ("answered", answered(), h(2)),
        ("rated", rated(), h(9)),
    )
    assert view(order, WITHIN, activity_completed=False).status == "accepted"
    assert view(order, WITHIN, activity_completed=True).status == "rated"


def test_only_the_requester_rates() -> None:
    order = build(
        ("placed", PLACED, h(0)),
        ("dispatched", dispatched(), h(1)),
        ("answered", answered(), h(2)),
        ("rated", rated(by="someone-else"), h(9)),
    )
    v = view(order, WITHIN, activity_completed=True)
    assert v.status == "done" and v.rating is None
    assert v.ignored[0][2] == "only the requester resident-7 rates the order, not someone-else"


# ----------------------------------------------------------------------------- escalation


def escalate(order: Order, now: datetime) -> Order:
    """What the service's timer does: record every escalation due at ``now``."""
    level = len(view(order, WITHIN).escalations)
    while (due := due_escalation(order, WITHIN, PARENTS.get, now)) is not None:
        level += 1
        data = OrderEscalated(
            order_id="o1", from_unit_id=due.from_unit_id, to_unit_id=due.to_unit_id, level=level
        )
        order = add_statement(order, "o1", "escalated", data, due.at) or order
    return order


def test_an_order_is_not_escalated_before_its_deadline() -> None:
    order = build(("placed", PLACED, h(0)))
    assert due_escalation(order, WITHIN, PARENTS.get, h(47.9)) is None


def test_an_order_nobody_accepts_in_time_escalates_to_the_level_above() -> None:
    order = escalate(build(("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1))), h(50))
    v = view(order, WITHIN)
    assert (v.status, v.handler_id, v.team_id) == ("escalated", "centre", None)
    assert [(e.from_unit_id, e.to_unit_id, e.at) for e in v.escalations] == [("institute-1", "centre", h(48))]
    assert v.accept_due_at == h(96)  # the new level gets its own time


def test_the_level_above_can_then_dispatch_and_its_team_accept() -> None:
    order = escalate(build(("placed", PLACED, h(0))), h(50))
    order = build(*_steps(order), ("dispatched", dispatched(by="centre", team="team-c"), h(51)))
    order = build(*_steps(order), ("answered", answered(team="team-c"), h(52)))
    assert view(order, WITHIN).status == "accepted"
    assert due_escalation(order, WITHIN, PARENTS.get, h(500)) is None


def test_an_order_overdue_for_long_climbs_one_level_per_period_up_to_the_top() -> None:
    at_station = OrderPlaced(
        order_id="o1", requester_id="village-3", requester_kind="village", unit_id="station-1", need="义诊"
    )
    order = escalate(build(("placed", at_station, h(0))), h(500))
    v = view(order, WITHIN)
    assert [(e.to_unit_id, e.at) for e in v.escalations] == [("institute-1", h(48)), ("centre", h(96))]
    assert v.handler_id == "centre"
    assert due_escalation(order, WITHIN, PARENTS.get, h(500)) is None  # the top: it stays, overdue


def test_an_accepted_order_does_not_escalate() -> None:
    order = build(
        ("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1)), ("answered", answered(), h(47))
    )
    assert due_escalation(order, WITHIN, PARENTS.get, h(100)) is None


def test_an_acceptance_dated_before_the_deadline_wins_even_if_it_arrives_after_the_escalation() -> None:
    order = escalate(build(("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1))), h(50))
    late_but_in_time = build(*_steps(order), ("answered", answered(), h(47)))
    v = view(late_but_in_time, WITHIN)
    assert (v.status, v.handler_id) == ("accepted", "institute-1")
    assert v.ignored == (("escalated", h(48), "the order was already accepted"),)


# ----------------------------------------------------------------------------- arrival order


def _steps(order: Order) -> list[tuple[str, Data, datetime]]:
    types: dict[str, type[Data]] = {
        "placed": OrderPlaced,
        "dispatched": OrderDispatched,
        "answered": OrderAnswered,
        "rated": OrderRated,
        "escalated": OrderEscalated,
    }
    return [(s.kind, types[s.kind].model_validate(s.data), s.at) for s in order.statements]


def test_every_arrival_order_of_a_full_workflow_gives_the_same_order() -> None:
    steps = [
        ("placed", PLACED, h(0)),
        ("dispatched", dispatched(), h(1)),
        ("answered", answered(accepted=False), h(2)),
        ("dispatched", dispatched(team="team-b"), h(3)),
        ("answered", answered(team="team-b"), h(4)),
        ("rated", rated(rating=4), h(80)),
    ]
    expected = build(*steps)
    assert view(expected, WITHIN, activity_completed=True).status == "rated"
    for arrival in itertools.permutations(steps):
        assert build(*arrival, arrival[0]) == expected  # and a duplicate changes nothing


# ------------------------------------------------------------------ the rating that counts (for supervision)


def test_the_counted_rating_is_the_requesters_rating_of_the_accepted_order_with_its_activity() -> None:
    served = [("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1)), ("answered", answered(), h(2))]
    counted = counted_rating(build(*served, ("rated", rated(rating=3), h(30))), WITHIN)
    assert counted == CountedRating("act-1", 3, h(30))
    # The activity's completion is supervision's to check: it scores completed activities only.
    assert view(build(*served, ("rated", rated(rating=3), h(30))), WITHIN).status == "accepted"


def test_no_rating_counts_from_someone_else_or_for_an_order_not_accepted() -> None:
    served = [("placed", PLACED, h(0)), ("dispatched", dispatched(), h(1)), ("answered", answered(), h(2))]
    assert counted_rating(build(*served, ("rated", rated(by="resident-8"), h(30))), WITHIN) is None
    assert counted_rating(build(*served[:2], ("rated", rated(), h(30))), WITHIN) is None
    assert counted_rating(None, WITHIN) is None


def test_a_rating_that_arrives_before_the_acceptance_counts_once_the_acceptance_arrives() -> None:
    steps = [
        ("rated", rated(rating=4), h(30)),
        ("placed", PLACED, h(0)),
        ("dispatched", dispatched(), h(1)),
        ("answered", answered(), h(2)),
    ]
    order: Order | None = None
    seen = []
    for kind, data, at in steps:
        order = add_statement(order, "o1", kind, data, at)  # type: ignore[arg-type]
        seen.append(counted_rating(order, WITHIN))
    assert seen == [None, None, None, CountedRating("act-1", 4, h(30))]
