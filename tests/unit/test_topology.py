"""The topology routes every event somewhere: a publish no queue takes is an error (and
would stall a service's outbox), so each event type a service publishes must be bound."""

from __future__ import annotations

import importlib
import re

import pytest

from shared.events import ALL_EVENTS, OFFICE_EVENTS, TOWNSHIP_EVENTS
from shared.topology import BINDINGS, EVENTS, INGRESS


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ topic matching: ``*`` is one word, ``#`` zero or more."""
    regex = re.escape(pattern).replace(r"\#", r"[^.]*(\.[^.]*)*").replace(r"\*", r"[^.]+")
    return re.fullmatch(regex, key) is not None


def queues_for(exchange: str, key: str) -> list[str]:
    return [
        q.name for q, ex, keys in BINDINGS if ex.name == exchange and any(topic_matches(k, key) for k in keys)
    ]


def published_by_services() -> list[tuple[str, str]]:
    out = []
    for name in ("registry", "activities", "evidence", "supervision"):
        service = importlib.import_module(f"services.{name}.app").service
        out += [(name, event.TYPE) for event in service.publishes]
    return out


@pytest.mark.parametrize(("service", "event_type"), published_by_services())
def test_every_event_a_service_publishes_reaches_a_queue(service: str, event_type: str) -> None:
    assert queues_for(EVENTS.name, event_type), (
        f"{service} publishes {event_type}, but no queue is bound to it"
    )


def test_every_event_type_is_published_by_some_service_or_sent_in() -> None:
    sent_in = {e.TYPE for e in TOWNSHIP_EVENTS + OFFICE_EVENTS}
    published = {t for _, t in published_by_services()}
    # Types with no publisher yet are contracts agreed ahead of the service that emits them.
    agreed_ahead = {"wmsj.volunteer.hours-credited.v1"}
    assert {e.TYPE for e in ALL_EVENTS} - sent_in - published <= agreed_ahead


@pytest.mark.parametrize("event", TOWNSHIP_EVENTS + OFFICE_EVENTS, ids=lambda e: e.TYPE)
def test_what_comes_in_on_the_ingress_has_exactly_one_owner(event: type) -> None:
    assert len(queues_for(INGRESS.name, event.TYPE)) == 1


def test_the_matcher_follows_rabbitmq_rules() -> None:
    assert topic_matches("wmsj.activity.*.*", "wmsj.activity.completed.v1")
    assert not topic_matches("wmsj.unit.registered.*", "wmsj.unit.registered.v1.x")
    assert topic_matches("wmsj.#", "wmsj.a.b.c")
