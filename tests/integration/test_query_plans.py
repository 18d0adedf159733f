"""Every query a hot path sends is served by an index on the MongoDB-wire server in use.

The stores are driven the way the handlers, the rescorer and the HTTP API drive them; every
command they send is recorded (its filter, exactly as the code built it) and explained. A
COLLSCAN fails the test: on the local server one scan of 20,000 photos cost ≈ 1.3 s, where
the same lookup served by its index cost a few milliseconds (issue 11). Only listings of a
whole collection (which read every document anyway) and start-up work may scan; they are
named below, so that a new scan is a decision, not an accident.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from services.evidence.domain import hash_bands
from services.evidence.store import EvidenceStore
from services.supervision.domain import ItemResult, Score
from services.supervision.store import FactStore, RescoreQueue, ScoreStore
from shared.events import KeyProject
from shared.mongo import ensure_common_indexes, handle_once
from tests.conftest import Infra

pytestmark = pytest.mark.integration

Query = tuple[str, str, dict[str, Any], dict[str, Any] | None]  # op, collection, filter, sort

# Whole-collection reads that may scan: (collection, the filter as JSON).
LISTINGS = {
    ("units", "{}"),  # supervision: every unit (the API's tables), read once per request
    ("inspections", "{}"),  # supervision: a full recompute's list of unit-years
    ("scores", "{}"),  # supervision: the rules versions kept, once at start
    ("to_rescore", "{}"),  # the marks pending (count), for health and benchmarks
    ("outbox", "{}"),  # only what is pending; deleted once published
}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.queries: list[Query] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        cmd, name = event.command, event.command_name
        if name == "find":
            self.queries.append(("find", cmd["find"], dict(cmd.get("filter", {})), cmd.get("sort")))
        elif name == "count":
            self.queries.append(("count", cmd["count"], dict(cmd.get("query", {})), None))
        elif name == "aggregate" and cmd.get("pipeline") and "$match" in cmd["pipeline"][0]:
            self.queries.append(("aggregate", cmd["aggregate"], dict(cmd["pipeline"][0]["$match"]), None))
        elif name == "distinct":
            self.queries.append(("distinct", cmd["distinct"], dict(cmd.get("query", {})), None))
        elif name == "findAndModify":
            self.queries.append(("findAndModify", cmd["findAndModify"], dict(cmd["query"]), None))
        elif name == "update":
            self.queries += [("update", cmd["update"], dict(u["q"]), None) for u in cmd["updates"]]
        elif name == "delete":
            self.queries += [("delete", cmd["delete"], dict(d["q"]), None) for d in cmd["deletes"]]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def recorded(infra: Infra) -> AsyncIterator[tuple[AsyncMongoClient[Any], Recorder]]:
    recorder = Recorder()
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        infra.mongo_url, tz_aware=True, event_listeners=[recorder]
    )
    yield client, recorder
    await client.drop_database(f"{infra.run_id}_plans")
    await client.close()


def stages(plan: dict[str, Any]) -> list[str]:
    found = [plan.get("stage", "")]
    for key in ("inputStage", "queryPlan"):
        if key in plan:
            found += stages(plan[key])
    for child in plan.get("inputStages", []):
        found += stages(child)
    return found


async def scans(client: AsyncMongoClient[Any], db_name: str, queries: list[Query]) -> list[str]:
    db = client[db_name]
    bad = []
    seen = set()
    for op, collection, query, sort in queries:
        shape = (collection, json.dumps(query, default=str, sort_keys=True), json.dumps(sort, default=str))
        if shape in seen or (collection, shape[1]) in LISTINGS:
            continue
        seen.add(shape)
        cursor = db[collection].find(query)
        if sort:
            cursor = cursor.sort(list(sort.items()))
        plan = (await cursor.explain())["queryPlanner"]["winningPlan"]
        if "COLLSCAN" in stages(plan):
            bad.append(f"{op} {collection} {shape[1]} sort={shape[2]}")
    return bad


async def test_evidence_and_supervision_queries_are_served_by_indexes(
    infra: Infra, recorded: tuple[AsyncMongoClient[Any], Recorder]
) -> None:
    client, recorder = recorded
    db = client[f"{infra.run_id}_plans"]
    await ensure_common_indexes(db)
    evidence = EvidenceStore(db)
    facts, scores, marks = FactStore(db), ScoreStore(db), RescoreQueue(db)
    for store in (evidence, facts, scores, marks):
        await store.ensure_indexes()  # type: ignore[attr-defined]
    now = datetime(2020, 6, 30, tzinfo=UTC)
    stated = (now, "x")
    recorder.queries.clear()  # start-up work (index creation, migrations) may scan

    # --- evidence: the handlers' transaction, then the API's reads
    async with client.start_session() as session, await session.start_transaction():
        await evidence.put_unit("u1", "t1", stated, session)
        await evidence.put_schedule(
            {"activity_id": "a1", "unit_id": "u1", "project_id": "p1", "starts_at": now, "ends_at": now},
            stated,
            session,
        )
        await evidence.put_projects(2020, 1, [KeyProject.model_validate(_project("p1"))], session)
        await evidence.activities_of(["p1"], session)
        bands = hash_bands(0x0123456789ABCDEF)
        looked_up = await evidence.claim_fingerprints("f" * 64, bands, session)
        await evidence.candidates("f" * 64, looked_up, session)
        await evidence.put(
            {"_id": "e1", "activity_id": "a1", "sha256": "f" * 64, "dhash_bands": bands}, session
        )
        await evidence.get("e1", session)
        await evidence.activity("a1", session)
        await evidence.set_activity("a1", {"photos": 1}, session)
        await evidence.requirement("p1", session)
    await evidence.known_activity("a1")
    await evidence.unit("u1")
    await evidence.for_activity("a1")

    # --- supervision: a fact's transaction, the rescorer's batch, the API's reads
    async with client.start_session() as session, await session.start_transaction():
        await facts.put_unit({"unit_id": "u1", "name": "n", "kind": "village"}, stated, session)
        await facts.put_activity_part("a1", "u1", "completion", {"period": "2020-06"}, stated, session)
        await facts.add_evidence(
            "a1", "u1", {"evidence_id": "e1", "stored_at": now, "content_type": "image/jpeg"}, session
        )
        await facts.flag_evidence("a1", "u1", "e1", session)
        await facts.put_statement(
            "a1",
            None,
            "reviews",
            "evidence_id",
            {"evidence_id": "e1", "verdict": "accepted"},
            stated,
            session,
        )
        await facts.put_complete("a1", "u1", ["e1"], stated, session)
        await facts.indexed("e1", session)
        await facts.index_evidence("e1", {"activity_id": "a1"}, session)
        await facts.put_projects(2020, 1, [], session)
        await facts.put_inspection(
            {"inspection_id": "i1", "unit_id": "u1", "period": "2020-06", "inspected_at": now},
            stated,
            session,
        )
        await scores.years_of_unit("u1", session)
        await scores.units_in_year("2020", session)
        await marks.mark("u1", "2020", {"2020-06"}, now, session)
    ids = await marks.oldest(10)
    async with client.start_session() as session, await session.start_transaction():
        await marks.take(ids, session)
        unit_ids, months = ["u1", "u2"], [f"2020-{m:02d}" for m in range(1, 13)]
        await facts.units_by_id(unit_ids, session)
        await facts.completed_in_units(unit_ids, months, session)
        await facts.inspections_in_units(unit_ids, months, session)
        await facts.projects_of(2020, session)
        kept = await scores.of_units_year(unit_ids, "2020", session)
        score = Score("u1", "2020-06", 1.0, 100.0, 0.0, False, (ItemResult("r", "l", 1.0, 1.0, "", ()),), "v")
        await scores.put_many([(score, kept["u1"].get("2020-06"))], now, session)
        await scores.touch_year("u1", "2020", session)
        await scores.of_unit_year("u1", "2020", session)
    await facts.completed_in("u1", months)
    await facts.inspections_in("u1", months)
    await facts.years_of("u1")
    await scores.get("u1", "2020-06")
    await scores.for_period("2020-06")
    await scores.for_unit("u1")
    await facts.activity("a1")

    # --- the inbox: the look before slow work and the transaction's own look
    from shared.events import UnitRegisteredEvent

    event = UnitRegisteredEvent.model_validate(
        {
            "id": "x1",
            "source": "/townships/t1",
            "time": now - timedelta(days=1),
            "data": {"unit_id": "u1", "name": "n", "kind": "village"},
        }
    )

    async def effect(session: Any) -> list[Any]:
        return []

    await handle_once(client, db, event, effect)
    await db.inbox.find_one({"_id": event.key}, {"_id": 1})

    assert recorder.queries, "nothing was recorded"
    assert await scans(client, db.name, recorder.queries) == []


def _project(project_id: str) -> dict[str, Any]:
    return {"project_id": project_id, "theme": "t", "months": [6], "evidence": {"min_photos": 1}}
