"""Traces (OpenTelemetry) that follow an event across the services.

The W3C ``traceparent`` travels *in the event*, as the CloudEvents distributed-tracing
extension attribute (``CloudEvent`` allows extension attributes), so it is stored with each
outbox entry and survives a crash between storing and publishing. Every consumer continues
the trace of the event it handles (a span per handled event), and every event a handler
stores carries that span's ``traceparent``: a township's event and what it caused in
activities, evidence and supervision are one trace. A township may send its own
``traceparent``; without one, the first service starts the trace.

Spans are exported only when ``WMSJ_OTLP_ENDPOINT`` is set (OTLP over HTTP, e.g.
``http://otel-collector:4318/v1/traces``); otherwise the API's no-op tracer costs nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from faststream import BaseMiddleware
from opentelemetry import context, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.events import EVENT_TYPES, CloudEvent
from shared.mongo import Reply

_PROPAGATOR = TraceContextTextMapPropagator()
tracer = trace.get_tracer("wmsj")


def setup_tracing(service: str, endpoint: str | None) -> None:
    """Export this process's spans by OTLP/HTTP to ``endpoint`` (``WMSJ_OTLP_ENDPOINT``), if set."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"wmsj-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    logging.getLogger(f"wmsj.{service}").info("exporting traces to %s", endpoint)


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def with_traceparent(event: CloudEvent[Any], traceparent: str | None = None) -> CloudEvent[Any]:
    """``event`` carrying ``traceparent``, by default the current span's (unchanged outside
    a span)."""
    traceparent = traceparent or current_traceparent()
    if traceparent is None or (event.model_extra or {}).get("traceparent") == traceparent:
        return event
    return event.model_copy(update={"traceparent": traceparent})


def traced_outgoing(items: Sequence[Any], traceparent: str | None = None) -> list[Any]:
    """What a handler stores (events, or ``Reply``s wrapping one), stamped with the trace:
    ``traceparent``, taken where the handler ran (a batch runs effects in its own task, outside
    the handler's span), or else the current span's."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, CloudEvent):
            out.append(with_traceparent(item, traceparent))
        elif isinstance(item, Reply):
            out.append(dataclasses.replace(item, event=with_traceparent(item.event, traceparent)))
        else:
            out.append(item)
    return out


@contextmanager
def continued(
    name: str, traceparent: str | None, links: Sequence[str | None] = (), **attributes: str
) -> Iterator[str | None]:
    """A span continuing ``traceparent`` (a trace stored earlier, e.g. with a mark), linked to
    the other stored traces in ``links``; yields its own traceparent, for what it stores."""
    parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else context.Context()
    linked = []
    for other in dict.fromkeys(link for link in links if link and link != traceparent):
        span_context = trace.get_current_span(_PROPAGATOR.extract({"traceparent": other})).get_span_context()
        if span_context.is_valid:
            linked.append(trace.Link(span_context))
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.PRODUCER, links=linked, attributes=attributes
    ):
        yield current_traceparent()


def _traceparent_in(body: bytes) -> str | None:
    try:
        value = json.loads(body).get("traceparent")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) and len(value) <= 128 else None


def middleware(service: str) -> type[BaseMiddleware[Any, Any]]:
    """A span around each consumed message, continuing the event's own trace."""

    class TraceEvents(BaseMiddleware[Any, Any]):
        async def consume_scope(self, call_next: Callable[..., Awaitable[Any]], msg: Any) -> Any:
            raw = getattr(msg, "raw_message", None)
            routing_key = getattr(raw, "routing_key", None)
            event_type = routing_key if routing_key in EVENT_TYPES else "unknown"
            traceparent = _traceparent_in(getattr(raw, "body", b"") or b"")
            parent = _PROPAGATOR.extract({"traceparent": traceparent}) if traceparent else context.Context()
            with tracer.start_as_current_span(
                f"{service} handle {event_type}",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.destination.name": str(getattr(raw, "exchange", "") or ""),
                    "wmsj.service": service,
                    "wmsj.event_type": event_type,
                    "wmsj.event_id": str(getattr(raw, "message_id", "") or ""),
                },
            ):
                return await call_next(msg)

    return TraceEvents
