"""Who published a message on the ingress exchange, and what they may publish about.

Each township system connects as its own RabbitMQ user, ``township-<township unit id>``
(``wmsj township add`` creates it). Publishers set the AMQP ``user_id`` property to that
name; RabbitMQ refuses a message whose ``user_id`` is not the connection's user, so the
property is proof of who sent it. The event body (``source``, ``township_id``) is never
trusted for this.

The office's users are listed in ``WMSJ_OFFICE_USERS`` (comma-separated; default ``guest``,
the local development broker's user): the office may publish about any unit.

A service applies it in a handler (before writing anything)::

    who = publisher_of(message)                  # InvalidEvent if unidentified
    if reason := who.may_not_publish_about(unit_id, owning_township):
        raise InvalidEvent(reason)

where ``owning_township`` is the township the unit belongs to (the township itself for a
township; None for city-level units, which only the office may publish about):
``owning_township`` below computes it from a unit's accepted details, the same way in every
service. Office-only event types (``PUBLISHED_BY = "office"``) are refused to townships with
``who.may_not_publish_type(...)``: the broker's topic permissions stop them first for users
made by ``wmsj township add``, but a service does not rely on how a user was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

TOWNSHIP_USER_PREFIX = "township-"
# The kinds that own a subtree (乡/镇/街道): such a unit is its own township.
TOWNSHIP_KINDS = frozenset({"township", "town", "street"})


def owning_township(unit_id: str, kind: str, township_id: str | None) -> str | None:
    """The township whose subtree a unit is in, from its accepted details (``unit.registered``):
    itself for a township, town or street, else its ``township_id`` (None: city level)."""
    return unit_id if kind in TOWNSHIP_KINDS else township_id


class IdentitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WMSJ_", extra="ignore")

    office_users: str = "guest"  # comma-separated RabbitMQ users that act as the city office

    @property
    def offices(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.office_users.split(",") if u.strip())


def township_user(township_id: str) -> str:
    """The RabbitMQ user a township's system connects as."""
    return f"{TOWNSHIP_USER_PREFIX}{township_id}"


class Unidentified(ValueError):
    """The message does not say (verifiably) who sent it."""


@dataclass(frozen=True)
class Publisher:
    user: str
    township_id: str | None  # None: the office

    @property
    def is_office(self) -> bool:
        return self.township_id is None

    def may_not_publish_about(self, unit_id: str, owning_township: str | None) -> str | None:
        """Why this publisher may not publish about ``unit_id`` (in ``owning_township``), or None."""
        if self.is_office or owning_township == self.township_id:
            return None
        # Another township's unit is "not in it": the refusal names nothing of the other
        # township (whose the unit is, is the other's business).
        where = "is not in it" if owning_township else "is in no township (city level)"
        return (
            f"township {self.township_id} may only publish about units in its own subtree; "
            f"unit {unit_id} {where}"
        )

    @property
    def canonical_source(self) -> str | None:
        """The ``source`` this publisher's events must carry (None: the office, any source)."""
        return None if self.township_id is None else township_source(self.township_id)

    def may_not_use_source(self, source: str) -> str | None:
        """Why this publisher may not state ``source``, or None. A township's events carry
        its own canonical source, so that the de-duplication key ``(source, id)`` is the
        broker-validated sender's and no township can take another's ids; the office may use
        any source (it states facts on townships' behalf, and corrects them)."""
        expected = self.canonical_source
        if expected is None or source == expected:
            return None
        return f"township {self.township_id}'s events must have source {expected!r}, not {source!r}"

    def may_not_publish_type(self, event_type: str, published_by: str) -> str | None:
        """Why this publisher may not publish an event of ``event_type`` at all, or None:
        only the office publishes the office's types (``published_by == "office"``)."""
        if self.is_office or published_by != "office":
            return None
        return f"only the city office may publish {event_type}; {self.user} is township {self.township_id}'s system"


def identify(user_id: str | None, settings: IdentitySettings | None = None) -> Publisher:
    """The publisher named by a message's broker-validated ``user_id`` property."""
    offices = (settings or IdentitySettings()).offices
    if not user_id:
        raise Unidentified(
            "the message has no user_id property: set it to the RabbitMQ user you connect as "
            f"({TOWNSHIP_USER_PREFIX}<your township id>)"
        )
    if user_id in offices:
        return Publisher(user_id, None)
    if user_id.startswith(TOWNSHIP_USER_PREFIX) and len(user_id) > len(TOWNSHIP_USER_PREFIX):
        return Publisher(user_id, user_id.removeprefix(TOWNSHIP_USER_PREFIX))
    raise Unidentified(f"user {user_id!r} is neither a township system nor the office")


def publisher_of(message: Any, settings: IdentitySettings | None = None) -> Publisher:
    """The publisher of a FastStream ``RabbitMessage`` (or an aio-pika message); raises
    ``shared.messaging.InvalidEvent`` if it cannot be identified."""
    from shared.messaging import InvalidEvent

    raw = getattr(message, "raw_message", message)
    try:
        return identify(getattr(raw, "user_id", None), settings)
    except Unidentified as problem:
        raise InvalidEvent(str(problem), location="amqp.user_id") from problem


def reply_queue(user: str) -> str:
    """The durable queue on which a township system hears about every event it sent that
    was refused (``wmsj township add`` declares it; only that township may read it)."""
    return f"{REPLY_QUEUE_PREFIX}{user}"


REPLY_QUEUE_PREFIX = "wmsj.replies."


def _platform_queue(queue: str) -> bool:
    """A queue of the platform's own (a service's, the office's buffers, the dead letters)."""
    from shared.topology import BINDINGS

    return queue in {q.name for q, _, _ in BINDINGS}


def township_source(township_id: str) -> str:
    """The canonical ``source`` of a township's events."""
    return f"/townships/{township_id}"


def reply_queue_for(who: Publisher | None, reply_to: str | None) -> str | None:
    """Where the refusal of a message from ``who`` may go, whatever its ``reply_to`` says:

    - a township: only its own reply queue (``wmsj.replies.township-<id>``), even when
      ``reply_to`` names another queue or none: a township cannot aim refusals at another
      township's queue, nor at a service's own queue;
    - the office: the queue its ``reply_to`` names (its own, or a private one such as
      ``wmsj.client`` declares), unless that is a platform queue or another sender's
      reply queue;
    - an unidentified sender: nowhere (it has no queue of its own).

    The office's copy of every refusal is on the bus (``office.rejections``) regardless."""
    if who is None:
        return None
    own = reply_queue(who.user)
    if not who.is_office:
        return own
    if not reply_to or _platform_queue(reply_to):
        return None
    if reply_to.startswith(REPLY_QUEUE_PREFIX) and reply_to != own:
        return None
    return reply_to


def looks_like_reply_queue(queue: str) -> bool:
    """Whether ``queue`` may receive a reply at all (the outbox's last check): never a
    platform queue (a service's own ingress, say)."""
    return bool(queue) and not _platform_queue(queue)
