"""Messaging without a broker: which failures are waited out, and how a bad body is refused."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from minio.error import S3Error, ServerError
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)
from urllib3 import HTTPResponse

import shared.messaging as messaging
from shared.events import FieldError, UnitRegisteredEvent, derived_id
from shared.messaging import InvalidEvent, _identify, event_decoder, is_transient, retry_transient

UNIT = {
    "specversion": "1.0",
    "id": "e1",
    "source": "/townships/431381101",
    "type": "wmsj.unit.registered.v1",
    "time": "2020-06-01T01:00:00Z",
    "data": {"unit_id": "431381101201", "name": "禾青镇第一村", "kind": "village"},
}


def s3_error(code: str) -> S3Error:
    return S3Error(
        HTTPResponse(status=503 if code == "ServiceUnavailable" else 404),
        code,
        "message",
        "/uploads/key",
        "request-id",
        "host-id",
        bucket_name="uploads",
        object_name="key",
    )


def message(
    body: bytes,
    message_id: str | None = "m1",
    kind: str | None = "wmsj.unit.registered.v1",
    user_id: str | None = "guest",
    reply_to: str = "",
) -> Any:
    """A message as it comes through the ingress door, from the office by default."""
    raw = SimpleNamespace(
        type=kind, exchange="wmsj.ingress", user_id=user_id, content_type=None, content_encoding=None
    )
    return SimpleNamespace(body=body, message_id=message_id, raw_message=raw, reply_to=reply_to)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def no_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(messaging, "_sleep", no_sleep)
    return slept


# ----------------------------------------------------------------------------- transient


@pytest.mark.parametrize(
    "error",
    [
        AutoReconnect("primary stepped down"),
        ServerSelectionTimeoutError("no servers"),
        NetworkTimeout("timed out"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        ServerError("bad gateway", 502),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_server_that_is_away_is_a_transient_failure(error: BaseException):
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        DuplicateKeyError("E11000 duplicate key"),
        OperationFailure("bad query"),
        ValueError("bad"),
        KeyError("k"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_failure_that_would_happen_again_is_not_transient(error: BaseException):
    assert not is_transient(error)


def test_a_missing_object_is_not_transient():
    assert not is_transient(s3_error("NoSuchKey"))


@pytest.mark.parametrize("code", ["ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout"])
def test_an_s3_service_that_is_busy_or_down_is_transient(code: str):
    assert is_transient(s3_error(code))


def test_a_mongodb_error_labelled_retryable_is_transient():
    error = OperationFailure("write conflict", details={"errorLabels": ["TransientTransactionError"]})
    assert is_transient(error)


# -------------------------------------------------------------------------------- retries


async def test_a_transient_failure_is_retried_until_the_action_succeeds(sleeps: list[float]):
    attempts = []

    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise AutoReconnect("not yet")
        return "done"

    assert await retry_transient(flaky, what="test") == "done"
    assert len(attempts) == 3
    assert sleeps == [0.2, 0.4]


async def test_the_wait_between_retries_doubles_up_to_the_maximum(sleeps: list[float]):
    attempts = []

    async def flaky() -> int:
        attempts.append(1)
        if len(attempts) <= 6:
            raise ConnectionRefusedError()
        return len(attempts)

    assert await retry_transient(flaky, what="test", first_delay=1.0, max_delay=5.0) == 7
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


async def test_a_failure_that_is_not_transient_is_raised_at_once(sleeps: list[float]):
    attempts = []

    async def broken() -> None:
        attempts.append(1)
        raise DuplicateKeyError("E11000")

    with pytest.raises(DuplicateKeyError):
        await retry_transient(broken, what="test")
    assert len(attempts) == 1
    assert sleeps == []


# ------------------------------------------------------------------------------- decoding


async def test_a_valid_body_is_decoded_into_its_event():
    decode = event_decoder(UnitRegisteredEvent)
    event = await decode(message(json.dumps(UNIT).encode()), None)
    assert isinstance(event, UnitRegisteredEvent)
    assert event.data.unit_id == "431381101201"


async def test_a_body_breaking_the_contract_raises_invalid_event_with_each_error():
    decode = event_decoder(UnitRegisteredEvent)
    body = json.dumps({**UNIT, "data": {**UNIT["data"], "kind": "planet", "zz": 1}}).encode()
    with pytest.raises(InvalidEvent) as refused:
        await decode(message(body), None)
    assert refused.value.reason == "the event does not match the contract"
    assert sorted(e.location for e in refused.value.errors) == ["data.kind", "data.zz"]


async def test_a_body_that_is_not_json_raises_invalid_event():
    with pytest.raises(InvalidEvent) as refused:
        await event_decoder(UnitRegisteredEvent)(message(b"\x00not json"), None)
    assert [e.location for e in refused.value.errors] == ["(event)"]


async def test_a_valid_event_of_another_type_raises_invalid_event_at_type():
    other = {
        **UNIT,
        "type": "wmsj.activity.completed.v1",
        "data": {
            "activity_id": "a1",
            "unit_id": "431381101",
            "ended_at": "2020-06-12T10:00:00+08:00",
            "volunteers": 3,
            "service_hours": 6,
        },
    }
    with pytest.raises(InvalidEvent) as refused:
        await event_decoder(UnitRegisteredEvent)(message(json.dumps(other).encode()), None)
    assert [(e.location, e.message) for e in refused.value.errors] == [
        ("type", "Input should be 'wmsj.unit.registered.v1'")
    ]


async def test_an_event_of_another_type_with_wrong_data_is_refused_for_its_data():
    body = json.dumps({**UNIT, "type": "wmsj.activity.completed.v1"}).encode()
    with pytest.raises(InvalidEvent) as refused:
        await event_decoder(UnitRegisteredEvent)(message(body), None)
    assert "data.activity_id" in [e.location for e in refused.value.errors]


async def test_an_event_without_a_type_raises_invalid_event_at_type():
    # CloudEvents 1.0 requires `type`; `wmsj validate` and the union decoders refuse it too.
    body = json.dumps({k: v for k, v in UNIT.items() if k != "type"}).encode()
    with pytest.raises(InvalidEvent) as refused:
        await event_decoder(UnitRegisteredEvent)(message(body), None)
    assert [e.location for e in refused.value.errors] == ["type"]


def test_an_invalid_event_without_errors_has_an_empty_list():
    assert InvalidEvent("no").errors == []


# ---------------------------------------------------------------------------- identifying


def test_a_rejected_event_is_identified_from_its_body():
    assert _identify(message(json.dumps(UNIT).encode(), message_id="other")) == (
        "/townships/431381101",
        "e1",
        "wmsj.unit.registered.v1",
    )


def test_a_body_that_is_not_json_is_identified_from_the_message_properties():
    assert _identify(message(b"garbage", message_id="m9", kind="t")) == (None, "m9", "t")


def test_a_body_that_is_not_utf8_is_identified_from_the_message_properties():
    assert _identify(message(b"\xff\xfe", message_id="m9", kind="t")) == (None, "m9", "t")


def test_fields_of_the_wrong_kind_fall_back_to_the_message_properties():
    body = json.dumps({"id": 5, "source": ["x"], "type": None}).encode()
    assert _identify(message(body, message_id="m9", kind="t")) == (None, "m9", "t")


# ------------------------------------------------------------------------------ rejecting


class FakeBroker:
    def __init__(self, fail_on_reply: bool = False) -> None:
        self.published: list[dict[str, Any]] = []
        self.fail_on_reply = fail_on_reply

    async def publish(self, body: bytes, **options: Any) -> None:
        if self.fail_on_reply and options["exchange"].name == "":
            raise RuntimeError("NO_ROUTE")
        self.published.append({"body": json.loads(body), **options})


def rejected_message(reply_to: str | None = "amq.gen-reply") -> Any:
    body = json.dumps({**UNIT, "data": {**UNIT["data"], "kind": "planet"}}).encode()
    return SimpleNamespace(
        body=body,
        message_id="m1",
        raw_message=SimpleNamespace(type="wmsj.unit.registered.v1", exchange="wmsj.ingress", user_id="guest"),
        reply_to=reply_to,
    )


async def test_a_rejection_is_published_on_the_bus_and_to_the_senders_reply_queue():
    broker = FakeBroker()
    bus = messaging.EventBus(broker, "registry")  # type: ignore[arg-type]
    problem = InvalidEvent(
        "the event does not match the contract", [FieldError(location="data.kind", message="bad")]
    )
    await bus.reject(rejected_message(), problem)
    on_bus, to_sender = broker.published
    assert on_bus["routing_key"] == "wmsj.event.rejected.v1"
    assert on_bus["exchange"].name == "wmsj.events"
    assert (to_sender["exchange"].name, to_sender["routing_key"]) == ("", "amq.gen-reply")
    data = on_bus["body"]["data"]
    assert (data["rejected_source"], data["rejected_id"], data["rejected_by"]) == (
        "/townships/431381101",
        "e1",
        "registry",
    )
    assert data["errors"] == [{"location": "data.kind", "message": "bad"}]
    assert on_bus["body"]["source"] == "/wmsj/registry"


async def test_rejecting_the_same_event_again_republishes_the_same_rejection_id():
    broker = FakeBroker()
    bus = messaging.EventBus(broker, "registry")  # type: ignore[arg-type]
    for _ in range(2):
        await bus.reject(rejected_message(reply_to=None), InvalidEvent("no"))
    first, again = broker.published
    assert (
        first["body"]["id"]
        == again["body"]["id"]
        == derived_id("/townships/431381101|e1", "rejected-by-registry")
    )


async def test_a_reply_queue_that_is_gone_does_not_stop_the_rejection():
    broker = FakeBroker(fail_on_reply=True)
    bus = messaging.EventBus(broker, "registry")  # type: ignore[arg-type]
    await bus.reject(rejected_message(), InvalidEvent("no"))
    assert len(broker.published) == 1


async def test_retries_back_off_no_longer_than_the_configured_maximum_when_a_call_names_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WMSJ_RETRY_MAX_DELAY_S reaches every retry, also those whose call site gives no maximum."""
    from pymongo.errors import AutoReconnect

    from shared import messaging

    delays: list[float] = []

    async def no_sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(messaging, "_sleep", no_sleep)
    monkeypatch.setattr(messaging, "_default_max_delay", 10.0)
    messaging.configure_retries(0.5)
    failures = iter(range(6))

    async def flaky() -> str:
        if next(failures, None) is not None:
            raise AutoReconnect("down")
        return "done"

    assert await messaging.retry_transient(flaky, what="test") == "done"
    assert max(delays) == 0.5 and len(delays) == 6


class KeepingBroker:
    def __init__(self) -> None:
        self.published: list[tuple[bytes, dict[str, Any]]] = []

    async def publish(self, body: bytes, **options: Any) -> None:
        self.published.append((body, options))


async def test_a_message_that_failed_is_set_aside_sealed_in_the_dead_letter_queue():
    from shared.pii import vault

    broker = KeepingBroker()
    bus = messaging.EventBus(broker, "registry")  # type: ignore[arg-type]
    body = json.dumps({**UNIT, "data": {**UNIT["data"], "phone": "13812345678"}}).encode()
    failed = message(body, user_id="township-431381101")
    failed.raw_message.routing_key = "wmsj.unit.registered.v1"
    await bus.set_aside(failed, KeyError("boom"))
    [(sealed, options)] = broker.published
    assert b"13812345678" not in sealed
    assert vault().open(sealed.decode()).encode() == body
    assert options["exchange"].name == "wmsj.dlx"
    assert options["headers"]["x-wmsj-sender"] == "township-431381101"
    assert options["headers"]["x-wmsj-error"] == "KeyError"


async def test_a_townships_rejection_goes_to_its_own_queue_whatever_its_reply_to():
    broker = FakeBroker()
    bus = messaging.EventBus(broker, "registry")  # type: ignore[arg-type]
    refused = rejected_message(reply_to="wmsj.replies.township-431381102")
    refused.raw_message.user_id = "township-431381101"
    await bus.reject(refused, InvalidEvent("no"))
    _, to_sender = broker.published
    assert to_sender["routing_key"] == "wmsj.replies.township-431381101"


async def test_a_rejection_without_errors_names_the_field_its_reason_names():
    broker = FakeBroker()
    bus = messaging.EventBus(broker, "registry")  # type: ignore[arg-type]
    await bus.reject(rejected_message(reply_to=None), InvalidEvent("unit 431381101201 is not yours"))
    [on_bus] = broker.published
    assert on_bus["body"]["data"]["errors"] == [
        {"location": "data.unit_id", "message": "unit 431381101201 is not yours"}
    ]
