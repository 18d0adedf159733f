"""The bus door: what every message must be before any service looks at what it says.

Pure rules, no I/O (``shared.messaging`` applies them to each message, in this order):

1. **Who**: a message on the ingress exchange names its broker-validated sender
   (``shared.identity``); its refusals go only to that sender's own reply queue.
2. **Size**: at most ``WMSJ_MAX_MESSAGE_BYTES`` (the broker's ``max_message_size`` should
   be set to the same figure, so that bigger ones never even reach a queue).
3. **Form**: a JSON object, UTF-8, no content encoding, a CloudEvents/JSON content type,
   nested at most ``WMSJ_MAX_JSON_DEPTH`` levels (measured without parsing, so a hostile
   body cannot exhaust the parser's recursion).
4. **Contract**: the event types of ``shared.events`` (text fields refuse control
   characters there, see ``control_character_problem``).
5. **Time**: the event's ``time`` lies in [``WMSJ_EVENT_TIME_MIN``, now +
   ``WMSJ_EVENT_TIME_SKEW_S``]: a statement dated in year 9999 would outrank every
   correction for ever, and one before the programme existed is a mistake.
6. **Source**: a township's events carry its canonical source ``/townships/<its id>``, so
   the de-duplication key ``(source, id)`` is the sender's own: no township can take
   another's next id.

Each refusal names the field it concerns (``location``): a body path such as
``data.caption``, ``source`` or ``time``; ``(event)`` for the body as a whole (its size,
encoding, syntax, depth); ``amqp.<property>`` for a message property.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

WHOLE_BODY = "(event)"
ACCEPTED_CONTENT_TYPES = frozenset({"application/cloudevents+json", "application/json"})


class DoorSettings(BaseSettings):
    """The door's bounds (environment ``WMSJ_*``; documented in the README)."""

    model_config = SettingsConfigDict(env_prefix="WMSJ_", extra="ignore")

    max_message_bytes: int = Field(
        default=1_048_576,
        gt=0,
        description="Largest AMQP message body accepted (bytes); set the broker's max_message_size to it",
    )
    max_json_depth: int = Field(default=32, gt=0, description="Deepest nesting of a JSON body")
    event_time_min: datetime = Field(
        default=datetime(2000, 1, 1, tzinfo=UTC), description="Earliest event time accepted"
    )
    event_time_skew_s: float = Field(
        default=300, ge=0, description="How far in the future an event time may lie (clock skew)"
    )


@dataclass(frozen=True)
class Problem:
    """Why a message is refused at the door, and which field it concerns."""

    reason: str
    location: str
    message: str


def size_problem(size: int, limit: int) -> Problem | None:
    if size <= limit:
        return None
    return Problem(
        f"the message is too large: {size} bytes, at most {limit} are accepted",
        WHOLE_BODY,
        f"at most {limit} bytes; upload files to the object store and send their key (evidence)",
    )


def content_problem(content_type: str | None, content_encoding: str | None) -> Problem | None:
    """Bodies are plain UTF-8 JSON: a compressed or otherwise encoded one is refused by name,
    as is a content type that says the body is something else (absent: taken as JSON)."""
    if content_encoding and content_encoding.strip().lower() not in ("identity", "utf-8", "utf8"):
        return Problem(
            f"content encoding {content_encoding!r} is not accepted: send the event as plain UTF-8 JSON",
            "amqp.content_encoding",
            "must be empty",
        )
    if content_type:
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in ACCEPTED_CONTENT_TYPES:
            return Problem(
                f"content type {content_type!r} is not accepted: send application/cloudevents+json",
                "amqp.content_type",
                "must be application/cloudevents+json",
            )
    return None


def utf8_problem(body: bytes) -> Problem | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return Problem(
            "the message body is not UTF-8 text",
            WHOLE_BODY,
            f"invalid UTF-8 at byte {error.start}",
        )
    return None


def json_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest, counted without parsing (so
    without recursion): brackets inside strings do not count. Malformed text gets a number
    too; the parser refuses it afterwards."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def depth_problem(body: bytes, limit: int) -> Problem | None:
    if (depth := json_depth(body)) <= limit:
        return None
    return Problem(
        f"the event is nested too deeply: {depth} levels, at most {limit} are accepted",
        WHOLE_BODY,
        f"at most {limit} levels of nested arrays and objects",
    )


def time_problem(time: datetime, now: datetime, earliest: datetime, skew: timedelta) -> Problem | None:
    """An event time before ``earliest`` or later than ``now + skew`` is refused."""
    latest = now + skew
    if time < earliest:
        return Problem(
            f"the event time {time.isoformat()} is before {earliest.date().isoformat()}",
            "time",
            f"must not be before {earliest.isoformat()}",
        )
    if time > latest:
        return Problem(
            f"the event time {time.isoformat()} is in the future (now {now.isoformat()}, "
            f"allowing {skew.total_seconds():.0f} s of clock skew)",
            "time",
            "must not be in the future: the time you state the fact at",
        )
    return None


# ----------------------------------------------------------------------------- text


# Line breaks and tabs are text in free-text fields (a caption, a reason); every other
# control character (C0, DEL, C1), and a lone surrogate (not text at all: it cannot even be
# stored as UTF-8), is refused wherever it appears.
_FREE_TEXT_ALLOWED = frozenset("\n\r\t")


def control_character_problem(text: str, *, free_text: bool = False) -> str | None:
    """Why ``text`` may not be stored as a text field, or None. The message names the
    character by its code point, never repeats the text."""
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category == "Cc" and not (free_text and char in _FREE_TEXT_ALLOWED):
            allowed = " (line breaks and tabs are allowed here)" if free_text else ""
            return f"control character U+{ord(char):04X} at position {position} is not allowed{allowed}"
        if category == "Cs":
            return f"lone surrogate U+{ord(char):04X} at position {position} is not text"
    return None


# ----------------------------------------------------------------------------- refusals


def field_named_in(reason: str, body: Any) -> str:
    """The field a rule's refusal concerns, for refusals that do not say it: the field of
    the event's ``data`` whose value the reason names first, else ``data``. "unit
    431381101-S is in township 431381102" names ``data.unit_id``."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return WHOLE_BODY
    named = []
    for order, (path, value) in enumerate(_leaves(data, "data")):
        if not isinstance(value, str) or not value:
            continue
        # The value as a whole word, not inside a longer id (ids may hold "." and ":").
        if found := re.search(rf"(?<![\w.:-]){re.escape(value)}(?![\w-]|[.:]\w)", reason):
            named.append((found.start(), order, path))
    # The one named first: "unit 43138: a town's id is …" is about the id, not the kind.
    return min(named)[2] if named else "data"


def _leaves(value: Any, path: str, depth: int = 0) -> list[tuple[str, Any]]:
    if depth > 8:  # bodies past the door are shallow; a reason never names deeper fields
        return []
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, f"{path}.{k}", depth + 1)]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}.{i}", depth + 1)]
    return [(path, value)]


def printable(text: str) -> str:
    """``text`` with control characters spelled out (``\x00``): safe to quote anywhere."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


def body_digest(canonical_body: str) -> str:
    """The digest stored with an inbox entry: the same (sender, id) with another body is a
    conflicting duplicate, refused; with the same body a duplicate, ignored."""
    return hashlib.sha256(canonical_body.encode()).hexdigest()
