"""Exchanges and queues, declared idempotently by every service at start.

Two doors, so that untrusted input never mixes with accepted facts:

- ``wmsj.ingress`` (topic): township systems publish their submissions here. Each is read
  by the service that owns it (registry: units, activities: activities, evidence: evidence),
  validated, stored and, once accepted, re-published on ``wmsj.events``. A routing key that
  no service owns goes to the alternate exchange and is rejected with a reason.
- ``wmsj.events`` (topic): accepted domain events, published only by the services.
  Routing key = event type (``wmsj.unit.registered.v1``).

Every consuming queue dead-letters into ``wmsj.dlx`` → ``wmsj.dead-letters``: a message
that keeps crashing its consumer (the delivery limit) ends there, never redelivered forever.
A refused message is not kept (its refusal is answered to the sender and the office); one
whose handling failed is set aside there by the service, its body sealed (``shared.messaging``).
"""

from __future__ import annotations

from typing import Any, Literal

from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas import QueueType
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.archive import archive_queue
from shared.events import ALL_EVENTS

INGRESS = RabbitExchange(
    "wmsj.ingress",
    type=ExchangeType.TOPIC,
    durable=True,
    arguments={"alternate-exchange": "wmsj.ingress.unrouted"},
)
UNROUTED = RabbitExchange("wmsj.ingress.unrouted", type=ExchangeType.FANOUT, durable=True)
EVENTS = RabbitExchange("wmsj.events", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER = RabbitExchange("wmsj.dlx", type=ExchangeType.FANOUT, durable=True)

# Quorum queues: replicated on a cluster, and their delivery limit stops a message that
# crashes its consumer from being redelivered forever. The limit is set explicitly because
# RabbitMQ 3.x has none by default and 4.x defaults to 20: the same behaviour on both.
DELIVERY_LIMIT = 20


def _service_queue(name: str, routing_key: str = "") -> RabbitQueue:
    return RabbitQueue(
        name,
        durable=True,
        queue_type=QueueType.QUORUM,
        routing_key=routing_key,
        arguments={"x-dead-letter-exchange": DEAD_LETTER.name, "x-delivery-limit": DELIVERY_LIMIT},
    )


# (queue, exchange, binding keys) — one row per binding owner.
REGISTRY_INGRESS = _service_queue("registry.ingress")
REGISTRY_UNROUTED = _service_queue("registry.unrouted")
ACTIVITIES_INGRESS = _service_queue("activities.ingress")
EVIDENCE_INGRESS = _service_queue("evidence.ingress")
REGISTRY_EVENTS = _service_queue("registry.events")
EVIDENCE_EVENTS = _service_queue("evidence.events")
SUPERVISION_EVENTS = _service_queue("supervision.events")
ACTIVITIES_EVENTS = _service_queue("activities.events")
SUPERVISION_INGRESS = _service_queue("supervision.ingress")
DEAD_LETTERS = RabbitQueue("wmsj.dead-letters", durable=True, queue_type=QueueType.QUORUM)
# Dead letters are kept for inspection and replay, not for ever: they may hold personal data,
# and an unbounded queue can fill the broker's disk. The bounds are a policy, not queue
# arguments, because an existing queue cannot be re-declared with other arguments (every
# service's declaration would then fail). The broker's definitions file (deploy/) applies it;
# on another broker: `rabbitmqctl set_policy` with the same values (deploy/README.md).
DEAD_LETTER_TTL_DAYS = 14
DEAD_LETTER_MAX_LENGTH = 100_000
DEAD_LETTER_POLICY: dict[str, Any] = {
    "name": "wmsj-dead-letters",
    "pattern": "^wmsj\\.dead-letters$",
    "apply-to": "queues",
    "priority": 10,
    "definition": {
        "message-ttl": DEAD_LETTER_TTL_DAYS * 24 * 3600 * 1000,
        "max-length": DEAD_LETTER_MAX_LENGTH,
        "overflow": "drop-head",
    },
}


class TopologySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WMSJ_", extra="ignore")

    # A classic queue lives on one node: on a cluster, when that node stops, re-declaring it
    # fails and the services cannot reconnect through the others. ``quorum`` on a cluster
    # (deploy/compose.cluster.yml); ``classic`` where the office queues already exist as such
    # (a queue's type cannot change; delete the empty queues to switch).
    office_queue_type: Literal["classic", "quorum"] = "classic"


# Buffers for the city office's systems. Bounded, oldest dropped first, so that an office
# consumer that is switched off cannot fill the broker's disk; the API keeps the full history.
def _office_buffer(name: str) -> RabbitQueue:
    bounded: dict[str, Any] = {"x-max-length": 100_000, "x-overflow": "drop-head"}
    if TopologySettings().office_queue_type == "quorum":
        return RabbitQueue(name, durable=True, queue_type=QueueType.QUORUM, arguments=bounded)  # type: ignore[call-overload]
    return RabbitQueue(name, durable=True, arguments=bounded)  # type: ignore[call-overload]


OFFICE_SCORES = _office_buffer("office.scores")
OFFICE_REJECTIONS = _office_buffer("office.rejections")
OFFICE_WARNINGS = _office_buffer("office.warnings")
# Evidence the office must look at (fraud signals), activities whose evidence is complete,
# and the office's own reviews as accepted.
OFFICE_EVIDENCE = _office_buffer("office.evidence")
ARCHIVE = archive_queue()

BINDINGS: list[tuple[RabbitQueue, RabbitExchange, tuple[str, ...]]] = [
    (REGISTRY_INGRESS, INGRESS, ("wmsj.unit.registered.*", "wmsj.volunteer.registered.*")),
    (REGISTRY_UNROUTED, UNROUTED, ("",)),
    (REGISTRY_EVENTS, EVENTS, ("wmsj.volunteer.hours-credited.*",)),
    (
        ACTIVITIES_INGRESS,
        INGRESS,
        (
            "wmsj.activity.scheduled.*",
            "wmsj.activity.completed.*",
            "wmsj.projects.published.*",
            "wmsj.activity.published.*",
            "wmsj.activity.cancelled.*",
            "wmsj.order.placed.*",
            "wmsj.order.dispatched.*",
            "wmsj.order.answered.*",
            "wmsj.order.rated.*",
            "wmsj.attendance.*.*",
        ),
    ),
    (EVIDENCE_INGRESS, INGRESS, ("wmsj.evidence.submitted.*", "wmsj.evidence.reviewed.*")),
    (
        SUPERVISION_EVENTS,
        EVENTS,
        (
            "wmsj.unit.registered.*",
            "wmsj.activity.*.*",
            "wmsj.evidence.stored.*",
            "wmsj.evidence.complete.*",
            "wmsj.evidence.flagged.*",
            "wmsj.evidence.reviewed.*",
            "wmsj.projects.published.*",
            "wmsj.order.rating-counted.*",
        ),
    ),
    # Evidence checks a submission against its activity and the activity's project, and
    # that its unit is in the sender's township (from the registry's accepted units).
    (
        EVIDENCE_EVENTS,
        EVENTS,
        ("wmsj.activity.scheduled.*", "wmsj.projects.published.*", "wmsj.unit.registered.*"),
    ),
    (OFFICE_SCORES, EVENTS, ("wmsj.score.updated.*",)),
    # The office's inspections (督查) come in on the ingress; supervision owns them.
    (SUPERVISION_INGRESS, INGRESS, ("wmsj.inspection.recorded.*",)),
    (OFFICE_REJECTIONS, EVENTS, ("wmsj.event.rejected.*",)),
    (
        OFFICE_EVIDENCE,
        EVENTS,
        ("wmsj.evidence.flagged.*", "wmsj.evidence.complete.*", "wmsj.evidence.reviewed.*"),
    ),
    (DEAD_LETTERS, DEAD_LETTER, ("",)),
    # Activities learns the unit tree (escalation goes to a unit's parent; the monthly
    # warning covers every known unit) from the registry's accepted facts, and which activity
    # stored evidence is of (补录 must name a stored piece of its activity's evidence),
    # and whose volunteer a volunteer is (hours are credited only to a township's own).
    (
        ACTIVITIES_EVENTS,
        EVENTS,
        ("wmsj.unit.registered.*", "wmsj.evidence.stored.v1", "wmsj.volunteer.enrolled.*"),
    ),
    # The office's early warnings: units falling behind, orders nobody accepted in time.
    (OFFICE_WARNINGS, EVENTS, ("wmsj.monthly-warning.issued.*", "wmsj.order.escalated.*")),
    # The event archive (``shared.archive``): a stream of every accepted event — of every
    # type of the contract, by name, so that a publish of a type nobody knows still fails
    # as unroutable instead of landing only in the archive.
    (ARCHIVE, EVENTS, tuple(sorted(event.TYPE for event in ALL_EVENTS))),
]


async def declare_topology(broker: RabbitBroker) -> None:
    """Declare everything (idempotent: re-declaring with the same arguments is a no-op).

    Every service declares the whole topology, not only its own part, so the first one up
    makes the bus complete and no publish can be unroutable because a consumer is late.
    """
    for exchange in (DEAD_LETTER, UNROUTED, INGRESS, EVENTS):
        await broker.declare_exchange(exchange)
    for queue, exchange, keys in BINDINGS:
        declared = await broker.declare_queue(queue)
        robust_exchange = await broker.declare_exchange(exchange)
        for key in keys:
            await declared.bind(robust_exchange, routing_key=key)
