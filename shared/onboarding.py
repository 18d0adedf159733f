"""Township systems' identities on the broker, made through the RabbitMQ management HTTP API.

Each township system connects as its own RabbitMQ user, ``township-<id>``, which may:

- configure nothing (it declares no exchanges or queues);
- write to the ``wmsj.ingress`` exchange, and only with the routing keys (= event types)
  townships may publish (topic permissions): an office-only event such as
  ``wmsj.projects.published.v1`` is refused by the broker itself;
- read its own durable reply queue ``wmsj.replies.township-<id>``, where every refusal of
  an event it sent arrives.

The management API, not ``rabbitmqctl``: it works against a broker in a container from any
host that reaches port 15672, never puts a password on a command line (visible to every
local user in the process list), and ``PUT /api/users/<name>`` creates or updates alike, so
adding a township again simply gives it a new password, on RabbitMQ 3.x and 4.x.

Used by the ``wmsj township`` CLI and the registry's office route (``/townships``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events import TOWNSHIP_EVENTS
from shared.identity import TOWNSHIP_USER_PREFIX, reply_queue, township_user
from shared.topology import INGRESS

# A township's reply queue keeps at most this many refusals (oldest dropped first by default).
REPLY_QUEUE_ARGUMENTS = {"x-max-length": 100_000}
_TOWNSHIP_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")


class ManagementSettings(BaseSettings):
    """Where the management API is and who may use it (an ``administrator``: only those may
    manage users). Empty user: the user of ``WMSJ_AMQP_URL`` (the local broker's guest)."""

    model_config = SettingsConfigDict(env_prefix="WMSJ_RABBITMQ_MANAGEMENT_", extra="ignore")

    url: str = "http://127.0.0.1:15672"
    user: str = ""
    password: str = ""


class OnboardingError(RuntimeError):
    """The management API refused or could not be reached; the message says why."""


def permissions(township_id: str) -> tuple[str, str, str, str]:
    """(configure, write, read, topic write) regular expressions for a township's user."""
    queue = re.escape(reply_queue(township_user(township_id)))
    types = "|".join(re.escape(e.TYPE) for e in TOWNSHIP_EVENTS)
    return "^$", f"^({re.escape(INGRESS.name)}|{queue})$", f"^{queue}$", f"^({types})$"


def upload_prefix(township_id: str) -> str:
    """Where the evidence service puts a township's uploads (``POST /uploads/policy``)."""
    return f"{township_id}/"


def api_key_role(township_id: str) -> str:
    """The role of a township's HTTP API key in ``WMSJ_API_KEYS`` (shared/auth.py)."""
    return f"township:{township_id}"


def check_township_id(township_id: str) -> str:
    if not _TOWNSHIP_ID.fullmatch(township_id):
        raise ValueError("a township id is 1-64 letters, digits, '-' or '_' (its unit code)")
    return township_id


@dataclass(frozen=True)
class TownshipAccess:
    """Everything a township system needs, secrets included: shown once, when made."""

    township_id: str
    user: str
    password: str
    amqp_url: str
    reply_queue: str
    api_key: str
    upload_prefix: str

    @property
    def api_key_entry(self) -> dict[str, str]:
        """What to add to ``WMSJ_API_KEYS`` (every service reads the same keys)."""
        return {self.api_key: api_key_role(self.township_id)}


@dataclass(frozen=True)
class TownshipInfo:
    """What is known about a township's identity, without any secret."""

    township_id: str
    user: str
    amqp_url: str  # without a password
    reply_queue: str
    refusals_waiting: int | None  # messages in the reply queue (None: no queue)
    may_publish: str  # the topic permission: the event types it may publish
    upload_prefix: str
    api_key_role: str


def _url_with(amqp_url: str, user: str, password: str | None) -> str:
    parts = urlsplit(amqp_url)
    userinfo = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    netloc = f"{userinfo}@{parts.hostname or '127.0.0.1'}:{parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


class BrokerAdmin:
    """The township operations, against one broker's management API and one virtual host."""

    def __init__(
        self,
        amqp_url: str,
        management: ManagementSettings | None = None,
        public_amqp_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        management = management or ManagementSettings()
        parts = urlsplit(amqp_url)
        self.vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        user = management.user or unquote(parts.username or "guest")
        password = management.password or unquote(parts.password or "guest")
        # Townships reach the broker at its public address; default: the admin URL's host.
        self.public_amqp_url = public_amqp_url or amqp_url
        self._client = httpx.AsyncClient(
            base_url=management.url.rstrip("/"), auth=(user, password), timeout=15, transport=transport
        )

    async def __aenter__(self) -> BrokerAdmin:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    def _path(self, *parts: str) -> str:
        return "/api/" + "/".join(quote(p, safe="") for p in parts)

    async def _call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = ()
    ) -> httpx.Response:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise OnboardingError(
                f"RabbitMQ management API at {self._client.base_url} not reachable ({type(error).__name__}): "
                "is the rabbitmq_management plugin enabled?"
            ) from error
        if response.status_code in ok or response.is_success:
            return response
        if response.status_code == 401:
            raise OnboardingError(
                "the management API refused the credentials: set WMSJ_RABBITMQ_MANAGEMENT_USER and "
                "WMSJ_RABBITMQ_MANAGEMENT_PASSWORD to a broker administrator"
            )
        raise OnboardingError(f"{method} {path}: {response.status_code} {response.text[:300]}")

    async def exists(self, township_id: str) -> bool:
        user = township_user(check_township_id(township_id))
        return (await self._call("GET", self._path("users", user), ok=(404,))).status_code != 404

    async def add(self, township_id: str, password: str | None = None) -> TownshipAccess:
        """Create the township's user, permissions and reply queue; for an existing township,
        a new password (the old one stops working at its next connection) and a new key."""
        user = township_user(check_township_id(township_id))
        password = password or secrets.token_hex(24)
        configure, write, read, topic = permissions(township_id)
        await self._call("PUT", self._path("users", user), {"password": password, "tags": ""})
        await self._call(
            "PUT",
            self._path("permissions", self.vhost, user),
            {"configure": configure, "write": write, "read": read},
        )
        # Topic permissions: which routing keys the user may publish with on wmsj.ingress
        # (reading: none; townships consume no topic exchange).
        await self._call(
            "PUT",
            self._path("topic-permissions", self.vhost, user),
            {"exchange": INGRESS.name, "write": topic, "read": "^$"},
        )
        # Declared by the platform (the township may configure nothing); idempotent.
        await self._call(
            "PUT",
            self._path("queues", self.vhost, reply_queue(user)),
            {"durable": True, "auto_delete": False, "arguments": REPLY_QUEUE_ARGUMENTS},
        )
        return TownshipAccess(
            township_id=township_id,
            user=user,
            password=password,
            amqp_url=_url_with(self.public_amqp_url, user, password),
            reply_queue=reply_queue(user),
            api_key=secrets.token_urlsafe(32),
            upload_prefix=upload_prefix(township_id),
        )

    async def rotate(self, township_id: str) -> TownshipAccess:
        """A new password and key for an existing township (an unknown one is an error)."""
        if not await self.exists(township_id):
            raise OnboardingError(f"no township {township_id} on this broker: add it first")
        return await self.add(township_id)

    async def show(self, township_id: str) -> TownshipInfo | None:
        user = township_user(check_township_id(township_id))
        if not await self.exists(township_id):
            return None
        queue = await self._call("GET", self._path("queues", self.vhost, reply_queue(user)), ok=(404,))
        waiting = queue.json().get("messages", 0) if queue.status_code != 404 else None
        topic = await self._call("GET", self._path("topic-permissions", self.vhost, user), ok=(404,))
        granted = (
            [p["write"] for p in topic.json() if p.get("exchange") == INGRESS.name]
            if topic.is_success
            else []
        )
        return TownshipInfo(
            township_id=township_id,
            user=user,
            amqp_url=_url_with(self.public_amqp_url, user, None),
            reply_queue=reply_queue(user),
            refusals_waiting=waiting,
            may_publish=granted[0] if granted else "",
            upload_prefix=upload_prefix(township_id),
            api_key_role=api_key_role(township_id),
        )

    async def list(self) -> list[TownshipInfo]:
        """Every township user that has permissions in this virtual host."""
        granted = await self._call("GET", self._path("vhosts", self.vhost, "permissions"))
        found = sorted(
            p["user"].removeprefix(TOWNSHIP_USER_PREFIX)
            for p in granted.json()
            if p["user"].startswith(TOWNSHIP_USER_PREFIX)
        )
        return [info for township_id in found if (info := await self.show(township_id))]

    async def revoke(self, township_id: str) -> bool:
        """Delete the township's user (its permissions go with it) and close its connections.
        Its reply queue is kept, with the refusals it has not read. False: no such township."""
        user = township_user(check_township_id(township_id))
        deleted = await self._call("DELETE", self._path("users", user), ok=(404,))
        connections = await self._call("GET", self._path("connections"))
        for connection in connections.json():
            if connection.get("user") == user:
                await self._call("DELETE", self._path("connections", connection["name"]), ok=(404,))
        return deleted.status_code != 404
