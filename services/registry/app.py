"""Registry service: the source of truth about units and volunteers (who is who).

Reads township submissions from ``registry.ingress`` (units v1/v2, volunteers), learns who
sent each from the broker-validated ``user_id`` (``shared.identity``), refuses what breaks
the rules or lies outside the sender's own subtree, stores the rest and re-publishes
accepted units on ``wmsj.events`` (as v1, what supervision, activities and evidence read).
Credits volunteers' service hours from ``registry.events``. Also answers for the ingress
exchange's unrouted messages: a township that sends an event type nobody owns is told so.

A unit whose parent, or a volunteer whose unit, is not registered yet is held (with who sent
it and its reply queue) and its message acknowledged: it is applied when what it waits for
arrives, or refused when the hold runs out (``expire_held``). Either way a late refusal goes
to the sender's reply queue as well as to the office.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from faststream.middlewares import AckPolicy
from faststream.rabbit.annotations import RabbitMessage
from pymongo.asynchronous.client_session import AsyncClientSession

from services.registry import api
from services.registry import townships as township_routes
from services.registry.domain import (
    RefusedUnit,
    Unit,
    apply_registration,
    check_registration,
    moved_subtree,
    outstayed,
    outstayed_reason,
)
from services.registry.settings import RegistrySettings
from services.registry.sheets import RowError
from services.registry.store import UnitStore
from services.registry.volunteers import Volunteer, apply_volunteer
from services.registry.volunteers import check_owner as check_volunteer_owner
from shared.events import (
    TOWNSHIP_EVENTS,
    CloudEvent,
    EventRejected,
    EventRejectedEvent,
    FieldError,
    HoursCreditedEvent,
    UnitRegistered,
    UnitRegisteredEvent,
    derived_id,
)
from shared.events.units import (
    Enrolment,
    UnitRegisteredV2,
    UnitRegisteredV2Event,
    VolunteerEnrolled,
    VolunteerEnrolledEvent,
    VolunteerRegistered,
    VolunteerRegisteredEvent,
)
from shared.identity import Publisher, Unidentified, identify, publisher_of
from shared.leases import run_leased_rounds
from shared.messaging import InvalidEvent
from shared.mongo import Effect, Outgoing, Reply, stage
from shared.onboarding import BrokerAdmin
from shared.pii import vault
from shared.service import Service
from shared.topology import REGISTRY_EVENTS, REGISTRY_INGRESS, REGISTRY_UNROUTED

log = logging.getLogger("wmsj.registry")
settings = RegistrySettings()
service = Service("registry", settings)
units = UnitStore(service.db)


async def _check_pii_key() -> None:
    vault()  # a malformed WMSJ_PII_KEY stops the start, not the first volunteer


service.on_start += [_check_pii_key, units.ensure_indexes]
service.documents_publishing(UnitRegisteredEvent, VolunteerEnrolledEvent, EventRejectedEvent)

IngressEvent = UnitRegisteredEvent | UnitRegisteredV2Event | VolunteerRegisteredEvent


@service.consumes(
    REGISTRY_INGRESS,
    UnitRegisteredEvent,
    UnitRegisteredV2Event,
    VolunteerRegisteredEvent,
    title="registry.ingress:unit-and-volunteer-registered",
)
async def on_ingress(event: IngressEvent, message: RabbitMessage) -> None:
    """A township (or the office) states a unit's (登记单位) or a volunteer's details."""
    who = publisher_of(message)  # from the broker-checked user_id, never from the body
    reply_to = message.reply_to or None  # kept with a held statement, for a late refusal
    if isinstance(event, VolunteerRegisteredEvent):
        await service.process(event, lambda session: register_volunteer(event, who, session, reply_to))
    else:
        await service.process(event, lambda session: register_unit(event, who, session, reply_to))


# ----------------------------------------------------------------------------- units


def _refused(problem: RefusedUnit) -> InvalidEvent:
    """A rule's refusal as the sender hears it: the reason, and the field it concerns."""
    return InvalidEvent(str(problem), [FieldError(location=f"data.{problem.column}", message=str(problem))])


def _held(event: CloudEvent[Any], who: Publisher, reply_to: str | None) -> dict[str, Any]:
    """What a held statement keeps besides the statement: who sent it and where to answer."""
    return {
        "stated_at": event.time,
        "key": event.key,
        "source": event.source,
        "id": event.id,
        "type": event.type,
        "user": who.user,
        "reply_to": reply_to,
        "held_at": datetime.now(UTC),
    }


async def register_unit(
    event: UnitRegisteredEvent | UnitRegisteredV2Event,
    who: Publisher,
    session: AsyncClientSession,
    reply_to: str | None = None,
) -> list[Outgoing]:
    data = event.data
    try:
        check_registration(data)
    except RefusedUnit as refusal:
        raise _refused(refusal) from refusal
    current = await units.get(data.unit_id, session)
    if current is not None and (reason := who.may_not_publish_about(data.unit_id, current.owner)):
        raise InvalidEvent(reason)
    if data.parent_id is not None and await units.get(data.parent_id, session) is None:
        # Early, not wrong: held until the parent arrives (see domain.py). What can be
        # checked now is: a township cannot claim another township's subtree.
        if data.township_id is not None and (
            reason := who.may_not_publish_about(data.unit_id, data.township_id)
        ):
            raise InvalidEvent(reason)
        await units.hold(
            data.parent_id,
            {
                "what": "unit",
                "statement": data.model_dump(mode="json"),
                "version": 2 if isinstance(data, UnitRegisteredV2) else 1,
                **_held(event, who, reply_to),
            },
            session,
        )
        return []
    try:
        return await settle(data, event.time, event.key, who, session)
    except RefusedUnit as refusal:
        raise _refused(refusal) from refusal


async def settle(
    data: UnitRegistered | UnitRegisteredV2,
    stated_at: datetime,
    cause: str,
    who: Publisher,
    session: AsyncClientSession,
) -> list[Outgoing]:
    """Apply a statement whose parent (if any) is known; then the statements (child units,
    volunteers) that were waiting for this unit. Raises RefusedUnit, or InvalidEvent for a
    scope violation."""
    current = await units.get(data.unit_id, session)
    parent = await units.get(data.parent_id, session) if data.parent_id else None
    unit = apply_registration(current, data, stated_at, parent)
    waiting = await units.waiting(data.unit_id, session)
    if unit is None and not waiting:
        return []
    out: list[Outgoing] = []
    if unit is not None:
        if reason := who.may_not_publish_about(data.unit_id, unit.owner):
            raise InvalidEvent(reason)
        await units.put(unit, session)
        if parent is not None:
            await units.touch(parent.unit_id, session)
        moved = []
        if current is not None and (current.ancestors, current.owner) != (unit.ancestors, unit.owner):
            moved = moved_subtree(unit, await units.descendants(unit.unit_id, session))
        await _record(unit, "registered" if current is None else "restated", cause, who, session)
        out.append(_as_v1(unit, derived_id(cause, "accepted"), stated_at))
        for descendant in moved:
            await units.put(descendant, session)
            await _record(descendant, f"moved with {unit.unit_id}", cause, who, session)
            out.append(
                _as_v1(
                    descendant,
                    derived_id(cause, f"moved:{descendant.unit_id}"),
                    max(stated_at, descendant.stated_at),
                )
            )
    elif waiting:
        await units.put(current, session)  # type: ignore[arg-type]  # clears the waiting list
    for entry in sorted(waiting, key=lambda e: e["stated_at"]):
        out += await _release(entry, session)
    return out


async def _release(entry: dict[str, Any], session: AsyncClientSession) -> list[Outgoing]:
    """A held statement, now that what it waited for is known: applied with every rule, or
    refused late (its message was acknowledged when it was held)."""
    try:
        who = identify(entry["user"])
        if entry.get("what") == "volunteer":
            volunteer = VolunteerRegistered.model_validate_json(vault().open(entry["sealed"]))
            return await settle_volunteer(volunteer, entry["stated_at"], who, session)
        model = UnitRegisteredV2 if entry["version"] == 2 else UnitRegistered
        data = model.model_validate(entry["statement"])
        return await settle(data, entry["stated_at"], entry["key"], who, session)
    except (RefusedUnit, InvalidEvent, Unidentified) as refusal:
        return late_refusal(entry, refusal.reason if isinstance(refusal, InvalidEvent) else str(refusal))


def late_refusal(entry: dict[str, Any], reason: str) -> list[Outgoing]:
    """The refusal of a held statement: for the office on the bus, and for the township on
    the reply queue its message named (the message itself was acknowledged long ago)."""
    rejected = EventRejectedEvent(
        id=derived_id(entry["key"], "rejected-by-registry"),
        source=service.bus.source,
        time=datetime.now(UTC),
        subject=entry["id"],
        data=EventRejected(
            rejected_source=entry["source"],
            rejected_id=entry["id"],
            rejected_type=entry["type"],
            reason=reason,
            rejected_by=service.name,
        ),
    )
    return [rejected, Reply(rejected, entry["reply_to"])] if entry.get("reply_to") else [rejected]


def _as_v1(unit: Unit, event_id: str, at: datetime) -> UnitRegisteredEvent:
    return UnitRegisteredEvent(
        id=event_id,
        source=service.bus.source,
        time=at,
        subject=unit.unit_id,
        data=UnitRegistered(
            unit_id=unit.unit_id,
            name=unit.name,
            kind=unit.kind,  # type: ignore[arg-type]
            parent_id=unit.parent_id,
            township_id=unit.township_id,
        ),
    )


async def _record(unit: Unit, change: str, cause: str, who: Publisher, session: AsyncClientSession) -> None:
    await units.record(
        {
            "unit_id": unit.unit_id,
            "change": change,
            "stated_at": unit.stated_at,
            "recorded_at": datetime.now(UTC),
            "by": who.user,
            "event": cause,
            "name": unit.name,
            "kind": unit.kind,
            "parent_id": unit.parent_id,
            "township_id": unit.township_id,
            "active": unit.active,
            "category": unit.category,
        },
        session,
    )


# ----------------------------------------------------------------------------- volunteers


async def register_volunteer(
    event: VolunteerRegisteredEvent,
    who: Publisher,
    session: AsyncClientSession,
    reply_to: str | None = None,
) -> list[Outgoing]:
    """A volunteer whose unit is known is settled now; one whose unit is not is held under
    the unit (like a child under its parent), its personal data sealed, until the unit
    arrives or the hold runs out."""
    data = event.data
    try:  # another township's volunteer first: that refusal names nothing of it
        check_volunteer_owner(
            await units.volunteer(data.volunteer_id, session), data.volunteer_id, who.township_id
        )
    except RefusedUnit as refusal:
        raise _refused(refusal) from refusal
    if await units.get(data.unit_id, session) is not None:
        return await settle_volunteer(data, event.time, who, session)
    await _teams_in_scope(data, who, session)  # what can be checked now is refused now
    await units.hold(
        data.unit_id,
        {
            "what": "volunteer",
            "volunteer_id": data.volunteer_id,
            "sealed": vault().seal(data.model_dump_json()),
            **_held(event, who, reply_to),
        },
        session,
    )
    return []


async def _teams_in_scope(
    data: VolunteerRegistered, who: Publisher, session: AsyncClientSession
) -> dict[str, Unit]:
    teams = {t: u for t in data.team_ids if (u := await units.get(t, session)) is not None}
    for team in teams.values():
        if reason := who.may_not_publish_about(team.unit_id, team.owner):
            raise InvalidEvent(reason)
    return teams


async def settle_volunteer(
    data: VolunteerRegistered, stated_at: datetime, who: Publisher, session: AsyncClientSession
) -> list[Outgoing]:
    """Apply a volunteer's statement with every rule; InvalidEvent if one is broken."""
    current = await units.volunteer(data.volunteer_id, session)
    try:  # another township's volunteer first: that refusal names nothing of it
        check_volunteer_owner(current, data.volunteer_id, who.township_id)
    except RefusedUnit as refusal:
        raise _refused(refusal) from refusal
    unit = await units.get(data.unit_id, session)
    if unit is not None and (reason := who.may_not_publish_about(data.unit_id, unit.owner)):
        raise InvalidEvent(reason)
    teams = await _teams_in_scope(data, who, session)
    pii = vault()
    try:
        volunteer = apply_volunteer(
            current,
            data,
            stated_at,
            unit=unit,
            teams=teams,
            holder_of_card=await units.card_holder(pii.fingerprint(data.id_card), session),
            vault=pii,
            sender_township=who.township_id,
        )
    except RefusedUnit as refusal:
        raise _refused(refusal) from refusal
    if volunteer is None:
        return []
    await units.put_volunteer(volunteer, session)
    return [*enrolled([volunteer])]  # whose volunteer it is; personal data is never re-published


ENROLMENTS_PER_EVENT = 500


def enrolled(volunteers: list[Volunteer]) -> list[VolunteerEnrolledEvent]:
    """Accepted volunteers without personal data, in batches (a spreadsheet's thousands make a
    few events, not thousands): the activities service credits hours only to a township's
    own volunteers. Ids derive from the statements kept, so re-handling a statement
    re-publishes the same event."""
    out = []
    for start in range(0, len(volunteers), ENROLMENTS_PER_EVENT):
        batch = volunteers[start : start + ENROLMENTS_PER_EVENT]
        out.append(
            VolunteerEnrolledEvent(
                id=derived_id(
                    "volunteers", "enrolled:" + ",".join(f"{v.volunteer_id}:{v.stated}" for v in batch)
                ),
                source=service.bus.source,
                time=max(v.stated_at for v in batch),
                subject=batch[0].volunteer_id if len(batch) == 1 else None,
                data=VolunteerEnrolled(
                    enrolled=[
                        Enrolment(
                            volunteer_id=v.volunteer_id,
                            unit_id=v.unit_id,
                            township_id=v.owner,
                            active=v.active,
                        )
                        for v in batch
                    ]
                ),
            )
        )
    return out


# ----------------------------------------------------------------------------- held statements


async def expire_held(now: datetime) -> list[str]:
    """Refuse every held statement that has outstayed the hold as of ``now`` (the timer's
    clock); returns the ids of the events refused. Each refusal is handled once (its id
    derives from the held event), in a transaction that first takes the statement out of
    the waiting list: a unit arriving at the same moment writes that same document, so the
    statement is either released by it or refused here, never both."""
    hold = timedelta(seconds=settings.hold_s)
    refused: list[str] = []
    for doc in await units.placeholders():
        for entry in outstayed(doc.get("waiting", []), now, hold):
            if await _expire(doc["_id"], entry, outstayed_reason(entry, doc["_id"], hold)):
                refused.append(entry["id"])
    return refused


async def _expire(waited_for: str, entry: dict[str, Any], reason: str) -> bool:
    refusal = late_refusal(entry, reason)
    assert isinstance(refusal[0], EventRejectedEvent)
    taken: list[dict[str, Any]] = []

    async def effect(session: AsyncClientSession) -> list[Outgoing]:
        taken[:] = await units.unhold(waited_for, {entry["key"]}, session)
        return refusal if taken else []

    await service.process(refusal[0], effect)
    return bool(taken)


async def run_hold_sweeps() -> None:
    # Replicas: leased (one replica sweeps; ``shared.leases``). Idempotent as well: each
    # refusal first takes its statement off the waiting list in its transaction.
    await run_leased_rounds(
        service.db,
        "registry-hold-sweep",
        lambda: expire_held(datetime.now(UTC)),
        settings.hold_sweep_interval_s,
        "hold sweep",
        log,
    )


service.background.append(run_hold_sweeps)


@service.consumes(REGISTRY_EVENTS, HoursCreditedEvent, title="registry.events:hours-credited")
async def on_hours_credited(event: HoursCreditedEvent) -> None:
    """Service hours credited to a volunteer (志愿服务时长): one ledger entry per volunteer,
    activity and basis, so a re-credit replaces rather than adds."""
    data = event.data

    async def effect(session: AsyncClientSession) -> list[CloudEvent[Any]]:
        await units.credit(
            f"{data.volunteer_id}|{data.activity_id}|{data.basis}",
            {**data.model_dump(), "event": event.key},
            session,
        )
        return []

    await service.process(event, effect)


# ----------------------------------------------------------------------------- spreadsheets


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    held: int = 0
    errors: list[RowError] = field(default_factory=list)


async def import_units(
    rows: list[tuple[int, UnitRegisteredV2]], who: Publisher, file_errors: list[RowError]
) -> ImportReport:
    """Each row goes through exactly the rules of an event (it *is* an event, from the
    importer): its id is the hash of its content, so importing the same file again is a
    duplicate of every row and changes nothing. Parents first, so a file is self-contained."""
    report = ImportReport(errors=list(file_errors))
    depth = _depths([d for _, d in rows])
    now = datetime.now(UTC)
    for number, data in sorted(rows, key=lambda r: (depth[r[1].unit_id], r[0])):
        event = UnitRegisteredV2Event(
            id=hashlib.sha256(data.model_dump_json().encode()).hexdigest()[:40],
            source=f"/wmsj/registry/import/{who.user}",
            time=now,
            subject=data.unit_id,
            data=data,
        )
        before = await units.get(data.unit_id)
        try:
            handled = await service.process(event, _registering(event, who))
        except InvalidEvent as refusal:
            column = refusal.__cause__.column if isinstance(refusal.__cause__, RefusedUnit) else "unit_id"
            report.errors.append(RowError(number, column, refusal.reason))
            continue
        after = await units.get(data.unit_id)
        if not handled or after == before:
            report.unchanged += 1 if after is not None else 0
            report.held += 1 if after is None else 0
        else:
            report.imported += 1
    report.errors.sort(key=lambda e: (e.row, e.column))
    return report


def _registering(event: UnitRegisteredV2Event, who: Publisher) -> Effect:
    async def effect(session: AsyncClientSession) -> list[Outgoing]:
        return await register_unit(event, who, session)

    return effect


def _depths(statements: list[UnitRegisteredV2]) -> dict[str, int]:
    """How deep each unit of a file is in the file's own tree (0: its parent is not in it)."""
    parents = {d.unit_id: d.parent_id for d in statements}
    depth: dict[str, int] = {}
    for unit_id in parents:
        seen: set[str] = set()
        node: str | None = parents[unit_id]
        n = 0
        while node is not None and node in parents and node not in seen:
            seen.add(node)
            node = parents[node]
            n += 1
        depth[unit_id] = n
    return depth


async def import_volunteers(
    rows: list[tuple[int, VolunteerRegistered]], who: Publisher, file_errors: list[RowError]
) -> ImportReport:
    """Volunteers in bulk: the same rules as ``register_volunteer``, checked row by row
    against the registry read once, then written in batches. A row that states what is
    already stored is left alone, so re-importing a file changes nothing."""
    report = ImportReport(errors=list(file_errors))
    pii = vault()
    now = datetime.now(UTC)
    known = {u.unit_id: u for u in await units.search()}
    current = await units.all_volunteers()
    holders = {v.id_card_fingerprint: v.volunteer_id for v in current.values()}
    seen_ids: set[str] = set()
    changed = []
    for number, data in rows:
        if data.volunteer_id in seen_ids:
            report.errors.append(
                RowError(number, "volunteer_id", "the same volunteer_id is on an earlier row")
            )
            continue
        unit = known.get(data.unit_id)
        scoped = [(data.unit_id, unit)] + [(t, known.get(t)) for t in data.team_ids]
        reason = next(
            (r for uid, u in scoped if u is not None and (r := who.may_not_publish_about(uid, u.owner))), None
        )
        if reason:
            report.errors.append(RowError(number, "unit_id", reason))
            continue
        previous = current.get(data.volunteer_id)
        if previous is not None and previous.stated == pii.fingerprint(data.model_dump_json()):
            seen_ids.add(data.volunteer_id)
            report.unchanged += 1
            continue
        fingerprint = pii.fingerprint(data.id_card)
        try:
            volunteer = apply_volunteer(
                previous,
                data,
                now,
                unit=unit,
                teams={t: known[t] for t in data.team_ids if t in known},
                holder_of_card=holders.get(fingerprint),
                vault=pii,
                sender_township=who.township_id,
            )
        except RefusedUnit as refusal:
            report.errors.append(RowError(number, refusal.column, str(refusal)))
            continue
        seen_ids.add(data.volunteer_id)
        holders[fingerprint] = data.volunteer_id
        if volunteer is not None:
            changed.append(volunteer)
    # Announced first (staged in the outbox), then stored: a crash in between announces a
    # volunteer the registry then lacks until the file is imported again, never the reverse
    # (a volunteer stored whose hours could never be credited).
    async with service.mongo.start_session() as session:
        await stage(service.db, enrolled(changed), session)
    await units.put_volunteers(changed)
    service.outbox.wake()
    report.imported = len(changed)
    report.errors.sort(key=lambda e: (e.row, e.column))
    return report


# ----------------------------------------------------------------------------- unrouted


async def _raw(message: RabbitMessage, _original: object) -> bytes:
    return message.body


@service.broker.subscriber(
    REGISTRY_UNROUTED,
    decoder=_raw,
    ack_policy=AckPolicy.REJECT_ON_ERROR,
    no_reply=True,
    title="registry.unrouted:unknown-type",
    include_in_schema=False,
)
async def on_unrouted(body: bytes, message: RabbitMessage) -> None:
    """A message on the ingress exchange whose routing key no service owns."""
    known = ", ".join(e.TYPE for e in TOWNSHIP_EVENTS)
    raise InvalidEvent(
        f"no service accepts routing key {message.raw_message.routing_key!r} on the ingress "
        f"exchange; township systems may publish: {known} (routing key = event type)",
        location="type",
    )


def township_admin() -> BrokerAdmin:
    return BrokerAdmin(settings.amqp_url, settings.management, settings.public_amqp_url)


def create_app() -> FastAPI:
    def routes(app: FastAPI) -> None:
        app.include_router(api.router(units, import_units, import_volunteers))
        app.include_router(township_routes.router(township_admin, api.CALLER))
        township_routes.allow_dashboard(app, settings.dashboard_origins)
        api.limit_imports(app)

    return service.http_app("wmsj registry", routes)


asyncapi = service.asyncapi("Units and volunteers of the civilization-practice programme: who is who.")
