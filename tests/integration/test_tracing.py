"""Traces across the services (shared/tracing.py), with the OpenTelemetry SDK's in-memory
exporter: one township event is one trace, from its own span through activities (which
accepts it) to supervision (which scores the accepted fact) and the ``score updated`` its
rescorer publishes later, from the mark the fact left."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.events import (
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)
from shared.events.supervision import ScoreUpdatedEvent, ScoreUpdatedV2Event
from shared.tracing import current_traceparent, with_traceparent
from tests.support import Tap, town_code
from wmsj.client import TownshipClient


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once per process
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


async def test_one_township_event_is_one_trace_through_activities_and_supervision(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap, spans: InMemorySpanExporter
) -> None:
    town = town_code()
    await township.publish(
        new_event(
            UnitRegisteredEvent,
            UnitRegistered(unit_id=town, name="镇", kind=UnitKind.TOWN),
            source="/office",
            time=datetime.now(UTC),
        )
    )
    await tap.wait_for(lambda e: e.type == UnitRegisteredEvent.TYPE and e.subject == town, timeout=30)

    start = datetime.now(UTC) + timedelta(days=3)
    activity_id = f"act-{town}"
    event = new_event(
        ActivityScheduledEvent,
        ActivityScheduled(
            activity_id=activity_id,
            unit_id=town,
            title="宣讲",
            starts_at=start,
            ends_at=start + timedelta(hours=2),
        ),
        source="/office",
        time=datetime.now(UTC),
    )
    # The township's system starts the trace and sends its traceparent in the event.
    with trace.get_tracer("township").start_as_current_span("township publishes") as root:
        traced = with_traceparent(event)
        assert (traced.model_extra or {})["traceparent"] == current_traceparent()
        await township.publish(traced)
    trace_id = root.get_span_context().trace_id

    accepted = await tap.wait_for(
        lambda e: e.type == ActivityScheduledEvent.TYPE and e.subject == activity_id, timeout=30
    )
    # The accepted fact carries the trace on, as stored in activities' outbox.
    assert f"{trace_id:032x}" in (accepted[0].model_extra or {})["traceparent"]

    def in_trace(name: str) -> list[str]:
        return [
            s.name
            for s in spans.get_finished_spans()
            if s.context is not None and s.context.trace_id == trace_id and s.name.startswith(name)
        ]

    # Supervision handles the accepted fact after activities published it: wait for its span.
    await tap.wait_for(lambda _: bool(in_trace("supervision handle")), timeout=30)
    assert in_trace("activities handle") == [f"activities handle {ActivityScheduledEvent.TYPE}"]
    assert in_trace("supervision handle") == [f"supervision handle {ActivityScheduledEvent.TYPE}"]
    # Nothing else of this test joined the township's trace (the unit registered before it).
    assert not in_trace("registry handle")


async def test_a_township_event_and_the_score_it_changed_are_one_trace(
    apps: dict[str, ModuleType], township: TownshipClient, tap: Tap, spans: InMemorySpanExporter
) -> None:
    town = town_code()
    await township.publish(
        new_event(
            UnitRegisteredEvent,
            UnitRegistered(unit_id=town, name="镇", kind=UnitKind.TOWN),
            source="/office",
            time=datetime.now(UTC),
        )
    )
    await tap.wait_for(lambda e: e.type == UnitRegisteredEvent.TYPE and e.subject == town, timeout=30)

    now = datetime.now(UTC)
    completed = new_event(
        ActivityCompletedEvent,
        ActivityCompleted(
            activity_id=f"done-{town}",
            unit_id=town,
            ended_at=now - timedelta(hours=1),
            volunteers=5,
            service_hours=10,
        ),
        source="/office",
        time=now,
    )
    with trace.get_tracer("township").start_as_current_span("township publishes") as root:
        await township.publish(with_traceparent(completed))
    trace_id = f"{root.get_span_context().trace_id:032x}"

    # The rescorer publishes the score in its own loop, after the handler marked the month:
    # the score events (v2, and v1 for the month) continue the township's trace.
    def scored(e: object) -> bool:
        return (
            getattr(e, "type", None) in (ScoreUpdatedEvent.TYPE, ScoreUpdatedV2Event.TYPE)
            and getattr(e, "subject", None) == town
            and trace_id in ((getattr(e, "model_extra", None) or {}).get("traceparent") or "")
        )

    found = await tap.wait_for(scored, count=2, timeout=60)
    assert {e.type for e in found} == {ScoreUpdatedEvent.TYPE, ScoreUpdatedV2Event.TYPE}

    in_trace = {
        s.context.span_id: s
        for s in spans.get_finished_spans()
        if s.context is not None and f"{s.context.trace_id:032x}" == trace_id
    }
    # The score events name as their parent one span, the publication, in that trace.
    (parent_id,) = {int((e.model_extra or {})["traceparent"].split("-")[2], 16) for e in found}
    publication = in_trace[parent_id]
    assert publication.name == "supervision publish wmsj.score.updated"
    assert publication.attributes is not None and publication.attributes["wmsj.unit_id"] == town
    # Its parent is supervision's handling of the accepted fact, itself under activities'.
    assert publication.parent is not None
    handled = in_trace[publication.parent.span_id]
    assert handled.name == f"supervision handle {ActivityCompletedEvent.TYPE}"
    assert {s.name for s in in_trace.values()} >= {
        "township publishes",
        f"activities handle {ActivityCompletedEvent.TYPE}",
    }
