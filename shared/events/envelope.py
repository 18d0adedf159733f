"""The envelope every event travels in, and the helpers every service uses with it.

Envelope: CloudEvents 1.0, structured JSON mode (content type ``application/cloudevents+json``).
``(source, id)`` identifies an event everywhere; handlers de-duplicate on it.

An event type is a subclass of ``CloudEvent[<payload>]`` with a ``type`` literal; defining
the subclass registers it (``EVENT_TYPES``), so the parser, the AsyncAPI/JSON-Schema
documents and the contract tests all see it without a list to edit.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

CONTENT_TYPE = "application/cloudevents+json"

# Months are the city's months: an activity at 23:30 on 30 June in Hunan belongs to June.
CITY_TZ = ZoneInfo("Asia/Shanghai")

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Period = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2020-06"])]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def period_of(moment: datetime) -> str:
    """The month (YYYY-MM, city time) a moment falls in."""
    return moment.astimezone(CITY_TZ).strftime("%Y-%m")


class Data(BaseModel):
    """Base of every event payload: unknown fields are refused, so a township's typo is
    reported instead of silently ignored. Text fields refuse control characters (NUL, the
    rest of C0 and C1, DEL): stored text ends up in spreadsheets, CSV files and logs, whose
    writers choke on them or are tricked by them. Line breaks and tabs are text only in the
    fields a payload lists in ``FREE_TEXT`` (a caption, a reason)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    FREE_TEXT: ClassVar[frozenset[str]] = frozenset()
    # Payloads the platform writes about others' input (a rejection quoting what it refused)
    # are not checked: they must be writable whatever they quote.
    CHECK_TEXT: ClassVar[bool] = True

    @field_validator("*", mode="after")
    @classmethod
    def _text_has_no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if cls.CHECK_TEXT:
            _check_text(value, free_text=info.field_name in cls.FREE_TEXT)
        return value


def _check_text(value: Any, *, free_text: bool) -> None:
    from shared.door import control_character_problem

    texts = (
        [value]
        if isinstance(value, str)
        else [v for v in value if isinstance(v, str)]
        if isinstance(value, list | tuple)
        else []
    )
    for text in texts:
        if problem := control_character_problem(text, free_text=free_text):
            raise ValueError(problem)


DataT = TypeVar("DataT", bound=Data)

# Every concrete event type, by its ``type`` (= routing key), in definition order.
EVENT_TYPES: dict[str, type[CloudEvent[Any]]] = {}


def _required_by_cloudevents(schema: dict[str, Any]) -> None:
    # ``specversion`` and ``type`` have defaults for building events in code, but a sender
    # must state them: CloudEvents requires them, and the parser needs ``type`` to choose
    # the model.
    schema["required"] = sorted({*schema.get("required", []), "specversion", "type"})


class CloudEvent(BaseModel, Generic[DataT]):
    """CloudEvents 1.0 envelope (structured mode)."""

    model_config = ConfigDict(frozen=True, extra="allow", json_schema_extra=_required_by_cloudevents)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1, max_length=256, description="URI-reference of the producer.")
    type: str
    time: AwareDatetime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: DataT

    @field_validator("id", "source", "subject", mode="after")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None:
            _check_text(value, free_text=False)
        return value

    TYPE: ClassVar[str]  # the routing key; set from the subclass's ``type`` literal
    # Who may publish it on the ingress exchange: "township" (and the office), "office"
    # only, or "platform" (services publish it on wmsj.events; nobody sends it in).
    PUBLISHED_BY: ClassVar[Literal["township", "office", "platform"]] = "platform"

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        default = cls.model_fields["type"].default
        if isinstance(default, str):
            cls.TYPE = default
            if default in EVENT_TYPES:
                raise TypeError(f"event type {default} is defined twice")
            EVENT_TYPES[default] = cls

    @property
    def key(self) -> str:
        """The de-duplication key: the same (source, id) is the same event."""
        return f"{self.source}|{self.id}"


def new_event(
    model: type[CloudEvent[DataT]],
    data: DataT,
    *,
    source: str,
    id: str | None = None,
    time: datetime,
    subject: str | None = None,
) -> CloudEvent[DataT]:
    # ``type`` comes from the concrete model's literal default, which mypy cannot see.
    return model(id=id or str(uuid.uuid4()), source=source, time=time, subject=subject, data=data)  # type: ignore[call-arg]


def statement(stated_at: datetime, data: Data) -> tuple[datetime, str]:
    """How two statements of the same fact are ordered: the later event time wins, and at
    the same time the canonical content decides, so the outcome never depends on which of
    two events arrives first."""
    return stated_at, data.model_dump_json()


def derived_id(cause_key: str, what: str) -> str:
    """A stable id for an event caused by another: re-handling the cause after a crash
    republishes the *same* event, which consumers then de-duplicate."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{cause_key}#{what}"))


class FieldError(Data):
    CHECK_TEXT = False  # it may quote a sender's field name, whatever it holds

    location: str
    message: str


def describe_errors(error: ValidationError) -> list[FieldError]:
    """Turn pydantic's errors into ``location: message`` pairs a township developer can act on."""
    out = []
    for e in error.errors(include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        # The discriminated union adds the tag to the path ("wmsj.unit.registered.v1.data.name");
        # the sender only cares about the field.
        loc = re.sub(r"^wmsj\.[a-z_.-]+\.v\d+\.?", "", loc)
        # A field name the sender made up may hold anything: shown, never replayed raw.
        loc = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in loc)
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = "type"
        out.append(FieldError(location=loc or "(event)", message=e["msg"]))
    return out
