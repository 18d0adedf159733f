"""Activities service: the key project list, volunteer activities run against it, the 四单
workflow and volunteers' hours.

Reads township and office submissions from ``activities.ingress`` and the unit tree (accepted
``unit.registered`` facts) from ``activities.events``. Publishes on ``wmsj.events``:
- the accepted key project list, schedules and completions (re-published, for supervision
  and evidence);
- ``volunteer.hours-credited`` (for the registry's ledger) from check-in/out and approved 补录;
- ``order.escalated`` and ``monthly-warning.issued`` (for the office) from its two timers;
- ``order.rating-counted`` (for supervision's 四单 item) whenever an order's counting rating
  changes.

Only the office publishes the key project list; a township publishes only about units in
its own subtree (``check_scope``), learned from the broker-checked ``user_id``.

Publications, cancellations, the other order statements and attendance are not
re-published: no other service consumes them yet, and supervision's queue takes every
``wmsj.activity.*.*`` type, so a type it does not know would only be refused there. A rating
is not re-published as the township's ``order.rated`` either: that carries neither the
activity that served the order nor whether the rating counts, which only the whole order
history says. Their effect is visible
through this service's API and the events above.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI
from faststream.rabbit.annotations import RabbitMessage
from pydantic import Field
from pymongo.asynchronous.client_session import AsyncClientSession

from services.activities import api
from services.activities.domain import attendance as attending
from services.activities.domain import lifecycle
from services.activities.domain import orders as ordering
from services.activities.domain.attendance import (
    CreditBasis,
    RefusedAttendance,
    Roster,
    Supplement,
    apply_attendance,
    apply_supplement,
    check_credit,
)
from services.activities.domain.lifecycle import (
    Activity,
    RefusedActivity,
    apply_cancelled,
    apply_completed,
    apply_published,
    apply_scheduled,
)
from services.activities.domain.months import units_without_activity, warnings_by_township
from services.activities.domain.orders import (
    Order,
    RefusedOrder,
    add_statement,
    counted_rating,
    due_escalation,
    view,
)
from services.activities.domain.projects import RefusedList, apply_list
from services.activities.domain.scope import units_named
from services.activities.settings import ActivitiesSettings
from services.activities.store import (
    ActivityStore,
    EvidenceFactStore,
    OrderStore,
    ProjectListStore,
    RosterStore,
    UnitStore,
    VolunteerStore,
    WarningStore,
)
from shared.events import (
    CITY_TZ,
    ActivityCompletedEvent,
    ActivityScheduledEvent,
    CloudEvent,
    EventRejectedEvent,
    EvidenceStoredEvent,
    FieldError,
    HoursCredited,
    HoursCreditedEvent,
    ProjectListPublishedEvent,
    UnitRegisteredEvent,
    derived_id,
    period_of,
    statement,
)
from shared.events.activities import (
    ActivityCancelledEvent,
    ActivityPublishedEvent,
    HoursSupplementedEvent,
    MonthlyWarning,
    MonthlyWarningEvent,
    OrderAnsweredEvent,
    OrderDispatchedEvent,
    OrderEscalated,
    OrderEscalatedEvent,
    OrderPlacedEvent,
    OrderRatedEvent,
    OrderRatingCounted,
    OrderRatingCountedEvent,
    VolunteerCheckedInEvent,
    VolunteerCheckedOutEvent,
    VolunteerSignedUpEvent,
    VolunteerWithdrewEvent,
)
from shared.events.units import VolunteerEnrolledEvent
from shared.holds import Awaited, Held, Holds
from shared.identity import Publisher, owning_township, publisher_of, reply_queue, township_user
from shared.leases import run_leased_rounds
from shared.messaging import InvalidEvent, retry_transient
from shared.mongo import Outgoing, Reply
from shared.service import Service
from shared.topology import ACTIVITIES_EVENTS, ACTIVITIES_INGRESS

log = logging.getLogger("wmsj.activities")

settings = ActivitiesSettings()
service = Service("activities", settings)
activities = ActivityStore(service.db)
project_lists = ProjectListStore(service.db)
units = UnitStore(service.db)
rosters = RosterStore(service.db)
orders = OrderStore(service.db)
warnings = WarningStore(service.db)
evidence_facts = EvidenceFactStore(service.db)
volunteers = VolunteerStore(service.db)
service.on_start += [activities.ensure_indexes, project_lists.ensure_indexes, orders.ensure_indexes]
service.documents_publishing(
    ProjectListPublishedEvent,
    ActivityScheduledEvent,
    ActivityCompletedEvent,
    HoursCreditedEvent,
    OrderEscalatedEvent,
    OrderRatingCountedEvent,
    MonthlyWarningEvent,
    EventRejectedEvent,
    # Accepted statements kept by the event archive (``shared.archive``) only.
    ActivityPublishedEvent,
    ActivityCancelledEvent,
    OrderPlacedEvent,
    OrderDispatchedEvent,
    OrderAnsweredEvent,
    OrderRatedEvent,
    VolunteerSignedUpEvent,
    VolunteerWithdrewEvent,
    VolunteerCheckedInEvent,
    VolunteerCheckedOutEvent,
    HoursSupplementedEvent,
)
ACCEPT_WITHIN = timedelta(hours=settings.order_accept_hours)

LIFECYCLE = (ActivityScheduledEvent, ActivityCompletedEvent, ActivityPublishedEvent, ActivityCancelledEvent)
ORDERS = (OrderPlacedEvent, OrderDispatchedEvent, OrderAnsweredEvent, OrderRatedEvent)
ATTENDANCE = (
    VolunteerSignedUpEvent,
    VolunteerWithdrewEvent,
    VolunteerCheckedInEvent,
    VolunteerCheckedOutEvent,
    HoursSupplementedEvent,
)
Submission = Annotated[
    ProjectListPublishedEvent
    | ActivityScheduledEvent
    | ActivityCompletedEvent
    | ActivityPublishedEvent
    | ActivityCancelledEvent
    | OrderPlacedEvent
    | OrderDispatchedEvent
    | OrderAnsweredEvent
    | OrderRatedEvent
    | VolunteerSignedUpEvent
    | VolunteerWithdrewEvent
    | VolunteerCheckedInEvent
    | VolunteerCheckedOutEvent
    | HoursSupplementedEvent,
    Field(discriminator="type"),
]


# One consumer for the queue: competing consumers with different decoders would refuse
# each other's messages.
@service.consumes(
    ACTIVITIES_INGRESS,
    ProjectListPublishedEvent,
    *LIFECYCLE,
    *ORDERS,
    *ATTENDANCE,
    title="activities.ingress:submission",
)
async def on_submission(event: Submission, message: RabbitMessage) -> None:
    """The office's key project list; a unit's activities, orders (四单) and attendance."""
    # A redelivered duplicate changes nothing, even if its unit has since moved out of the
    # sender's township: it is not judged again. Nor is a duplicate of a held event.
    if await service.already_handled(event):
        return
    # Who: the broker-checked user_id; reply_to: kept with the event if it is held.
    await handle(event, publisher_of(message), message.reply_to or None)


async def handle(event: Submission, who: Publisher, reply_to: str | None, held: Held | None = None) -> None:
    """Handle a submission fresh from the queue, or ``held`` one now that what it waited for
    has arrived (the same rules, with the publisher stored when it was held): an event about
    something not known yet is held (``holds``), else it is applied once."""
    if awaited := await check_scope(event, who):
        await holds.hold(event, who, reply_to, awaited, held)
        return
    if isinstance(event, ProjectListPublishedEvent):
        effect = _project_list(event)
    elif isinstance(event, LIFECYCLE):
        effect = _lifecycle(event, who)
    elif isinstance(event, ORDERS):
        effect = _order(event, who)
    else:
        effect = _attendance(event, who)
    if held is None:
        await service.process(event, effect)
    elif not await holds.settle(held, effect):
        return  # released by another path meanwhile
    if isinstance(event, OrderPlacedEvent):  # the ratings that overtook it
        await holds.release(Awaited("order", event.data.order_id))


async def check_scope(event: Submission, who: Publisher) -> Awaited | None:
    """Refuse a township's event of an office-only type, or about a unit outside its subtree;
    return what it must wait for (a unit, or a rating's order) if that is not known yet.

    The office may publish anything about any unit, known or not: nothing is looked up. For
    a township, every unit the event names (``domain.scope``) must be known here, to tell
    whose it is. Units come from the registry's accepted facts on ``activities.events``, a
    longer way than the submission, so an event naming a unit not known yet is held until it
    arrives (``shared.holds``), and refused late if it does not within the hold. A rating
    waits likewise for its order's placement (the rating is about the units the order was
    placed with). What can be refused now is: a known unit of another township refuses the
    event even while another unit it names is still awaited. Checked before anything is
    stored; a unit that moves to another township afterwards does not undo what its former
    township stated before the move.
    """
    if who.is_office:
        return None
    if reason := who.may_not_publish_type(event.type, event.PUBLISHED_BY):
        raise InvalidEvent(reason)
    # Another township's id first: that refusal names nothing of it, where the unit scope
    # below would name the unit's township. (Checked again in the transaction.)
    await check_ownership(event, who)
    placed: list[dict[str, Any]] = []
    if isinstance(event, OrderRatedEvent):
        order_id = event.data.order_id
        placed = await retry_transient(lambda: _placements(order_id), what=f"looking up order {order_id}")
        if not placed:
            return Awaited("order", order_id)
    unknown: list[str] = []
    for unit_id in units_named(event.data, placed):
        unit = await _unit(unit_id)
        if unit is None:
            unknown.append(unit_id)
        elif reason := who.may_not_publish_about(
            unit_id, owning_township(unit["_id"], unit["kind"], unit.get("township_id"))
        ):
            raise InvalidEvent(reason)
    if unknown:
        return Awaited("unit", unknown[0])
    if isinstance(event, VolunteerCheckedOutEvent | HoursSupplementedEvent):
        # Hours are credited only to the township's own volunteer: the registry's word on
        # whose a volunteer is travels a longer way, so the credit waits for it.
        volunteer_id = event.data.volunteer_id
        found = await retry_transient(
            lambda: volunteers.get(volunteer_id), what=f"looking up volunteer {volunteer_id}"
        )
        if found is None:
            return Awaited("volunteer", volunteer_id)
    return None


async def check_ownership(event: Submission, who: Publisher) -> None:
    """Refuse a township's statement about an activity or order id another township owns."""
    try:
        if isinstance(event, ORDERS):
            order_id = event.data.order_id
            order = await retry_transient(lambda: orders.get(order_id), what=f"looking up order {order_id}")
            ordering.check_owner(await owned_order(order), order_id, who.township_id)
        elif isinstance(event, LIFECYCLE) or isinstance(event, ATTENDANCE):  # noqa: SIM101
            activity_id = event.data.activity_id
            activity = await retry_transient(
                lambda: activities.get(activity_id), what=f"looking up activity {activity_id}"
            )
            lifecycle.check_owner(await owned(activity), activity_id, who.township_id)
            if isinstance(event, ATTENDANCE):
                roster = await retry_transient(
                    lambda: rosters.get(activity_id), what=f"looking up roster {activity_id}"
                )
                attending.check_owner(await owned(roster), activity_id, who.township_id)
    except (RefusedActivity, RefusedAttendance, RefusedOrder) as refusal:
        raise refused(refusal) from refusal


async def _unit(unit_id: str) -> dict[str, Any] | None:
    return await retry_transient(lambda: units.get(unit_id), what=f"looking up unit {unit_id}")


async def _placements(order_id: str) -> list[dict[str, Any]]:
    order = await orders.get(order_id)
    return [s.data for s in order.statements if s.kind == "placed"] if order else []


async def known(awaited: Awaited) -> bool:
    """Whether what a held event waits for is known here now."""
    if awaited.kind == "order":
        return bool(await _placements(awaited.id))
    if awaited.kind == "volunteer":
        return await volunteers.get(awaited.id) is not None
    return await units.get(awaited.id) is not None


async def handle_held(held: Held) -> None:
    await handle(held.event, held.who, held.reply_to, held)  # type: ignore[arg-type]  # one of ours


holds = Holds(service, settings, known, handle_held)


def _project_list(event: ProjectListPublishedEvent) -> Any:
    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        try:
            version = apply_list(
                await project_lists.of_year(event.data.year, session), event.data, event.time
            )
        except RefusedList as refusal:
            raise InvalidEvent(str(refusal)) from refusal
        if version is None:
            return []
        await project_lists.put(version, session)
        return [service.accepted(event, subject=f"{version.year}:{version.version}")]

    return effect


Refusal = RefusedActivity | RefusedAttendance | RefusedOrder


def refused(problem: Refusal) -> InvalidEvent:
    """A domain refusal as the sender hears it: the reason, and the field it concerns."""
    return InvalidEvent(str(problem), [FieldError(location=problem.field, message=str(problem))])


Owned = TypeVar("Owned", Activity, Roster)


async def owned(item: Owned | None, session: AsyncClientSession | None = None) -> Owned | None:
    """An activity (or roster) with no township recorded — kept before owners were recorded,
    or first stated by the office about a unit not known then — is its unit's township's."""
    if item is None or item.owner is not None:
        return item
    return replace(item, owner=await unit_township(item.unit_id, session))


async def owned_order(order: Order | None, session: AsyncClientSession | None = None) -> Order | None:
    """Likewise an order: the township of the unit it was placed with."""
    if order is None or order.owner is not None:
        return order
    placed = next((s.data["unit_id"] for s in order.statements if s.kind == "placed"), None)
    return replace(order, owner=await unit_township(placed, session)) if placed else order


async def unit_township(unit_id: str, session: AsyncClientSession | None = None) -> str | None:
    """The township of a unit as the registry stated it (None: city level, or not known)."""
    unit = await units.get(unit_id, session)
    return owning_township(unit["_id"], unit["kind"], unit.get("township_id")) if unit else None


async def _claimant_unit(who: Publisher, unit_id: str | None, session: AsyncClientSession) -> str | None:
    """For the office, the township an id it introduces is recorded as owned by (its unit's);
    a township's own statements are recorded as its own without a look-up."""
    return await unit_township(unit_id, session) if who.is_office and unit_id else None


def _lifecycle(
    event: ActivityScheduledEvent | ActivityCompletedEvent | ActivityPublishedEvent | ActivityCancelledEvent,
    who: Publisher,
) -> Any:
    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        now = datetime.now(UTC)
        current = await owned(await activities.get(event.data.activity_id, session), session)
        try:
            lifecycle.check_owner(current, event.data.activity_id, who.township_id)
            if isinstance(event, ActivityScheduledEvent):
                updated = apply_scheduled(current, event.data, event.time, now)
            elif isinstance(event, ActivityCompletedEvent):
                updated = apply_completed(current, event.data, event.time, now)
            elif isinstance(event, ActivityPublishedEvent):
                updated = apply_published(current, event.data, event.time, now)
            else:
                updated = apply_cancelled(current, event.data, event.time, now)
        except RefusedActivity as refusal:
            raise refused(refusal) from refusal
        if updated is None:
            return []
        updated = lifecycle.claimed(
            updated, who.township_id, await _claimant_unit(who, event.data.unit_id, session)
        )
        await activities.put(updated, session)
        if isinstance(event, ActivityScheduledEvent | ActivityCompletedEvent):
            return [service.accepted(event, subject=updated.activity_id)]
        return []

    return effect


def _order(
    event: OrderPlacedEvent | OrderDispatchedEvent | OrderAnsweredEvent | OrderRatedEvent, who: Publisher
) -> Any:
    kinds = {
        OrderPlacedEvent: "placed",
        OrderDispatchedEvent: "dispatched",
        OrderAnsweredEvent: "answered",
        OrderRatedEvent: "rated",
    }

    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        order_id = event.data.order_id
        current = await owned_order(await orders.get(order_id, session), session)
        try:
            ordering.check_owner(current, order_id, who.township_id)
        except RefusedOrder as refusal:
            raise refused(refusal) from refusal
        updated = add_statement(
            current,
            order_id,
            kinds[type(event)],  # type: ignore[arg-type]
            event.data,
            event.time,
        )
        if updated is None:
            return []
        named = units_named(event.data, []) if not isinstance(event, OrderRatedEvent) else []
        updated = ordering.claimed(
            updated, who.township_id, await _claimant_unit(who, next(iter(named), None), session)
        )
        await orders.put(updated, view(updated, ACCEPT_WITHIN), session)
        # The accepted statement too, for the event archive (``wmsj replay`` rebuilds from it).
        return [service.accepted(event, subject=order_id), *rating_changes(event, current, updated)]

    return effect


def rating_changes(cause: CloudEvent[Any], before: Order | None, after: Order) -> list[CloudEvent[Any]]:
    """Announce the order's counting rating when a statement changed it (any statement may:
    a rating held until its order's acceptance arrives counts once that arrives)."""
    was, now = counted_rating(before, ACCEPT_WITHIN), counted_rating(after, ACCEPT_WITHIN)
    if was == now:
        return []
    changed = []
    if was is not None and (now is None or now.activity_id != was.activity_id):
        # The activity it was counted for no longer has it.
        changed.append(
            OrderRatingCounted(
                order_id=after.order_id, activity_id=was.activity_id, rating=None, rated_at=None
            )
        )
    if now is not None:
        changed.append(
            OrderRatingCounted(
                order_id=after.order_id, activity_id=now.activity_id, rating=now.rating, rated_at=now.rated_at
            )
        )
    return [
        OrderRatingCountedEvent(
            id=derived_id(cause.key, f"rating-counted:{data.model_dump_json()}"),
            source=service.bus.source,
            # Worked out now, from every statement known: later than any earlier figure.
            time=max(cause.time, datetime.now(UTC)),
            subject=after.order_id,
            data=data,
        )
        for data in changed
    ]


def _attendance(
    event: VolunteerSignedUpEvent
    | VolunteerWithdrewEvent
    | VolunteerCheckedInEvent
    | VolunteerCheckedOutEvent
    | HoursSupplementedEvent,
    who: Publisher,
) -> Any:
    actions = {
        VolunteerSignedUpEvent: "signed-up",
        VolunteerWithdrewEvent: "withdrawn",
        VolunteerCheckedInEvent: "checked-in",
        VolunteerCheckedOutEvent: "checked-out",
    }

    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        data = event.data
        if event.time > datetime.now(UTC) + timedelta(minutes=5):
            reason = f"the event is dated {event.time.isoformat()}, in the future"
            raise InvalidEvent(reason, [FieldError(location="time", message=reason)])
        activity = await owned(await activities.get(data.activity_id, session), session)
        current = await owned(await rosters.get(data.activity_id, session), session)
        try:
            # Whose the activity is first (a refusal that names nothing of its owner), then
            # whether it is this unit's (both the sender's own: naming them tells nothing).
            lifecycle.check_owner(activity, data.activity_id, who.township_id)
            attending.check_owner(current, data.activity_id, who.township_id)
            if activity is not None and activity.unit_id != data.unit_id:
                raise RefusedAttendance(
                    f"activity {data.activity_id} belongs to unit {activity.unit_id}, not {data.unit_id}",
                    "data.unit_id",
                )
            if isinstance(event, HoursSupplementedEvent | VolunteerCheckedOutEvent):
                volunteer = await volunteers.get(data.volunteer_id, session)
                check_credit(
                    "supplement" if isinstance(event, HoursSupplementedEvent) else "check-out",
                    data.activity_id,
                    data.volunteer_id,
                    event.data.evidence_id if isinstance(event, HoursSupplementedEvent) else None,
                    CreditBasis(
                        activity.unit_id if activity is not None and activity.schedule else None,
                        await evidence_facts.activity_of(event.data.evidence_id, session)
                        if isinstance(event, HoursSupplementedEvent)
                        else None,
                        volunteer_known=volunteer is not None,
                        volunteer_township=volunteer.get("township_id") if volunteer else None,
                    ),
                    who.township_id,
                )
            if isinstance(event, HoursSupplementedEvent):
                supplement = Supplement(
                    key=event.key,
                    volunteer_id=event.data.volunteer_id,
                    hours=event.data.hours,
                    approver_id=event.data.approver_id,
                    evidence_id=event.data.evidence_id,
                    reason=event.data.reason,
                    at=event.time,
                )
                updated = apply_supplement(current, data.unit_id, supplement, data.activity_id)
                credit = (supplement.hours, event.time, "supplement") if updated else None
            else:
                action = actions[type(event)]
                updated = apply_attendance(
                    current,
                    data.activity_id,
                    data.unit_id,
                    data.volunteer_id,
                    action,  # type: ignore[arg-type]
                    event.time,
                )
                credit = _attendance_credit(current, updated, data.volunteer_id)
        except (RefusedActivity, RefusedAttendance) as refusal:
            raise refused(refusal) from refusal
        if updated is None:
            return []
        updated = attending.claimed(
            updated, who.township_id, await _claimant_unit(who, data.unit_id, session)
        )
        await rosters.put(updated, session)
        # The accepted statement too, for the event archive (``wmsj replay`` rebuilds from it).
        accepted = service.accepted(event, subject=data.activity_id)
        if credit is None:
            return [accepted]
        hours, at, basis = credit
        return [
            accepted,
            HoursCreditedEvent(
                id=derived_id(event.key, "hours-credited"),
                source=service.bus.source,
                # When the figure was worked out: an attendance figure is restated whenever a
                # check-in or check-out changes it (a late-arriving earlier check-in too), and
                # the figure worked out last — from every statement known — is the one to keep.
                time=max(at, datetime.now(UTC)),
                subject=data.volunteer_id,
                data=HoursCredited(
                    volunteer_id=data.volunteer_id,
                    activity_id=data.activity_id,
                    unit_id=data.unit_id,
                    hours=hours,
                    credited_at=at,
                    basis=basis,  # type: ignore[arg-type]
                ),
            ),
        ]

    return effect


def _attendance_credit(
    before: Roster | None, after: Roster | None, volunteer_id: str
) -> tuple[float, datetime, str] | None:
    """The hours to credit when check-in/out changed them: a restatement of the volunteer's
    attendance hours at this activity (the latest event time is the current figure)."""
    if after is None:
        return None
    was = before.of(volunteer_id) if before else None
    now = after.of(volunteer_id)
    if now is None or now.hours is None or (was is not None and was.hours == now.hours):
        return None
    assert now.checked_out_at is not None
    return now.hours, now.checked_out_at, "attendance"


# ----------------------------------------------------------------------------- the unit tree


FactEvent = Annotated[
    UnitRegisteredEvent | EvidenceStoredEvent | VolunteerEnrolledEvent, Field(discriminator="type")
]


@service.consumes(
    ACTIVITIES_EVENTS,
    UnitRegisteredEvent,
    EvidenceStoredEvent,
    VolunteerEnrolledEvent,
    title="activities.events:unit-registered-evidence-stored-volunteer-enrolled",
)
async def on_fact(event: FactEvent) -> None:
    """The registry accepted a unit: learn its parent (escalation) and that it exists (warning),
    and handle the events held for it. Or the registry accepted a volunteer: learn whose it
    is (hours go only to a township's own), and handle the credits held for it. Or the
    evidence service stored evidence: learn which activity it is of (补录 names it)."""
    if isinstance(event, VolunteerEnrolledEvent):
        enrolled = event.data.enrolled

        async def learn(session: AsyncClientSession) -> list[CloudEvent[Any]]:
            await volunteers.put_many([e.model_dump(mode="json") for e in enrolled], event.time, session)
            return []

        await service.process(event, learn)
        for enrolment in enrolled:  # also for a duplicate, like a unit's
            await holds.release(Awaited("volunteer", enrolment.volunteer_id))
        return
    if isinstance(event, EvidenceStoredEvent):
        stored = event.data

        async def keep(session: AsyncClientSession) -> list[CloudEvent[Any]]:
            await evidence_facts.put(stored.evidence_id, stored.activity_id, stored.unit_id, session)
            return []

        await service.process(event, keep)
        return
    unit = event.data

    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        await units.put(unit.model_dump(mode="json"), statement(event.time, unit), session)
        return []

    await service.process(event, effect)
    # Also for a duplicate: the first delivery may have died before it released them.
    await holds.release(Awaited("unit", unit.unit_id))


# ----------------------------------------------------------------------------- timers


async def escalate_due(now: datetime) -> list[OrderEscalatedEvent]:
    """Escalate every order nobody accepted in time, as of ``now`` (the timer's clock)."""
    escalated: list[OrderEscalatedEvent] = []
    for order_id in await orders.due(now):
        for _ in range(50):  # one level per round; the tree is far shallower than this
            event = await _escalate_once(order_id, now)
            if event is None:
                break
            escalated.append(event)
    return escalated


async def _escalate_once(order_id: str, now: datetime) -> OrderEscalatedEvent | None:
    order = await orders.get(order_id)
    if order is None:
        return None
    before = view(order, ACCEPT_WITHIN)
    parent = await units.parent_of(before.handler_id) if before.handler_id else None
    due = due_escalation(order, ACCEPT_WITHIN, {before.handler_id: parent}.get, now)
    if due is None:
        return None
    level = len(before.escalations) + 1
    # The id names the step, so a second timer (or a retry) escalating the same step is a
    # duplicate the inbox ignores.
    event = OrderEscalatedEvent(
        id=derived_id(f"order:{order_id}", f"escalated:{level}:{due.from_unit_id}"),
        source=service.bus.source,
        time=due.at,
        subject=order_id,
        data=OrderEscalated(
            order_id=order_id, from_unit_id=due.from_unit_id, to_unit_id=due.to_unit_id, level=level
        ),
    )
    return event if await apply_escalation(event) else None


async def apply_escalation(event: OrderEscalatedEvent) -> bool:
    """Record an escalation step (the timer's, or an archived one ``wmsj replay`` restores);
    False if the order was accepted or escalated meanwhile (the step changes nothing)."""
    order_id, level = event.data.order_id, event.data.level
    done: list[bool] = []

    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        done.clear()  # a retried transaction starts again
        current = await orders.get(order_id, session)
        updated = add_statement(current, order_id, "escalated", event.data, event.time)
        if updated is None or len(view(updated, ACCEPT_WITHIN).escalations) != level:
            return []  # accepted (or escalated) meanwhile: this step changes nothing
        await orders.put(updated, view(updated, ACCEPT_WITHIN), session)
        done.append(True)
        return [event]

    await service.process(event, effect)
    return bool(done)


async def issue_monthly_warning(period: str, now: datetime) -> MonthlyWarningEvent | None:
    """Warn about the units with nothing scheduled or completed in ``period`` as of ``now``;
    None when the list is the one already issued."""
    known_units = await units.all()
    known = [u["_id"] for u in known_units]
    missing = units_without_activity(known, await activities.in_period(period), period)
    if await warnings.last(period) == missing:
        return None
    event = MonthlyWarningEvent(
        id=derived_id(f"monthly-warning:{period}", f"{now.isoformat()}:{','.join(missing)}"),
        source=service.bus.source,
        time=now,
        subject=period,
        data=MonthlyWarning(period=period, as_of=now, unit_ids=missing, units_known=len(known)),
    )

    # Each township hears of its own units on its reply queue (its to-do), scoped to its
    # subtree; the office keeps the whole list on the bus.
    replies = [
        Reply(
            MonthlyWarningEvent(
                id=derived_id(event.id, f"township:{township}"),
                source=service.bus.source,
                time=now,
                subject=period,
                data=MonthlyWarning(period=period, as_of=now, unit_ids=ids, units_known=count),
            ),
            reply_queue(township_user(township)),
        )
        for township, (ids, count) in warnings_by_township(
            [
                (u["_id"], owning_township(u["_id"], u.get("kind", ""), u.get("township_id")))
                for u in known_units
            ],
            missing,
        ).items()
    ]

    async def effect(session: AsyncClientSession) -> list[Outgoing]:
        # Looked at again in the transaction: two rounds at once (a timer paused beyond its
        # lease beside its successor) issue the list once; their writes conflict.
        if await warnings.last(period, session) == missing:
            return []
        await warnings.put(period, missing, now, session)
        return [event, *replies]

    await service.process(event, effect)
    return event


async def restore_warning(event: MonthlyWarningEvent) -> None:
    """Keep an archived monthly warning as the last one issued (``wmsj replay``)."""

    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        await warnings.put(event.data.period, list(event.data.unit_ids), event.data.as_of, session)
        return []

    await service.process(event, effect)


async def tick(now: datetime) -> None:
    """One round of both timers."""
    await escalate_due(now)
    if now.astimezone(CITY_TZ).day >= settings.warning_from_day:
        await issue_monthly_warning(period_of(now), now)


async def run_timers() -> None:
    # Replicas: leased (one replica runs both timers; ``shared.leases``). Idempotent as well:
    # an escalation's id names its step and is re-checked in its transaction, a warning is
    # re-checked against the last one issued in its transaction.
    await run_leased_rounds(
        service.db,
        "activities-timers",
        lambda: tick(datetime.now(UTC)),
        settings.timer_interval_s,
        "timer round",
        log,
    )


service.background.append(run_timers)


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        app.include_router(
            api.router(api.Stores(activities, project_lists, units, rosters, orders), ACCEPT_WITHIN)
        )
        api.allow_dashboard(app, settings.dashboard_origins)

    return service.http_app("wmsj activities", routes)


asyncapi = service.asyncapi(
    "The key project list, volunteer activities against it, the 四单 workflow and volunteers' hours."
)
