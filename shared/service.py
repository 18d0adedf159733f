"""What every service process is made of: a broker, a database, an outbox relay, and an HTTP
app carrying the service's API plus liveness and readiness probes (used by compose)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Response
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from faststream.specification import AsyncAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared import metrics as metrics_
from shared import tracing
from shared.auth import Caller, current_caller
from shared.events import CloudEvent, derived_id
from shared.messaging import (
    SENDER,
    EventBus,
    configure_retries,
    event_decoder,
    make_broker,
    rejecting_middleware,
    retry_transient,
)
from shared.mongo import (
    INBOX_LOOK,
    Document,
    Effect,
    MongoUnitOfWork,
    Outbox,
    connect,
    ensure_common_indexes,
    seen_before,
)
from shared.openapi import document
from shared.pii import scrub
from shared.settings import CommonSettings, InsecureSettings, refuse_insecure_settings
from shared.topology import EVENTS, declare_topology
from shared.uow import Batcher

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"color_message"}


class JsonLines(logging.Formatter):
    """One JSON object per line, with whatever ``extra=`` fields (event_id, …) the call gave."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # Personal data never reaches a log, whatever a library put in a message or traceback.
        return scrub(json.dumps(line, ensure_ascii=False, default=str))


def setup_logging(service: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


@dataclass
class Service:
    """The infrastructure of one service; its app module adds subscribers and routes."""

    name: str
    settings: CommonSettings
    broker: RabbitBroker = field(init=False)
    bus: EventBus = field(init=False)
    mongo: AsyncMongoClient[Document] = field(init=False)
    db: AsyncDatabase[Document] = field(init=False)
    outbox: Outbox = field(init=False)
    metrics: metrics_.ServiceMetrics = field(init=False)
    batcher: Batcher = field(init=False)
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    publishes: list[type[CloudEvent[Any]]] = field(default_factory=list)
    readiness: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Long-running tasks (timers) run while the service runs, started after the consumers.
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        configure_retries(self.settings.retry_max_delay_s)
        self.broker = make_broker(self.settings.amqp_url, self.name, self.settings.prefetch)
        self.bus = EventBus(self.broker, self.name)
        self.broker.add_middleware(rejecting_middleware(self.bus))
        self.mongo = connect(self.settings.mongo_url)
        self.db = self.mongo[f"{self.settings.db_prefix}{self.name}"]  # each service owns its database
        self.outbox = Outbox(self.db, self.bus)
        # Metrics (/metrics): outermost, so they see what the rejecting middleware made of a message.
        self.metrics = metrics_.ServiceMetrics(self.name)
        self.broker.insert_middleware(self.metrics.middleware())
        self.broker.insert_middleware(tracing.middleware(self.name))  # outermost: the span covers it all
        self.broker.insert_middleware(
            RabbitPrometheusMiddleware(registry=self.metrics.registry, app_name=self.name)
        )
        self.metrics.gauge("outbox", self.outbox.pending)
        self.metrics.gauge("held", lambda: self.db.held.count_documents({}))
        logging.getLogger("wmsj.messaging").addHandler(self.metrics.count_store_errors())
        self.batcher = Batcher(
            MongoUnitOfWork(self.mongo, self.db),
            batch_size=self.settings.batch_size,
            wait_s=self.settings.batch_wait_ms / 1000,
            retry_max_delay_s=self.settings.retry_max_delay_s,
            name=f"{self.name} events",
        )

    async def already_handled(self, event: CloudEvent[Any]) -> bool:
        """A cheap look before slow work; ``process`` still decides, inside its transaction."""
        found = await retry_transient(
            lambda: self.db.inbox.find_one({"_id": event.key}, INBOX_LOOK),
            what="inbox lookup",
            max_delay=self.settings.retry_max_delay_s,
        )
        return seen_before(found, event)  # InvalidEvent: the same key with another body

    async def process(self, event: CloudEvent[Any], effect: Effect) -> bool:
        """Handle ``event`` once: its effects and outgoing events are stored in one
        transaction with those of the other events being handled at the moment (a batch,
        ``shared.uow``; retried while the database is down), then the outbox is relayed.
        Returns False for a duplicate; raises what ``effect`` raised if it refused the
        event (the rest of its batch is stored). The caller's message is acked only after
        this."""
        # What the handler stores carries this span's traceparent (shared/tracing.py), taken
        # here: the batch runs the effect in its own task, outside the handler's span.
        traceparent = tracing.current_traceparent()

        async def traced(session: Any) -> Any:
            return tracing.traced_outgoing(await effect(session), traceparent)

        handled = await self.batcher.submit(event, traced)
        if not handled:
            metrics_.mark("duplicate")
        logging.getLogger(f"wmsj.{self.name}").info(
            "handled" if handled else "duplicate ignored",
            extra={
                "event_id": event.id,
                "event_source": event.source,
                "event_type": event.type,
                "sender": SENDER.get(),  # the broker-validated one (None: the platform's own event)
            },
        )
        # The outgoing events are stored with the effects; the relay publishes them (in a
        # batch with other handlers' events) and retries while the broker refuses them.
        self.outbox.wake()
        return handled

    def accepted(self, submission: CloudEvent[Any], subject: str) -> CloudEvent[Any]:
        """The accepted fact, re-published under this service's name. Its id derives from
        the submission's, so handling the submission again republishes the *same* event."""
        return type(submission)(  # type: ignore[call-arg]  # ``type``: the subclass's default
            id=derived_id(submission.key, "accepted"),
            source=self.bus.source,
            time=submission.time,
            subject=subject,
            data=submission.data,
        )

    def consumes(self, queue: RabbitQueue, *accepted: type[CloudEvent[Any]], title: str) -> Any:
        """Subscribe a handler to ``queue`` for the ``accepted`` event types, the one way every
        handler must: the message passes the door and the body is checked against the
        contract (``shared.messaging``: a refusal becomes an ``event rejected`` on the bus
        and on the sender's own reply queue), the message is acknowledged only after the
        handler returns, and nothing is ever answered on ``reply_to`` (that queue is the
        sender's, for rejections; the door has replaced it with the sender's own)."""
        return self.broker.subscriber(
            queue,
            decoder=event_decoder(*accepted),
            ack_policy=AckPolicy.REJECT_ON_ERROR,
            no_reply=True,
            title=title,
        )

    def documents_publishing(self, *events: type[CloudEvent[Any]]) -> None:
        """Register what this service publishes on wmsj.events, so its AsyncAPI document
        shows it (and a test checks that a queue is bound to each)."""
        self.publishes += events
        for event in events:
            self.broker.publisher(
                exchange=EVENTS,
                routing_key=event.TYPE,
                title=f"{event.TYPE}:publish",
                description=event.__doc__,
                schema=event,
            )

    def asyncapi(self, description: str) -> AsyncAPI:
        return AsyncAPI(
            self.broker,
            title=f"wmsj {self.name}",
            version="1.0.0",
            description=description,
            schema_version="3.0.0",
        )

    async def check_ready(self) -> None:
        await self.mongo.admin.command("ping")
        if not await self.broker.ping(timeout=2):
            raise ConnectionError("broker not reachable")
        for check in self.readiness:
            await check()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start in dependency order: topology, indexes, the service's own start hooks, then
        consumers (so no event is consumed before the store is ready), then the relay."""
        refuse_insecure_settings(self.settings)
        await self.broker.connect()
        if self.settings.declare_topology:
            await declare_topology(self.broker)
        await ensure_common_indexes(self.db)
        for hook in self.on_start:
            await hook()
        await self.broker.start()
        relay = asyncio.create_task(self.outbox.run_forever(), name=f"{self.name}-outbox")
        tasks = [relay, *(asyncio.create_task(run(), name=f"{self.name}-task") for run in self.background)]
        logging.getLogger(f"wmsj.{self.name}").info("started")
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.batcher.close()
            for hook in self.on_stop:
                await hook()
            await self.broker.stop()
            await self.mongo.close()

    def http_app(self, title: str, routes: Callable[[FastAPI], None] | None = None) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with self.running():
                yield

        app = FastAPI(title=title, lifespan=lifespan)

        @app.get("/health/live", tags=["health"])
        async def live() -> dict[str, str]:
            return {"status": "alive", "service": self.name}

        @app.get("/health/ready", tags=["health"], responses={503: {"description": "Not ready: the reason."}})
        async def ready(response: Response) -> dict[str, str]:
            try:
                await asyncio.wait_for(self.check_ready(), timeout=5)
            except Exception as error:
                response.status_code = 503
                return {
                    "status": "not ready",
                    "service": self.name,
                    "reason": str(error) or type(error).__name__,
                }
            return {"status": "ready", "service": self.name}

        @app.get("/metrics", tags=["health"], include_in_schema=False)
        async def metrics(caller: Annotated[Caller, current_caller()]) -> Response:
            """Prometheus text format (shared/metrics.py), for an office key only: the counts
            are per township, which is more than one township may know of the others
            (Prometheus sends the key from a file: deploy/observability/prometheus.yml)."""
            if not caller.is_office:
                raise HTTPException(403, "metrics are for the office's key")
            return Response(await self.metrics.render(), media_type=metrics_.CONTENT_TYPE)

        if routes:
            routes(app)
        document(app)  # security schemes and error responses in its OpenAPI document
        from shared.http import guard  # the HTTP door: body caps, bounded parameters, headers

        guard(app)
        return app

    def serve(self, app: FastAPI) -> None:
        setup_logging(self.name, self.settings.log_level)
        tracing.setup_tracing(self.name, self.settings.otlp_endpoint)
        try:
            refuse_insecure_settings(self.settings)
        except InsecureSettings as problem:
            logging.getLogger(f"wmsj.{self.name}").critical(str(problem))
            raise SystemExit(2) from None
        uvicorn.run(app, host=self.settings.http_host, port=self.settings.http_port, log_config=None)
