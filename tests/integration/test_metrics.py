"""``/metrics`` of the services while a township publishes: the counts by type, township and
outcome are exactly what was published, accepted and refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import ModuleType
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.auth import DEV_OFFICE_KEY
from shared.events import UnitKind, UnitRegistered, UnitRegisteredEvent, new_event
from shared.onboarding import BrokerAdmin
from tests.conftest import Infra
from tests.support import Tap, town_code
from wmsj.client import TownshipClient

T0 = datetime(2020, 6, 1, tzinfo=UTC)
UNIT = UnitRegisteredEvent.TYPE


def registered(data: UnitRegistered, source: str) -> UnitRegisteredEvent:
    return new_event(UnitRegisteredEvent, data, source=source, time=T0)  # type: ignore[return-value]


async def scrape(app_module: ModuleType) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    app = app_module.create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
        assert (await client.get("/metrics")).status_code == 401  # the counts are the office's
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {DEV_OFFICE_KEY}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def events(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (name, got), v in samples.items() if name == "wmsj_events_total" and wanted <= set(got))


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30) -> None:
    """Wait until ``check()`` holds (the counters are bumped just after the reply goes out)."""
    deadline = asyncio.get_running_loop().time() + timeout
    for _ in iter(int, 1):
        if await check() or asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.1)


async def test_metrics_count_what_a_township_published_and_what_was_refused(
    infra: Infra, apps: dict[str, ModuleType], township: TownshipClient, tap: Tap
) -> None:
    a, b = town_code(), town_code()
    for unit in (a, b):
        await township.publish(
            registered(UnitRegistered(unit_id=unit, name="镇", kind=UnitKind.TOWN), "/office")
        )
    await tap.wait_for(lambda e: e.type == UNIT and e.subject in (a, b), count=2, timeout=30)
    before = {name: await scrape(apps[name]) for name in ("registry", "supervision")}

    async with BrokerAdmin(infra.amqp_url) as admin:
        access = await admin.add(a)
    parts = urlsplit(infra.amqp_url)
    netloc = f"{access.user}:{quote(access.password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    try:
        async with TownshipClient(urlunsplit(parts._replace(netloc=netloc))) as town_a:
            villages = [f"{a}{201 + i}" for i in range(3)]
            for village in villages:
                await town_a.publish(
                    registered(
                        UnitRegistered(unit_id=village, name="村", kind=UnitKind.VILLAGE, parent_id=a),
                        f"/townships/{a}",
                    )
                )
            # Two about another township's subtree: refused, with the reason on A's reply queue.
            for i in range(2):
                await town_a.publish(
                    registered(
                        UnitRegistered(
                            unit_id=f"{b}{201 + i}", name="村", kind=UnitKind.VILLAGE, parent_id=b
                        ),
                        f"/townships/{a}",
                    )
                )
            await tap.wait_for(lambda e: e.type == UNIT and e.subject in villages, count=3, timeout=30)
            assert len(await town_a.wait_for_rejections(2, timeout=30)) == 2
    finally:
        async with BrokerAdmin(infra.amqp_url) as admin:
            await admin.revoke(a)

    after: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}

    def delta(service: str, **labels: str) -> float:
        return events(after[service], service=service, **labels) - events(
            before[service], service=service, **labels
        )

    async def counted() -> bool:
        for name in ("registry", "supervision"):
            after[name] = await scrape(apps[name])
        return delta("registry", township=a) >= 5 and delta("supervision", type=UNIT, outcome="handled") >= 3

    await until(counted)
    # The registry: A's five events, three handled and two refused, under A's own id.
    assert delta("registry", type=UNIT, township=a, outcome="handled") == 3
    assert delta("registry", type=UNIT, township=a, outcome="refused") == 2
    assert delta("registry", township=a) == 5
    # Supervision: the three accepted units, as the platform's events (at least: other tests'
    # events may still be arriving in the same session; A's own are counted exactly above).
    assert delta("supervision", type=UNIT, township="platform", outcome="handled") >= 3
    # The rest of the page: latency, backlogs, FastStream's own consumer metrics.
    page = after["registry"]
    assert any(name == "wmsj_handler_seconds_count" for name, _ in page)
    assert ("wmsj_backlog", (("service", "registry"), ("what", "outbox"))) in page
    assert any(name.startswith("faststream_received_messages") for name, _ in page)
    assert ("wmsj_backlog", (("service", "supervision"), ("what", "rescoring"))) in after["supervision"]
