"""Publishing and consuming events on RabbitMQ, the same way in every service.

- Publishing: persistent messages, publisher confirms, ``mandatory`` with returns raised:
  a publish that no queue takes is an error, never a silent loss.
- Consuming: every message passes the door first (``shared.door``: sender, size, form,
  contract, time, source), then the body is parsed into the queue's accepted event types by
  ``event_decoder``. A message that does not pass, or that a handler refuses
  (``InvalidEvent``), gets an ``EventRejected`` event with the precise reason and the field
  it concerns: on the bus for the office, and on the sender's own reply queue
  (``shared.identity.reply_queue_for``; a ``reply_to`` naming any other queue is ignored).
  A refusal is final and fully answered, so the refused message is then acknowledged, not
  dead-lettered: the dead-letter queue would only keep a second copy of what the sender
  has (personal data included) and could be filled by anyone with oversized messages.
- A message whose handling fails unexpectedly (a bug, not a refusal) is answered too ("send
  it again later"), and set aside for the office's replay in ``wmsj.dead-letters`` with its
  body sealed under ``WMSJ_PII_KEY`` (no personal data in clear there). Transient
  infrastructure failures are ridden out by ``retry_transient`` instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from faststream.exceptions import AckMessage, RejectMessage
from faststream.middlewares import BaseMiddleware
from faststream.rabbit import RabbitBroker, RabbitExchange
from faststream.rabbit.schemas import Channel
from pydantic import ValidationError

from shared import metrics
from shared.door import (
    WHOLE_BODY,
    DoorSettings,
    Problem,
    content_problem,
    depth_problem,
    field_named_in,
    printable,
    size_problem,
    time_problem,
    utf8_problem,
)
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
from shared.identity import Publisher, Unidentified, identify, publisher_of, reply_queue_for
from shared.topology import DEAD_LETTER, DELIVERY_LIMIT, EVENTS, INGRESS

if TYPE_CHECKING:
    from faststream.message import StreamMessage
    from faststream.rabbit.message import RabbitMessage

log = logging.getLogger("wmsj.messaging")
_sleep = asyncio.sleep  # the back-off's clock; unit tests replace it
T = TypeVar("T")
# The broker-validated sender of the message being handled (its RabbitMQ user; None for the
# platform's own events), for the log lines written while handling it.
SENDER: ContextVar[str | None] = ContextVar("wmsj_sender", default=None)


class InvalidEvent(Exception):
    """The event is refused: it will never be acceptable, however often it is redelivered.

    ``errors`` name the fields at fault; ``location`` is a shorthand for one error saying
    ``reason`` about that field. Given neither, the refusal names the field of the event's
    data whose value the reason mentions (``shared.door.field_named_in``)."""

    def __init__(
        self, reason: str, errors: list[FieldError] | None = None, *, location: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors or ([FieldError(location=location, message=reason)] if location else [])

    @classmethod
    def at_door(cls, problem: Problem) -> InvalidEvent:
        return cls(problem.reason, [FieldError(location=problem.location, message=problem.message)])


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
    *accepted: type[CloudEvent[Any]], door: DoorSettings | None = None
) -> Callable[[StreamMessage[Any], Any], Awaitable[CloudEvent[Any]]]:
    """A FastStream decoder: the message must pass the door (``shared.door``) and its body
    be one of the ``accepted`` event types, else InvalidEvent. Every body is parsed against
    the whole contract first, so each service applies exactly the same rules (and says the
    same things) as ``wmsj validate``.

    On the ingress exchange it also settles who sent the message (``SENDER``) and where its
    refusals may go: ``message.reply_to`` is replaced by the sender's own reply queue (or
    emptied), so a handler that keeps it for a late refusal keeps only that."""
    names = " or ".join(repr(e.TYPE) for e in accepted)
    bounds = door or DoorSettings()
    skew = timedelta(seconds=bounds.event_time_skew_s)

    async def decode(message: StreamMessage[Any], _original: Any) -> CloudEvent[Any]:
        raw = message.raw_message
        who = None
        SENDER.set(None)
        if not from_platform(message):
            who = publisher_of(message)
            SENDER.set(who.user)
            message.reply_to = reply_queue_for(who, message.reply_to) or ""
        body: bytes = message.body
        for problem in (
            size_problem(len(body), bounds.max_message_bytes),
            content_problem(getattr(raw, "content_type", None), getattr(raw, "content_encoding", None)),
            utf8_problem(body),
            depth_problem(body, bounds.max_json_depth),
        ):
            if problem:
                raise InvalidEvent.at_door(problem)
        try:
            event = parse_event(body)
        except ValidationError as error:
            raise InvalidEvent("the event does not match the contract", describe_errors(error)) from error
        if not isinstance(event, accepted):
            raise InvalidEvent(
                f"{event.type} is not accepted here",
                [FieldError(location="type", message=f"Input should be {names}")],
            )
        if who is not None:
            if problem := time_problem(event.time, datetime.now(UTC), bounds.event_time_min, skew):
                raise InvalidEvent.at_door(problem)
            if reason := who.may_not_use_source(event.source):
                raise InvalidEvent(reason, location="source")
        return event

    return decode


def from_platform(message: Any) -> bool:
    """Whether a message came from the platform (the services' accepted facts on
    ``wmsj.events``, or put straight into a queue), not through the ingress door: a
    township may publish to ``wmsj.ingress`` only (``wmsj.townships.permissions``)."""
    raw = getattr(message, "raw_message", message)
    return getattr(raw, "exchange", None) != INGRESS.name


def sender_of(message: Any) -> Publisher | None:
    """The broker-validated sender of a message from the ingress, None if it has none (or
    came from the platform)."""
    if from_platform(message):
        return None
    raw = getattr(message, "raw_message", message)
    try:
        return identify(getattr(raw, "user_id", None))
    except Unidentified:
        return None


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
        """Tell the publisher why its event was refused: on the bus for the office, and on
        the sender's own reply queue (whatever the message's ``reply_to`` says) for the
        township system that sent it."""
        who = sender_of(message)
        body = _body_of(message)
        source, event_id, event_type = _identify(message, body)
        rejected = EventRejectedEvent(
            id=derived_id(_cause(who, source, event_id, message), f"rejected-by-{self.service}"),
            source=self.source,
            time=datetime.now(UTC),
            subject=event_id,
            data=EventRejected(
                rejected_source=source,
                rejected_id=event_id,
                rejected_type=event_type,
                reason=problem.reason,
                errors=problem.errors
                or [FieldError(location=field_named_in(problem.reason, body), message=problem.reason)],
                rejected_by=self.service,
            ),
        )
        await self.publish(rejected)
        if queue := reply_queue_for(who, message.reply_to):
            try:
                await self.publish(rejected, exchange=RabbitExchange(""), routing_key=queue)
            except Exception:  # the reply queue is the sender's; its absence must not block us
                log.warning("reply queue %s of a rejected event is gone", queue)
        log.warning(
            "event rejected: %s",
            problem.reason,
            extra={
                "event_id": event_id,
                "event_type": event_type,
                "sender": who.user if who else None,
                "errors": [e.model_dump() for e in rejected.data.errors],
            },
        )

    async def set_aside(self, message: RabbitMessage, error: BaseException) -> None:
        """Keep a message whose handling failed unexpectedly for the office's replay, in the
        dead-letter queue, with its body sealed (``shared.pii``: it may hold ID-card numbers
        and phones); the headers say where it came from and why."""
        from shared.pii import vault

        raw = message.raw_message
        sealed = vault().seal(message.body.decode("utf-8", errors="replace")).encode()
        await self.broker.publish(
            sealed,
            exchange=DEAD_LETTER,
            routing_key="",
            persist=True,
            content_type="application/octet-stream",
            message_id=message.message_id,
            message_type=getattr(raw, "type", None),
            headers={
                "x-wmsj-sealed": "fernet: the original body, sealed with WMSJ_PII_KEY",
                "x-wmsj-queue": getattr(raw, "routing_key", None) or "",
                "x-wmsj-sender": (sender_of(message) or Publisher("", None)).user,
                "x-wmsj-error": type(error).__name__,
                "x-wmsj-failed-by": self.service,
            },
            timestamp=datetime.now(UTC),
        )


def _body_of(message: Any) -> Any:
    """The message's body as JSON if it is (safely: the nesting is bounded first), else None."""
    body = message.body
    if not isinstance(body, bytes | str) or len(body) > DoorSettings().max_message_bytes:
        return None
    raw = body.encode() if isinstance(body, str) else body
    if depth_problem(raw, DoorSettings().max_json_depth):
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _cause(who: Publisher | None, source: str | None, event_id: str | None, message: Any) -> str:
    """The key a rejection's id derives from: the event's key as it would be if it were
    valid — under its sender's own source for a township, so that a township stating another
    township's source gets a rejection id of its own, never the one of the other's event."""
    if who is not None and who.canonical_source and event_id:
        return f"{who.canonical_source}|{event_id}"
    if source and event_id:
        return f"{source}|{event_id}"
    return f"{message.message_id}"


def _identify(message: Any, body: Any = None) -> tuple[str | None, str | None, str | None]:
    """Best-effort (source, id, type) of a message that may not even be JSON."""
    if body is None:
        body = _body_of(message)
    kind = getattr(message.raw_message, "type", None)
    if not isinstance(body, dict):
        return None, printable(message.message_id or "") or None, kind
    # Quoted in the rejection (its subject too): whatever the sender put there, printable.
    pick = lambda k: printable(body[k]) if isinstance(body.get(k), str) else None  # noqa: E731
    return pick("source"), pick("id") or printable(message.message_id or "") or None, pick("type") or kind


class DeliveryLimitReached(Exception):
    """A message came back so often unhandled that this is its last delivery."""


def last_delivery(headers: Any) -> int | None:
    """How often a message was delivered before, if this is the last delivery before the
    queue's delivery limit (``x-delivery-count``, set by quorum queues), else None."""
    count = headers.get("x-delivery-count") if isinstance(headers, dict) else None
    return count if isinstance(count, int) and count >= DELIVERY_LIMIT - 1 else None


def rejecting_middleware(bus: EventBus) -> type[BaseMiddleware[Any, Any]]:
    """Broker middleware: InvalidEvent → an EventRejected event, the message acknowledged (a
    refusal is final and answered); any other failure → answered too, and the message set
    aside, sealed, in the dead-letter queue for the office to replay once fixed."""

    class RejectInvalidEvents(BaseMiddleware[Any, Any]):
        async def consume_scope(self, call_next: Callable[..., Awaitable[Any]], msg: Any) -> Any:
            if deliveries := last_delivery(getattr(msg, "headers", None)):
                # Delivered this often unhandled (its consumer died each time): the broker
                # would dead-letter it, in clear and unanswered, at the next return.
                exhausted = DeliveryLimitReached(f"delivered {deliveries} times without being handled")
                stopped = InvalidEvent(
                    f"the platform could not handle this event ({bus.service} stopped {deliveries} "
                    "times while handling it); the office has been told: send it again later",
                    location=WHOLE_BODY,
                )
                await retry_transient(lambda: bus.set_aside(msg, exhausted), what="set the message aside")
                await retry_transient(lambda: bus.reject(msg, stopped), what="publish rejection")
                metrics.mark("failed")
                raise AckMessage()
            try:
                return await call_next(msg)
            except InvalidEvent as problem:
                refused = problem  # bound for the closure: ``problem`` is unbound after except
                await retry_transient(lambda: bus.reject(msg, refused), what="publish rejection")
                metrics.mark("refused")
                raise AckMessage() from problem
            except (AckMessage, RejectMessage):
                raise
            except Exception as error:
                log.exception("handling a message failed", extra={"message_id": msg.message_id})
                failure = error
                answer = InvalidEvent(
                    f"the platform could not handle this event ({bus.service} failed: "
                    f"{type(failure).__name__}); the office has been told: send it again later",
                    location=WHOLE_BODY,
                )
                await retry_transient(lambda: bus.set_aside(msg, failure), what="set the message aside")
                await retry_transient(lambda: bus.reject(msg, answer), what="publish rejection")
                metrics.mark("failed")
                raise AckMessage() from error

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


# The longest back-off of ``retry_transient`` when a call gives none: the process's
# ``WMSJ_RETRY_MAX_DELAY_S``, set once by ``configure_retries`` when its service is built (a
# default each call site had to remember was forgotten by most of them).
_default_max_delay = 10.0


def configure_retries(max_delay: float) -> None:
    global _default_max_delay
    _default_max_delay = max_delay


async def retry_transient(
    action: Callable[[], Awaitable[T]],
    *,
    what: str,
    max_delay: float | None = None,
    first_delay: float = 0.2,
) -> T:
    """Run ``action`` until it succeeds, backing off on transient failures.

    The message being handled stays unacknowledged meanwhile, so if this process dies the
    broker redelivers it: waiting here loses nothing.
    """
    if max_delay is None:
        max_delay = _default_max_delay
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
