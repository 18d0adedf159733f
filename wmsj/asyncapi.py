"""What FastStream's AsyncAPI document of a service lacks for a township integrator, added
to it (``wmsj.docs`` writes the result): how to reach and log in to the broker — a
``production`` server template with the AMQP user/password security scheme and the
``user_id`` rule — and an example of every message.

FastStream 0.7.8 emits AsyncAPI 3.0.0 (it has no 3.1 generator), so the documents stay 3.0.0.
"""

from __future__ import annotations

import copy
from typing import Any

from shared.events import EVENT_TYPES
from wmsj.examples import example

SECURITY = {
    "township": {
        "type": "userPassword",
        "description": (
            "One RabbitMQ user per township system, `township-<township id>`, and its password, "
            "as the city office hands them over (`wmsj township add`). Set the AMQP message "
            "property `user_id` to that user on every message: the broker refuses a message "
            "whose `user_id` is not the connection's user (406 PRECONDITION_FAILED), the platform "
            "one without (`wmsj.event.rejected.v1`); who sent an event is what the broker says, "
            "never the body. Set `reply_to` to `wmsj.replies.township-<township id>`: refusals "
            "come there. A township user may publish only township event types to `wmsj.ingress` "
            "(anything else: the broker closes the channel, 403 ACCESS_REFUSED) and read only "
            "its reply queue."
        ),
    },
    "office": {
        "type": "userPassword",
        "description": "The city office's RabbitMQ users (WMSJ_OFFICE_USERS): any event type, any unit.",
    },
}

PRODUCTION = {
    "host": "{host}:{port}",
    "protocol": "amqps",
    "protocolVersion": "0.9.1",
    "pathname": "/",
    "title": "production",
    "description": (
        "The platform's broker as a township reaches it (virtual host `/`); the office gives "
        "the host and port. Publish to the exchange `wmsj.ingress` with the event type as "
        "routing key, persistent, with publisher confirms and `mandatory`."
    ),
    "variables": {
        "host": {"default": "platform.example", "description": "The broker's host name."},
        "port": {
            "enum": ["5671", "5672"],
            "default": "5671",
            "description": "5671: AMQPS (TLS); 5672: AMQP.",
        },
    },
    "security": [
        {"$ref": "#/components/securitySchemes/township"},
        {"$ref": "#/components/securitySchemes/office"},
    ],
}


def _types_in(schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """The event types a payload schema carries: its own, or those of its union's members."""
    if "$ref" in schema:
        schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
    own = schema.get("properties", {}).get("type", {})
    found = own.get("const") or own.get("default")
    if isinstance(found, str) and found in EVENT_TYPES:
        return [found]
    out: list[str] = []
    for member in schema.get("oneOf", []) + schema.get("anyOf", []):
        out += [t for t in _types_in(member, schemas) if t not in out]
    return out


def complete(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    development = spec.get("servers", {}).get("development")
    if development is not None:
        development["description"] = "Inside the deployment (compose's network): the services themselves."
        development["security"] = [{"$ref": "#/components/securitySchemes/office"}]
    spec.setdefault("servers", {})["production"] = copy.deepcopy(PRODUCTION)
    components = spec.setdefault("components", {})
    components["securitySchemes"] = copy.deepcopy(SECURITY)
    for channel in spec.get("channels", {}).values():
        servers = channel.setdefault("servers", [])
        if {"$ref": "#/servers/production"} not in servers:
            servers.append({"$ref": "#/servers/production"})
    schemas = components.get("schemas", {})
    for message in components.get("messages", {}).values():
        types = _types_in(message.get("payload", {}), schemas)
        if types:
            message["examples"] = [
                {"name": t.replace(".", "-"), "summary": f"a {t} event", "payload": example(t)} for t in types
            ]
    return spec
