"""Township identities on the broker: ``wmsj township add <township unit id>``.

Each township system connects as its own RabbitMQ user, ``township-<id>``, which may:

- configure nothing (it declares no exchanges or queues);
- write to the ``wmsj.ingress`` exchange, and only with the routing keys (= event types)
  townships may publish (topic permissions): an office-only event such as
  ``wmsj.projects.published.v1`` is refused by the broker itself;
- read its own durable reply queue ``wmsj.replies.township-<id>``, where every refusal of
  an event it sent arrives.

The platform then learns who sent a message from its broker-validated ``user_id`` property
(``shared.identity``), and refuses anything about units outside that township's subtree.
"""

from __future__ import annotations

import re
import secrets
import subprocess

import aio_pika

from shared.events import TOWNSHIP_EVENTS
from shared.identity import reply_queue, township_user
from shared.topology import INGRESS


def permissions(township_id: str) -> tuple[str, str, str, str]:
    """(configure, write, read, topic write) regular expressions for a township's user."""
    queue = re.escape(reply_queue(township_user(township_id)))
    types = "|".join(re.escape(e.TYPE) for e in TOWNSHIP_EVENTS)
    return "^$", f"^({re.escape(INGRESS.name)}|{queue})$", f"^{queue}$", f"^({types})$"


def rabbitmqctl_commands(township_id: str, password: str, vhost: str = "/") -> list[list[str]]:
    """The ``rabbitmqctl`` arguments that create (or re-permission) a township's user."""
    if password.startswith("-"):
        # rabbitmqctl would read it as an option, and fail or do something else.
        raise ValueError("a township password may not start with '-'")
    user = township_user(township_id)
    configure, write, read, topic = permissions(township_id)
    return [
        ["add_user", user, password],
        ["set_permissions", "-p", vhost, user, configure, write, read],
        # Topic permissions: which routing keys the user may publish with on wmsj.ingress
        # (reading: none; townships consume no topic exchange).
        ["set_topic_permissions", "-p", vhost, user, INGRESS.name, topic, "^$"],
    ]


async def declare_reply_queue(admin_amqp_url: str, township_id: str) -> str:
    """Declare the township's durable reply queue (as the platform: the township may not)."""
    name = reply_queue(township_user(township_id))
    connection = await aio_pika.connect_robust(admin_amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(name, durable=True, arguments={"x-max-length": 100_000})
    finally:
        await connection.close()
    return name


def add_township(
    township_id: str, admin_amqp_url: str, vhost: str = "/", password: str | None = None
) -> tuple[str, str]:
    """Create the township's user, permissions and reply queue; returns (user, password)."""
    import asyncio

    # Hex, not urlsafe base64: one of those in 64 starts with "-", which rabbitmqctl takes
    # for an option.
    password = password or secrets.token_hex(24)
    for args in rabbitmqctl_commands(township_id, password, vhost):
        result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
        if result.returncode != 0 and not (args[0] == "add_user" and "already_exists" in result.stderr):
            raise RuntimeError(f"rabbitmqctl {args[0]} failed: {result.stderr.strip()}")
        if args[0] == "add_user" and result.returncode != 0:  # existing user: new password
            subprocess.run(["rabbitmqctl", "-q", "change_password", args[1], password], check=True)
    asyncio.run(declare_reply_queue(admin_amqp_url, township_id))
    return township_user(township_id), password
