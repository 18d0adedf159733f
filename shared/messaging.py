"""Publishing and consuming events on RabbitMQ, the same way in every service.

- Publishing: persistent messages, publisher confirms, ``mandatory`` with returns raised:
  a publish that no queue takes is an error, never a silent loss.
- Consuming: the body is parsed into the queue's accepted event types by ``event_decoder``;
  a message that does not parse, or that a handler refuses (``InvalidEvent``), gets an
  ``EventRejected`` event with the precise reason and is rejected into the dead-letter queue.
  Anything else that fails is rejected too (so it lands in the dead-letter queue instead of
  looping), except transient infrastructure failures, which ``retry_transient`` rides out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from faststream.exceptions import RejectMessage
from faststream.middlewares import BaseMiddleware
from faststream.rabbit import RabbitBroker, RabbitExchange
from faststream.rabbit.schemas import Channel
from pydantic import ValidationError

from shared.events import (
    CONTENT_TYPE,
    CloudEvent,
    EventRejected,
    EventRejectedEvent,
    FieldError,
    derived_id,
    describe_errors,
    parse_event,
)
from shared.failover import amqp_urls, failover_class
from shared.topology import EVENTS

if TYPE_CHECKING:
    from faststream.message import StreamMessage
    from faststream.rabbit.message import RabbitMessage

log = logging.getLogger("wmsj.messaging")
_sleep = asyncio.sleep  # the back-off's clock; unit tests replace it
T = TypeVar("T")


class InvalidEvent(Exception):
    """The event is refused: it will never be acceptable, however often it is redelivered."""

    def __init__(self, reason: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or []


def make_broker(amqp_url: str, service: str, prefetch: int) -> RabbitBroker:
    urls = amqp_urls(amqp_url)  # a cluster's nodes, comma-separated (``shared.failover``)
    broker = RabbitBroker(
        urls[0],
        app_id=service,
        default_channel=Channel(publisher_confirms=True, on_return_raises=True, prefetch_count=prefetch),
        client_properties={"connection_name": service},  # type: ignore[arg-type]
        logger=logging.getLogger(f"wmsj.{service}.broker"),
    )
    if len(urls) > 1:
        broker._connection_kwargs["connection_class"] = failover_class(urls)
    return broker


def event_decoder(
    *accepted: type[CloudEvent[Any]],
) -> Callable[[StreamMessage[Any], Any], Awaitable[CloudEvent[Any]]]:
    """A FastStream decoder: the body must be one of the ``accepted`` event types, else
    InvalidEvent. Every body is parsed against the whole contract first, so each service
    applies exactly the same rules (and says the same things) as ``wmsj validate``."""
    names = " or ".join(repr(e.TYPE) for e in accepted)

    async def decode(message: StreamMessage[Any], _original: Any) -> CloudEvent[Any]:
        try:
            event = parse_event(message.body)
        except ValidationError as error:
            raise InvalidEvent("the event does not match the contract", describe_errors(error)) from error
        if not isinstance(event, accepted):
            raise InvalidEvent(
                f"{event.type} is not accepted here",
                [FieldError(location="type", message=f"Input should be {names}")],
            )
        return event

    return decode


class EventBus:
    """Publishes events for one service."""

    def __init__(self, broker: RabbitBroker, service: str) -> None:
        self.broker = broker
        self.service = service
        self.source = f"/wmsj/{service}"

    async def publish(
        self,
        event: CloudEvent[Any],
        *,
        exchange: RabbitExchange = EVENTS,
        routing_key: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        await self.publish_raw(
            event.model_dump_json().encode(),
            event_id=event.id,
            event_type=event.type,
            exchange=exchange,
            routing_key=routing_key,
            reply_to=reply_to,
        )

    async def publish_raw(
        self,
        body: bytes,
        *,
        event_id: str,
        event_type: str,
        exchange: RabbitExchange | None = EVENTS,
        routing_key: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        await self.broker.publish(
            body,
            exchange=exchange,
            routing_key=routing_key if routing_key is not None else event_type,
            mandatory=True,
            persist=True,
            content_type=CONTENT_TYPE,
            message_id=event_id,
            message_type=event_type,
            reply_to=reply_to,
            timestamp=datetime.now(UTC),
        )

    async def reply_raw(self, body: bytes, *, event_id: str, event_type: str, queue: str) -> None:
        """Publish to one sender's reply queue (the default exchange routes by queue name);
        raises ``aiormq.exceptions.DeliveryError`` if that queue does not exist."""
        await self.publish_raw(
            body, event_id=event_id, event_type=event_type, exchange=RabbitExchange(""), routing_key=queue
        )

    async def reject(self, message: RabbitMessage, problem: InvalidEvent) -> None:
        """Tell the publisher why its event was refused: on the bus for the office, and on the
        message's ``reply_to`` queue (if any) for the township system that sent it."""
        source, event_id, event_type = _identify(message)
        cause = f"{source}|{event_id}" if source and event_id else f"{message.message_id}"
        rejected = EventRejectedEvent(
            id=derived_id(cause, f"rejected-by-{self.service}"),
            source=self.source,
            time=datetime.now(UTC),
            subject=event_id,
            data=EventRejected(
                rejected_source=source,
                rejected_id=event_id,
                rejected_type=event_type,
                reason=problem.reason,
                errors=problem.errors,
                rejected_by=self.service,
            ),
        )
        await self.publish(rejected)
        if message.reply_to:
            try:
                await self.publish(rejected, exchange=RabbitExchange(""), routing_key=message.reply_to)
            except Exception:  # the reply queue is the sender's; its absence must not block us
                log.warning("reply queue %s of a rejected event is gone", message.reply_to)
        log.warning(
            "event rejected: %s",
            problem.reason,
            extra={
                "event_id": event_id,
                "event_type": event_type,
                "errors": [e.model_dump() for e in problem.errors],
            },
        )


def _identify(message: RabbitMessage) -> tuple[str | None, str | None, str | None]:
    """Best-effort (source, id, type) of a message that may not even be JSON."""
    import json

    try:
        body = json.loads(message.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return None, message.message_id or None, message.raw_message.type
    pick = lambda k: body[k] if isinstance(body.get(k), str) else None  # noqa: E731
    return pick("source"), pick("id") or message.message_id or None, pick("type") or message.raw_message.type


def rejecting_middleware(bus: EventBus) -> type[BaseMiddleware[Any, Any]]:
    """Broker middleware: InvalidEvent → an EventRejected event + the message dead-lettered."""

    class RejectInvalidEvents(BaseMiddleware[Any, Any]):
        async def consume_scope(self, call_next: Callable[..., Awaitable[Any]], msg: Any) -> Any:
            try:
                return await call_next(msg)
            except InvalidEvent as problem:
                refused = problem  # bound for the closure: ``problem`` is unbound after except
                await retry_transient(lambda: bus.reject(msg, refused), what="publish rejection")
                raise RejectMessage() from problem

    return RejectInvalidEvents


# ----------------------------------------------------------------------------- retries


def is_transient(error: BaseException) -> bool:
    """Failures that go away when a server comes back: worth waiting for, not worth a reject."""
    from minio.error import S3Error, ServerError
    from pymongo.errors import ConnectionFailure, PyMongoError
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(error, ConnectionFailure | Urllib3Error | ConnectionError | TimeoutError | ServerError):
        return True
    if isinstance(error, S3Error):
        return error.code in ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout")
    if isinstance(error, PyMongoError):
        return error.has_error_label("TransientTransactionError") or error.has_error_label(
            "RetryableWriteError"
        )
    return False


async def retry_transient(
    action: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_delay: float = 10.0,
    first_delay: float = 0.2,
) -> T:
    """Run ``action`` until it succeeds, backing off on transient failures.

    The message being handled stays unacknowledged meanwhile, so if this process dies the
    broker redelivers it: waiting here loses nothing.
    """
    delay = first_delay
    attempt = 1
    while True:
        try:
            return await action()
        except Exception as error:
            if not is_transient(error):
                raise
            log.warning("%s failed (attempt %d, retrying in %.1fs): %s", what, attempt, delay, error)
            await _sleep(delay)
            delay = min(delay * 2, max_delay)
            attempt += 1
