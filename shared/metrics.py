"""Prometheus metrics of one service, served on ``/metrics`` (shared/service.py).

Each service has its own registry (the tests run all four in one process), holding:

- FastStream's consumer metrics (``faststream_*``: messages received, processed, their size
  and duration per queue), from its Prometheus middleware;
- the domain's: every consumed event by type, township and outcome (``handled``, ``held``,
  ``duplicate``, ``refused``, ``failed``), the handler's latency, the delivery latency (from
  the message's AMQP timestamp to handled), and transient failures of MongoDB and S3;
- gauges read from the database at each scrape: the outbox, held events, and whatever the
  service adds (supervision: the rescoring backlog).

Label values are bounded: an event type is one the contract knows (else ``unknown``), a
township is the broker-validated user of a township system (else ``office`` or ``platform``).
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from faststream import BaseMiddleware
from faststream.exceptions import AckMessage, RejectMessage
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from shared.events import EVENT_TYPES
from shared.identity import TOWNSHIP_USER_PREFIX, IdentitySettings
from shared.topology import INGRESS

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# Where a handler says what became of its event (held, duplicate) for the middleware that
# counts it: a mutable cell, so that a change made in a copied context is still seen.
_outcome: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("wmsj_outcome", default=None)


def mark(outcome: str) -> None:
    """Record what became of the event being handled (``held``, ``duplicate``); no-op outside
    a consumer (a released held event, an HTTP import)."""
    cell = _outcome.get()
    if cell is not None:
        cell[0] = outcome


def event_type_label(value: str | None) -> str:
    return value if value in EVENT_TYPES else "unknown"


def township_label(user: str | None, offices: frozenset[str], from_townships: bool) -> str:
    """The sending township's id; ``office``; ``unidentified`` for an ingress message without
    a user (refused); ``platform`` for the services' own events."""
    if user and user.startswith(TOWNSHIP_USER_PREFIX) and len(user) > len(TOWNSHIP_USER_PREFIX):
        return user.removeprefix(TOWNSHIP_USER_PREFIX)
    if user and user in offices:
        return "office"
    return "unidentified" if from_townships and not user else "platform"


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.events = Counter(
            "wmsj_events",
            "Events consumed, by type, sending township and outcome",
            ["service", "type", "township", "outcome"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "wmsj_handler_seconds",
            "Time to handle one consumed event (until it may be acknowledged)",
            ["service", "type"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "wmsj_delivery_seconds",
            "From the message's AMQP timestamp (when it was published) to handled",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_errors = Counter(
            "wmsj_store_errors",
            "Transient failures of MongoDB and S3 (each retried)",
            ["service", "store"],
            registry=self.registry,
        )
        self.analysis_seconds = Histogram(
            "wmsj_evidence_analysis_seconds",
            "Time to analyse an uploaded photo (hash, EXIF, thumbnail)",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backlog = Gauge(
            "wmsj_backlog", "Work waiting, read at scrape time", ["service", "what"], registry=self.registry
        )
        self._gauges: dict[str, Callable[[], Awaitable[int]]] = {}
        self._offices = IdentitySettings().offices

    def gauge(self, what: str, read: Callable[[], Awaitable[int]]) -> None:
        """Report ``read()`` as ``wmsj_backlog{what=...}`` at every scrape."""
        self._gauges[what] = read

    async def render(self) -> bytes:
        for what, read in self._gauges.items():
            try:
                self.backlog.labels(self.service, what).set(await read())
            except Exception:  # the database is down: the scrape still answers, the gauge goes stale
                logging.getLogger(f"wmsj.{self.service}").warning("metrics: cannot read %s", what)
        return generate_latest(self.registry)

    @contextmanager
    def analysing(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.analysis_seconds.labels(self.service).observe(time.perf_counter() - start)

    def middleware(self) -> type[BaseMiddleware[Any, Any]]:
        """Counts every consumed message by outcome; add it before the rejecting middleware,
        which marks the refusals (and failures) it answers and acknowledges."""
        metrics = self

        class CountEvents(BaseMiddleware[Any, Any]):
            async def consume_scope(self, call_next: Callable[..., Awaitable[Any]], msg: Any) -> Any:
                raw = getattr(msg, "raw_message", None)
                event_type = event_type_label(getattr(raw, "routing_key", None))
                from_townships = getattr(raw, "exchange", None) == INGRESS.name
                township = township_label(getattr(raw, "user_id", None), metrics._offices, from_townships)
                cell = ["handled"]
                token = _outcome.set(cell)
                start = time.perf_counter()
                try:
                    result = await call_next(msg)
                except RejectMessage:
                    cell[0] = "refused"
                    raise
                except AckMessage:  # answered and acknowledged: the outcome is what was marked
                    raise
                except BaseException:
                    cell[0] = "failed"
                    raise
                finally:
                    _outcome.reset(token)
                    metrics.events.labels(metrics.service, event_type, township, cell[0]).inc()
                    metrics.handler_seconds.labels(metrics.service, event_type).observe(
                        time.perf_counter() - start
                    )
                if (sent := getattr(raw, "timestamp", None)) is not None:
                    if sent.tzinfo is None:
                        sent = sent.replace(tzinfo=UTC)
                    delay = (datetime.now(UTC) - sent).total_seconds()
                    metrics.delivery_seconds.labels(metrics.service).observe(max(delay, 0.0))
                return result

        return CountEvents

    def count_store_errors(self) -> logging.Handler:
        """A log handler that counts the transient failures ``retry_transient`` logs (by the
        failing store), so that the retry loop needs to know nothing of metrics."""
        metrics = self

        class CountRetries(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                error = record.args[-1] if isinstance(record.args, tuple) and record.args else None
                module = type(error).__module__ if error is not None else ""
                if module.startswith(("pymongo", "bson")):
                    metrics.store_errors.labels(metrics.service, "mongo").inc()
                elif module.startswith(("minio", "urllib3")):
                    metrics.store_errors.labels(metrics.service, "s3").inc()

        handler = CountRetries(logging.WARNING)
        handler.addFilter(
            lambda record: "failed (attempt" in record.msg if isinstance(record.msg, str) else False
        )
        return handler
