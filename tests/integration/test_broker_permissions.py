"""The services' broker users of deploy/docker-compose.yml, on the real broker: the topology
file (deploy/rabbitmq/topology.json) is imported as compose's broker does, each service's
user gets exactly the permissions the compose file grants (``wmsj.deploy.permissions``), and
then each does what its service does — and is refused what it must not do."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import aio_pika
import aiormq
import httpx
import pytest

from shared.topology import BINDINGS, EVENTS, INGRESS
from tests.conftest import Infra
from wmsj import deploy

pytestmark = pytest.mark.integration


def _url(amqp_url: str, user: str, password: str, vhost: str) -> str:
    parts = urlsplit(amqp_url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc, path="/" + quote(vhost, safe="")))


@pytest.fixture(scope="module")
async def service_urls(infra: Infra) -> AsyncIterator[dict[str, str]]:
    """A virtual host loaded with the topology file, and one user per service in it."""
    parts = urlsplit(infra.amqp_url)
    auth = (parts.username or "guest", parts.password or "guest")
    vhost = f"wmsj-{infra.run_id}-least-privilege"
    urls: dict[str, str] = {}
    async with httpx.AsyncClient(base_url="http://127.0.0.1:15672/api", auth=auth, timeout=30) as api:
        v = quote(vhost, safe="")
        (await api.put(f"/vhosts/{v}")).raise_for_status()
        topology = deploy.topology()
        for kind in ("exchanges", "queues", "bindings", "policies"):
            for item in topology[kind]:
                item["vhost"] = vhost
        topology.pop("vhosts")
        (await api.post("/definitions", json=topology)).raise_for_status()
        users = {}
        for name in deploy.SERVICES:
            user, password = f"{deploy.service_user(name)}-{infra.run_id}", secrets.token_hex(12)
            allowed = deploy.permissions(name)
            (await api.put(f"/users/{user}", json={"password": password, "tags": ""})).raise_for_status()
            (
                await api.put(
                    f"/permissions/{v}/{user}",
                    json={"configure": allowed.configure, "write": allowed.write, "read": allowed.read},
                )
            ).raise_for_status()
            (
                await api.put(
                    f"/topic-permissions/{v}/{user}",
                    json={"exchange": EVENTS.name, "write": allowed.events_write, "read": "^$"},
                )
            ).raise_for_status()
            users[name] = user
            urls[name] = _url(infra.amqp_url, user, password, vhost)
        # A township's reply queue, as `wmsj township add` declares it.
        (await api.put(f"/queues/{v}/wmsj.replies.township-1", json={"durable": True})).raise_for_status()
        try:
            yield urls
        finally:
            for user in users.values():
                await api.delete(f"/users/{user}")
            await api.delete(f"/vhosts/{v}")


async def _refused(url: str, action: str, *args: object) -> bool:
    """Whether the broker refuses ``action`` on a fresh channel (ACCESS_REFUSED closes it)."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        try:
            if action == "publish":
                exchange_name, routing_key = args
                exchange = await channel.get_exchange(str(exchange_name), ensure=False)
                await exchange.publish(aio_pika.Message(b"{}"), routing_key=str(routing_key))
            elif action == "declare":
                (queue,) = args
                await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)  # type: ignore[attr-defined]
            elif action == "consume":
                (queue_name,) = args
                queue = await channel.get_queue(str(queue_name), ensure=False)
                await queue.get(fail=False)
            else:
                raise AssertionError(action)
        except (aiormq.exceptions.ChannelAccessRefused, aio_pika.exceptions.ChannelClosed):
            return True
        return False


@pytest.mark.parametrize("name", deploy.SERVICES)
async def test_each_service_user_may_do_what_its_service_does(
    service_urls: dict[str, str], name: str
) -> None:
    url = service_urls[name]
    own = [queue for queue, _, _ in BINDINGS if queue.name.startswith(f"{name}.")]
    for queue in own:  # what its subscribers declare at start, with the same arguments
        assert not await _refused(url, "declare", queue), queue.name
        assert not await _refused(url, "consume", queue.name)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        # FastStream declares a publisher's exchange (same arguments as the definitions).
        await channel.declare_exchange(EVENTS.name, type=EVENTS.type.value, durable=True)
    for event_type in deploy.published_types(name):
        assert not await _refused(url, "publish", EVENTS.name, event_type), event_type
    # A refusal to a township, on its reply queue (the default exchange).
    assert not await _refused(url, "publish", "", "wmsj.replies.township-1")


@pytest.mark.parametrize("name", deploy.SERVICES)
async def test_each_service_user_is_refused_everything_else(service_urls: dict[str, str], name: str) -> None:
    url = service_urls[name]
    others = [
        queue
        for queue, _, _ in BINDINGS
        if not queue.name.startswith(f"{name}.") and queue.name.split(".")[0] in deploy.SERVICES
    ]
    assert others
    for queue in others[:2]:
        assert await _refused(url, "declare", queue), f"{name} may declare {queue.name}"
        assert await _refused(url, "consume", queue.name), f"{name} may read {queue.name}"
    assert await _refused(url, "consume", "wmsj.dead-letters")
    assert await _refused(url, "consume", "wmsj.replies.township-1"), "a township's refusals are its own"
    assert await _refused(url, "publish", INGRESS.name, "wmsj.unit.registered.v1"), (
        "the ingress is for townships"
    )
    foreign = next(
        t
        for other in deploy.SERVICES
        if other != name
        for t in deploy.published_types(other)
        if t not in deploy.published_types(name)
    )
    assert await _refused(url, "publish", EVENTS.name, foreign), f"{name} may publish {foreign}"


async def test_the_dead_letter_queue_has_its_bounds(service_urls: dict[str, str], infra: Infra) -> None:
    vhost = unquote(urlsplit(next(iter(service_urls.values()))).path[1:])
    # The management API's queue statistics lag; the node itself says which policy applies.
    listed = infra.rabbitmqctl(["list_queues", "-p", vhost, "--no-table-headers", "name", "policy"])
    policies = {
        name: policy.strip() for name, _, policy in (line.partition("\t") for line in listed.splitlines())
    }
    assert policies["wmsj.dead-letters"] == "wmsj-dead-letters"
