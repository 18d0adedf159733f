"""``wmsj replay SERVICE [--from TIME]``: rebuild one service's database from the event
archive (``shared.archive``) into a fresh database.

The service's own handlers do the work, in this process, against a database of another
prefix: what it learned from other services (the facts on ``wmsj.events`` its queues are
bound to) is handled as it was live, and what it accepted itself (its accepted statements,
re-published on ``wmsj.events``) is applied again without the checks it passed the first time
(the publisher's scope: it is applied as the office's). What the handlers would publish is
not published (the live service did): the fresh database's outbox is emptied at the end.

Replayable: supervision (every fact it scores from, and the office's inspections) and
activities (units, enrolled volunteers and stored evidence; project lists, activities, orders and attendance as accepted; escalations
and monthly warnings as issued). The registry keeps volunteers' personal data, which is never
published, and the evidence service copies files at submission: neither is rebuilt from
events alone (their databases are backed up; docs/reliability.md).
"""

from __future__ import annotations

import importlib
import os
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from shared.archive import read_archive
from shared.events import CloudEvent, parse_event
from shared.identity import Publisher

REPLAYABLE = ("supervision", "activities")
Apply = Callable[[CloudEvent[Any]], Awaitable[object]]


@dataclass
class Replayed:
    database: str
    read: int = 0
    applied: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # why -> how many


def _union_types(annotated: Any) -> tuple[type, ...]:
    """The event classes of an ``Annotated[A | B, Field(discriminator=...)]``."""
    return tuple(typing.get_args(typing.get_args(annotated)[0]))


def _supervision(app: ModuleType) -> Callable[[CloudEvent[Any]], Apply | None]:
    facts = _union_types(app.FactEvent)
    source = app.service.bus.source

    def route(event: CloudEvent[Any]) -> Apply | None:
        if isinstance(event, facts):
            return app.on_fact  # type: ignore[no-any-return]
        if isinstance(event, app.InspectionRecordedEvent) and event.source == source:
            return app.record_inspection  # type: ignore[no-any-return]
        return None

    return route


def _activities(app: ModuleType) -> Callable[[CloudEvent[Any]], Apply | None]:
    submissions = _union_types(app.Submission)
    facts = _union_types(app.FactEvent)  # what its consumers learn from other services
    source = app.service.bus.source
    replayer = Publisher("wmsj-replay", None)  # accepted once: not judged again

    async def apply_accepted(event: CloudEvent[Any]) -> None:
        await app.handle(event, replayer, None)

    def route(event: CloudEvent[Any]) -> Apply | None:
        if isinstance(event, facts):
            return app.on_fact  # type: ignore[no-any-return]
        if event.source != source:
            return None
        if isinstance(event, submissions):
            return apply_accepted
        if isinstance(event, app.OrderEscalatedEvent):
            return app.apply_escalation  # type: ignore[no-any-return]
        if isinstance(event, app.MonthlyWarningEvent):
            return app.restore_warning  # type: ignore[no-any-return]
        return None  # derived (ratings counted, hours credited): derived again

    return route


ROUTES = {"supervision": _supervision, "activities": _activities}


async def replay(
    service: str, amqp_url: str, into_prefix: str, since: datetime | str = "first", idle_s: float = 3.0
) -> Replayed:
    """Rebuild ``service``'s database as ``{into_prefix}{service}`` (which must be empty)
    from the archive, from ``since``. Call once per process: the service's module is
    configured at import, from the environment."""
    if service not in REPLAYABLE:
        raise ValueError(
            f"{service} cannot be rebuilt from the archive (replayable: {', '.join(REPLAYABLE)})"
        )
    if not re.fullmatch(r"[A-Za-z0-9_]+", into_prefix):
        raise ValueError(f"not a database prefix: {into_prefix!r}")
    os.environ["WMSJ_DB_PREFIX"] = into_prefix  # read when the service's module is imported
    app = importlib.import_module(f"services.{service}.app")
    svc = app.service
    done = Replayed(svc.db.name)
    if await svc.db.list_collection_names():
        raise ValueError(f"database {svc.db.name} is not empty: replay builds a fresh one")
    from shared.mongo import ensure_common_indexes

    await ensure_common_indexes(svc.db)
    for hook in svc.on_start:
        await hook()
    route = ROUTES[service](app)
    try:
        async for body, _key in read_archive(amqp_url, since, idle_s):
            done.read += 1
            try:
                event = parse_event(body)
            except (ValidationError, ValueError):
                done.skipped["not an event of the contract"] = (
                    done.skipped.get("not an event of the contract", 0) + 1
                )
                continue
            apply = route(event)
            if apply is None:
                continue
            await apply(event)
            done.applied += 1
        if service == "supervision":
            await app.rescore_all_marked()  # the rescorer's work, done once at the end
        await svc.db.outbox.delete_many({})  # published by the live service already
    finally:
        await svc.mongo.close()
    return done
