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
    EvidenceStored,
    EvidenceStoredEvent,
    ScoreUpdatedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.topology import EVENTS
from tests.support import Tap

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
    registered, completed, evidence = facts(unit_id, activity_id)
    await publish_as_platform(apps, [evidence, completed, registered])

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
