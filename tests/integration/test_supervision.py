"""Supervision against the real broker and database: facts in, scores out."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from faststream.rabbit import RabbitExchange

from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    EvidenceStored,
    EvidenceStoredEvent,
    ScoreUpdatedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events import activities as A
from shared.events.evidence import EvidenceComplete, EvidenceCompleteEvent
from shared.topology import EVENTS
from tests.support import Tap
from wmsj.client import TownshipClient

ENDED = datetime(2020, 6, 12, 8, 0, tzinfo=UTC)


def facts(unit_id: str, activity_id: str) -> list[Any]:
    """What supervision hears about one unit's month, from the services that own each fact."""
    return [
        new_event(
            UnitRegisteredEvent,
            UnitRegistered(unit_id=unit_id, name="禾青镇第一村", kind=UnitKind.VILLAGE),
            source="/wmsj/registry",
            time=ENDED - timedelta(days=30),
        ),
        new_event(
            ActivityCompletedEvent,
            ActivityCompleted(
                activity_id=activity_id, unit_id=unit_id, ended_at=ENDED, volunteers=12, service_hours=36
            ),
            source="/wmsj/activities",
            time=ENDED,
        ),
        new_event(
            EvidenceStoredEvent,
            EvidenceStored(
                evidence_id=activity_id + "-e",
                activity_id=activity_id,
                unit_id=unit_id,
                object_key="k",
                sha256="a" * 64,
                size=1,
                content_type="image/png",
                stored_at=ENDED + timedelta(hours=2),
            ),
            source="/wmsj/evidence",
            time=ENDED + timedelta(hours=2),
        ),
        new_event(
            EvidenceCompleteEvent,
            EvidenceComplete(
                activity_id=activity_id,
                unit_id=unit_id,
                project_id=None,
                min_photos=1,
                text_report_required=False,
                photos=1,
                text_reports=0,
                evidence_ids=[activity_id + "-e"],
                completed_at=ENDED + timedelta(hours=2),
            ),
            source="/wmsj/evidence",
            time=ENDED + timedelta(hours=2),
        ),
    ]


async def publish_as_platform(apps: dict[str, ModuleType], events: list[Any]) -> None:
    bus = apps["registry"].service.bus  # any service's bus publishes to wmsj.events
    for event in events:
        await bus.publish(event, exchange=RabbitExchange(EVENTS.name))


def scores_of(tap: Tap, unit_id: str) -> list[Any]:
    """The distinct score events of a unit (the bus delivers at least once: a relay that
    publishes again after a crash or a lost confirm repeats an event, under the same id)."""
    found = tap.matching(lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id)
    return list({e.key: e for e in found}.values())


async def test_a_completed_activity_with_evidence_scores_full_marks(
    apps: dict[str, ModuleType], tap: Tap
) -> None:
    unit_id, activity_id = "u-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    await publish_as_platform(apps, facts(unit_id, activity_id))

    await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id and e.data.score == 100
    )
    supervision = apps["supervision"]
    stored = await supervision.scores.get(unit_id, "2020-06")
    assert stored.score == 100 and stored.rules_version == supervision.rules.version
    items = {i.rule: i for i in stored.items}
    assert items["monthly_activity"].points == 30 and items["monthly_activity"].facts == (activity_id,)
    assert items["evidence"].points == 20 and activity_id + "-e" in items["evidence"].facts
    # The quarter and the year are kept too: the mean of their months.
    assert (await supervision.scores.get(unit_id, "2020-Q2")).score == 33.3
    assert (await supervision.scores.get(unit_id, "2020")).score == 8.3


async def test_evidence_before_its_activity_gives_the_same_final_score(
    apps: dict[str, ModuleType], tap: Tap
) -> None:
    unit_id, activity_id = "u-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    registered, completed, evidence, complete = facts(unit_id, activity_id)
    await publish_as_platform(apps, [complete, evidence, completed, registered])

    await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id and e.data.score == 100
    )


async def test_a_replayed_fact_publishes_no_second_score(apps: dict[str, ModuleType], tap: Tap) -> None:
    unit_id, activity_id = "u-" + secrets.token_hex(4), "a-" + secrets.token_hex(4)
    events = facts(unit_id, activity_id)
    await publish_as_platform(apps, events)
    await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id and e.data.score == 100
    )
    # Facts are handled concurrently: when the unit's registration is handled after its
    # activity, the whole year is scored and announced, and those announcements may still be
    # on their way. A unit published afterwards and fully scored marks the end of them.
    await settle(apps, tap)
    seen = len(scores_of(tap, unit_id))

    await publish_as_platform(apps, events)  # the same events again: de-duplicated
    await settle(apps, tap)
    assert len(scores_of(tap, unit_id)) == seen


async def settle(apps: dict[str, ModuleType], tap: Tap) -> None:
    """Wait until a unit published after everything so far is fully scored: the relay has sent
    what was stored before it."""
    marker = "u-" + secrets.token_hex(4)
    await publish_as_platform(apps, facts(marker, "a-" + secrets.token_hex(4)))
    await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == marker and e.data.score == 100
    )


async def test_a_rated_order_reaches_the_four_lists_item_of_the_unit_that_served_it(
    apps: dict[str, ModuleType], tap: Tap, township: TownshipClient
) -> None:
    """From the township's 四单 statements through activities (which decides that the rating
    counts and for which activity) to supervision; the rating comes first, before the
    order's acceptance that makes it count."""
    tag = secrets.token_hex(4)
    unit_id, activity_id, order_id = f"u-{tag}", f"a-{tag}", f"o-{tag}"
    source = f"/townships/{tag}"
    placed = ENDED - timedelta(days=5)

    def statement(model: Any, data: Any, at: datetime) -> Any:
        return new_event(model, data, source=source, time=at, subject=order_id)

    rated = statement(
        A.OrderRatedEvent,
        A.OrderRated(order_id=order_id, requester_id="r1", rating=2),
        ENDED + timedelta(days=1),
    )
    workflow = [
        statement(
            ActivityScheduledEvent,
            ActivityScheduled(
                activity_id=activity_id,
                unit_id=unit_id,
                title="关爱留守儿童",
                starts_at=ENDED - timedelta(hours=2),
                ends_at=ENDED,
            ),
            placed,
        ),
        statement(
            ActivityCompletedEvent,
            ActivityCompleted(
                activity_id=activity_id, unit_id=unit_id, ended_at=ENDED, volunteers=12, service_hours=24
            ),
            ENDED,
        ),
        statement(
            A.OrderPlacedEvent,
            A.OrderPlaced(
                order_id=order_id,
                requester_id="r1",
                requester_kind="resident",
                unit_id=f"s-{tag}",
                need="辅导",
            ),
            placed,
        ),
        statement(
            A.OrderDispatchedEvent,
            A.OrderDispatched(order_id=order_id, dispatcher_id=f"s-{tag}", team_id=unit_id),
            placed + timedelta(hours=1),
        ),
    ]
    answered = statement(
        A.OrderAnsweredEvent,
        A.OrderAnswered(order_id=order_id, team_id=unit_id, accepted=True, activity_id=activity_id),
        placed + timedelta(hours=2),
    )
    for event in [rated, *workflow]:
        await township.publish(event)
    await tap.wait_for(
        lambda e: e.type == ScoreUpdatedEvent.TYPE and e.subject == unit_id and e.data.period == "2020-06"
    )
    await township.publish(answered)  # now the rating counts

    [counted] = await tap.wait_for(
        lambda e: isinstance(e, A.OrderRatingCountedEvent) and e.data.order_id == order_id
    )
    assert (counted.data.activity_id, counted.data.rating) == (activity_id, 2)
    [update] = await tap.wait_for(
        lambda e: (
            e.type == ScoreUpdatedEvent.TYPE
            and e.subject == unit_id
            and {i.rule: i.points for i in e.data.breakdown}["four_lists"] == 3.3
        )
    )
    assert "1 rated orders, mean 2 of 5" in {i.rule: i.reason for i in update.data.breakdown}["four_lists"]
    assert township.rejections == []
