"""Typed builders for every event a township publishes: give the data, get the CloudEvent
with its ``type``, your ``source``, a new ``id`` and ``time`` (now) — or the ones you pass,
to re-send a statement or to state when you learnt a fact.

    events = Events("431381101")
    event = events.activity_scheduled(ActivityScheduled(activity_id="a-1", unit_id=..., ...))
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from shared.events import CloudEvent, new_event
from shared.events.activities import (
    ActivityCancelled,
    ActivityCancelledEvent,
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityPublished,
    ActivityPublishedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    HoursSupplemented,
    HoursSupplementedEvent,
    OrderAnswered,
    OrderAnsweredEvent,
    OrderDispatched,
    OrderDispatchedEvent,
    OrderPlaced,
    OrderPlacedEvent,
    OrderRated,
    OrderRatedEvent,
    VolunteerAttendance,
    VolunteerCheckedInEvent,
    VolunteerCheckedOutEvent,
    VolunteerSignedUpEvent,
    VolunteerWithdrewEvent,
)
from shared.events.evidence import EvidenceSubmitted, EvidenceSubmittedEvent
from shared.events.units import (
    UnitRegistered,
    UnitRegisteredEvent,
    UnitRegisteredV2,
    UnitRegisteredV2Event,
    VolunteerRegistered,
    VolunteerRegisteredEvent,
)

E = TypeVar("E", bound=CloudEvent[Any])


class Events:
    """Builds a township's events. ``source`` defaults to ``/townships/<township_id>``."""

    def __init__(self, township_id: str, source: str | None = None) -> None:
        self.township_id = township_id
        self.source = source or f"/townships/{township_id}"

    def _event(self, model: type[E], data: Any, id: str | None, time: datetime | None) -> E:
        return cast(
            E,
            new_event(
                model, data, source=self.source, id=id or str(uuid.uuid4()), time=time or datetime.now(UTC)
            ),
        )

    # ------------------------------------------------------------------ registry

    def unit_registered(
        self, data: UnitRegisteredV2, *, id: str | None = None, time: datetime | None = None
    ) -> UnitRegisteredV2Event:
        """wmsj.unit.registered.v2: a unit and its civilized-unit title and contacts."""
        return self._event(UnitRegisteredV2Event, data, id, time)

    def unit_registered_v1(
        self, data: UnitRegistered, *, id: str | None = None, time: datetime | None = None
    ) -> UnitRegisteredEvent:
        """wmsj.unit.registered.v1: leaves a known unit's title and contacts as they are."""
        return self._event(UnitRegisteredEvent, data, id, time)

    def volunteer_registered(
        self, data: VolunteerRegistered, *, id: str | None = None, time: datetime | None = None
    ) -> VolunteerRegisteredEvent:
        """wmsj.volunteer.registered.v1 (实名注册)."""
        return self._event(VolunteerRegisteredEvent, data, id, time)

    # ------------------------------------------------------------------ activities

    def activity_scheduled(
        self, data: ActivityScheduled, *, id: str | None = None, time: datetime | None = None
    ) -> ActivityScheduledEvent:
        return self._event(ActivityScheduledEvent, data, id, time)

    def activity_published(
        self, data: ActivityPublished, *, id: str | None = None, time: datetime | None = None
    ) -> ActivityPublishedEvent:
        return self._event(ActivityPublishedEvent, data, id, time)

    def activity_cancelled(
        self, data: ActivityCancelled, *, id: str | None = None, time: datetime | None = None
    ) -> ActivityCancelledEvent:
        return self._event(ActivityCancelledEvent, data, id, time)

    def activity_completed(
        self, data: ActivityCompleted, *, id: str | None = None, time: datetime | None = None
    ) -> ActivityCompletedEvent:
        return self._event(ActivityCompletedEvent, data, id, time)

    # ------------------------------------------------------------------ attendance

    def signed_up(
        self, data: VolunteerAttendance, *, id: str | None = None, time: datetime | None = None
    ) -> VolunteerSignedUpEvent:
        return self._event(VolunteerSignedUpEvent, data, id, time)

    def withdrawn(
        self, data: VolunteerAttendance, *, id: str | None = None, time: datetime | None = None
    ) -> VolunteerWithdrewEvent:
        return self._event(VolunteerWithdrewEvent, data, id, time)

    def checked_in(
        self, data: VolunteerAttendance, *, id: str | None = None, time: datetime | None = None
    ) -> VolunteerCheckedInEvent:
        return self._event(VolunteerCheckedInEvent, data, id, time)

    def checked_out(
        self, data: VolunteerAttendance, *, id: str | None = None, time: datetime | None = None
    ) -> VolunteerCheckedOutEvent:
        return self._event(VolunteerCheckedOutEvent, data, id, time)

    def hours_supplemented(
        self, data: HoursSupplemented, *, id: str | None = None, time: datetime | None = None
    ) -> HoursSupplementedEvent:
        """补录: hours added afterwards, with an approver and an evidence id."""
        return self._event(HoursSupplementedEvent, data, id, time)

    # ------------------------------------------------------------------ 四单 orders

    def order_placed(
        self, data: OrderPlaced, *, id: str | None = None, time: datetime | None = None
    ) -> OrderPlacedEvent:
        """点单."""
        return self._event(OrderPlacedEvent, data, id, time)

    def order_dispatched(
        self, data: OrderDispatched, *, id: str | None = None, time: datetime | None = None
    ) -> OrderDispatchedEvent:
        """派单."""
        return self._event(OrderDispatchedEvent, data, id, time)

    def order_answered(
        self, data: OrderAnswered, *, id: str | None = None, time: datetime | None = None
    ) -> OrderAnsweredEvent:
        """接单 (or declined)."""
        return self._event(OrderAnsweredEvent, data, id, time)

    def order_rated(
        self, data: OrderRated, *, id: str | None = None, time: datetime | None = None
    ) -> OrderRatedEvent:
        """评单."""
        return self._event(OrderRatedEvent, data, id, time)

    # ------------------------------------------------------------------ evidence

    def evidence_submitted(
        self, data: EvidenceSubmitted, *, id: str | None = None, time: datetime | None = None
    ) -> EvidenceSubmittedEvent:
        """The claim check of an upload (see ``Uploader``)."""
        return self._event(EvidenceSubmittedEvent, data, id, time)
