"""The broker's side of the deployment, derived from the code (never written by hand):

- ``deploy/rabbitmq/topology.json``: the exchanges, queues, bindings and policies of
  ``shared/topology.py`` as a RabbitMQ definitions file. Compose's broker loads it at boot,
  so the whole bus exists before any service starts, and the services (which then do not
  declare it: ``WMSJ_DECLARE_TOPOLOGY=false``) need no right to configure what is not theirs.
- ``permissions(service)``: what each service's broker user may do (least privilege), which
  the users file in deploy/docker-compose.yml must grant exactly (tests/unit/test_compose.py).

``python -m wmsj.deploy`` writes the file; ``--check`` fails if the committed one differs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from shared.events import EventRejectedEvent
from shared.topology import BINDINGS, DEAD_LETTER, DEAD_LETTER_POLICY, EVENTS, INGRESS, UNROUTED

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY_FILE = ROOT / "deploy" / "rabbitmq" / "topology.json"
SERVICES = ("registry", "activities", "evidence", "supervision")
VHOST = "/"


def service_user(service: str) -> str:
    """The broker (and database) user a service connects as in compose."""
    return f"wmsj-{service}"


def own_queues(service: str) -> list[str]:
    """The queues a service consumes: named ``<service>.<…>`` in shared/topology.py."""
    return sorted({queue.name for queue, _, _ in BINDINGS if queue.name.startswith(f"{service}.")})


class Permissions(NamedTuple):
    configure: str
    write: str
    read: str
    # Topic permission on wmsj.events: the routing keys (event types) it may publish.
    events_write: str


def _alternatives(names: list[str]) -> str:
    # Names are [a-z0-9.-]: only the dot needs escaping (in Erlang's regular expressions too).
    assert all(re.fullmatch(r"[a-z0-9.-]+", name) for name in names), names
    return "^(" + "|".join(name.replace(".", "\\.") for name in sorted(names)) + ")$"


def published_types(service: str) -> list[str]:
    """What the service publishes on wmsj.events: what it documents, and the refusals every
    service's rejecting middleware publishes (``shared.messaging``)."""
    app = importlib.import_module(f"services.{service}.app")
    return sorted({EventRejectedEvent.TYPE, *(event.TYPE for event in app.service.publishes)})


def permissions(service: str) -> Permissions:
    """A service declares its own queues (dead-lettering into wmsj.dlx, which needs write on
    it) and the events exchange it publishes on (FastStream declares a publisher's exchange,
    which needs configure on it); it publishes on wmsj.events (only its own event types) and
    on the default exchange (refusals to a sender's reply queue); it reads its own queues."""
    queues = own_queues(service)
    return Permissions(
        configure=_alternatives([*queues, EVENTS.name]),
        write=_alternatives([*queues, EVENTS.name, DEAD_LETTER.name, "amq.default"]),
        read=_alternatives(queues),
        events_write=_alternatives(published_types(service)),
    )


def topology() -> dict[str, Any]:
    exchanges = [
        {
            "name": exchange.name,
            "vhost": VHOST,
            "type": exchange.type.value,
            "durable": exchange.durable,
            "auto_delete": exchange.auto_delete,
            "internal": False,
            "arguments": dict(exchange.arguments or {}),
        }
        for exchange in (DEAD_LETTER, UNROUTED, INGRESS, EVENTS)
    ]
    queues: dict[str, dict[str, Any]] = {}
    bindings = []
    for queue, exchange, keys in BINDINGS:
        queues[queue.name] = {
            "name": queue.name,
            "vhost": VHOST,
            "durable": bool(queue.durable),
            "auto_delete": queue.auto_delete,
            "arguments": dict(queue.arguments or {}),
        }
        bindings += [
            {
                "source": exchange.name,
                "vhost": VHOST,
                "destination": queue.name,
                "destination_type": "queue",
                "routing_key": key,
                "arguments": {},
            }
            for key in keys
        ]
    return {
        "vhosts": [{"name": VHOST}],
        "exchanges": exchanges,
        "queues": list(queues.values()),
        "bindings": bindings,
        "policies": [{"vhost": VHOST, **DEAD_LETTER_POLICY}],
    }


def users_snippet(indent: str = "") -> str:
    """The services' permissions as deploy/docker-compose.yml's ``rabbitmq-users`` config
    lists them, one JSON object a line (``$$``: compose's escape for a literal ``$``)."""
    lines = []
    for name in SERVICES:
        allowed = permissions(name)
        lines.append(
            {
                "user": service_user(name),
                "vhost": VHOST,
                "configure": allowed.configure,
                "write": allowed.write,
                "read": allowed.read,
            }
        )
    topic = [
        {
            "user": service_user(name),
            "vhost": VHOST,
            "exchange": EVENTS.name,
            "write": permissions(name).events_write,
            "read": "^$",
        }
        for name in SERVICES
    ]
    return "\n".join(
        [
            "permissions:",
            *(indent + json.dumps(line).replace("$", "$$") + "," for line in lines),
            "topic_permissions:",
            *(indent + json.dumps(line).replace("$", "$$") + "," for line in topic),
        ]
    )


def render() -> str:
    return json.dumps(topology(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare with the committed file")
    parser.add_argument(
        "--users", action="store_true", help="print the services' broker permissions for compose"
    )
    args = parser.parse_args(argv)
    if args.users:
        print(users_snippet())
        return 0
    text = render()
    if args.check:
        if not TOPOLOGY_FILE.is_file() or TOPOLOGY_FILE.read_text(encoding="utf-8") != text:
            print(f"{TOPOLOGY_FILE.relative_to(ROOT)} is stale: run python -m wmsj.deploy", file=sys.stderr)
            return 1
        return 0
    TOPOLOGY_FILE.parent.mkdir(parents=True, exist_ok=True)
    TOPOLOGY_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {TOPOLOGY_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
