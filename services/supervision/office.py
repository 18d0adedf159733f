"""The office's actions taken in the dashboard, as the events the bus already accepts.

The page never writes JSON: it uploads the key project list as a spreadsheet, gives a
verdict on a flagged pair of photos, fills in an inspection. Supervision turns each into the
same CloudEvent an office system would publish (``wmsj.projects.published.v1``,
``wmsj.evidence.reviewed.v1``) and publishes it on the ingress exchange *as the office*:
with the office's broker user (``WMSJ_OFFICE_AMQP_URL``; by default the service's own,
which is the office's ``guest`` on a development broker) stated as ``user_id``, so the
owning service checks it exactly as it checks any office system. Refusals come back on a
reply queue of this process and are kept (by event id) for the page to show.
"""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from openpyxl import Workbook, load_workbook
from pydantic import ValidationError

from services.supervision.sheets import add_sheet, xlsx_bytes
from shared.events import CONTENT_TYPE, CloudEvent, EventRejectedEvent
from shared.events.activities import KeyProject, ProjectListPublished

INGRESS_EXCHANGE = "wmsj.ingress"
log = logging.getLogger("wmsj.supervision.office")

# The template's columns: (header the office reads, field of KeyProject).
PROJECT_COLUMNS = (
    ("项目编号", "project_id"),
    ("项目主题", "theme"),
    ("开展月份（如 1,3,5）", "months"),
    ("牵头单位编号（逗号分隔）", "lead_unit_ids"),
    ("参与单位类型（逗号分隔，如 village,community）", "participant_kinds"),
    ("参与单位编号（逗号分隔）", "participant_unit_ids"),
    ("最少照片数", "min_photos"),
    ("需要文字报告（是/否）", "text_report"),
    ("报送时限（天）", "report_within_days"),
    ("分值", "points"),
)
EXAMPLE = (
    "P-2026-01",
    "关爱留守儿童",
    "1,2,3,4,5,6,7,8,9,10,11,12",
    "",
    "village,community",
    "",
    2,
    "是",
    7,
    10,
)


def project_template() -> bytes:
    book = Workbook()
    add_sheet(book, "重点项目清单", [h for h, _ in PROJECT_COLUMNS], [EXAMPLE], first=True)
    return xlsx_bytes(book)


class ProjectListError(ValueError):
    """The uploaded list cannot be published: each error names its row and column."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['location']}: {e['message']}" for e in errors))
        self.errors = errors


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    return [p.strip() for p in str(value).replace("，", ",").split(",") if p.strip()]


def parse_project_list(content: bytes) -> list[KeyProject]:
    """The key projects of an uploaded XLSX (the template's columns), or every error found."""
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:
        raise ProjectListError([{"location": "文件", "message": "不是有效的 XLSX 文件"}]) from None
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    if not rows:
        raise ProjectListError([{"location": "文件", "message": "表格是空的"}])
    projects, errors = [], []
    for n, row in enumerate(rows[1:], start=2):
        if not any(v not in (None, "") for v in row):
            continue
        cells = dict(
            zip([f for _, f in PROJECT_COLUMNS], list(row) + [None] * len(PROJECT_COLUMNS), strict=False)
        )
        raw: dict[str, Any] = {
            "project_id": str(cells["project_id"] or "").strip(),
            "theme": str(cells["theme"] or "").strip(),
            "months": [],
            "lead_unit_ids": _split(cells["lead_unit_ids"]),
            "participant_kinds": _split(cells["participant_kinds"]),
            "participant_unit_ids": _split(cells["participant_unit_ids"]),
            "evidence": {
                "min_photos": cells["min_photos"] if cells["min_photos"] not in (None, "") else 1,
                "text_report": str(cells["text_report"] or "是").strip() not in ("否", "no", "false", "0"),
                "report_within_days": cells["report_within_days"]
                if cells["report_within_days"] not in (None, "")
                else 7,
            },
            "points": cells["points"] if cells["points"] not in (None, "") else 0,
        }
        try:
            raw["months"] = [int(float(m)) for m in _split(cells["months"])]
        except ValueError:
            errors.append({"location": f"第 {n} 行 开展月份", "message": "月份须为 1-12 的数字，逗号分隔"})
            continue
        try:
            projects.append(KeyProject.model_validate(raw))
        except ValidationError as invalid:
            for e in invalid.errors():
                column = next((h for h, f in PROJECT_COLUMNS if f == str(e["loc"][-1])), "")
                column = column or next(
                    (h for h, f in PROJECT_COLUMNS if f == str(e["loc"][0])), str(e["loc"][0])
                )
                errors.append({"location": f"第 {n} 行 {column}", "message": e["msg"]})
    if not projects and not errors:
        errors.append({"location": "文件", "message": "没有项目行（第 1 行是表头）"})
    ids = [p.project_id for p in projects]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        errors.append({"location": "项目编号", "message": f"{dup} 重复"})
    if errors:
        raise ProjectListError(errors)
    return projects


def project_list(year: int, version: int, projects: list[KeyProject]) -> ProjectListPublished:
    try:
        return ProjectListPublished(year=year, version=version, projects=projects)
    except ValidationError as invalid:
        raise ProjectListError(
            [
                {"location": ".".join(map(str, e["loc"])) or "清单", "message": e["msg"]}
                for e in invalid.errors()
            ]
        ) from None


class OfficeDesk:
    """Publishes the office's events on the ingress exchange as the office's broker user, and
    keeps what the owning services refused (by event id)."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.user_id = unquote(urlsplit(amqp_url).username or "guest")
        self.refused: dict[str, dict[str, Any]] = {}
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._replies: aio_pika.abc.AbstractQueue | None = None

    async def _open(self) -> aio_pika.abc.AbstractExchange:
        if self._exchange is None:
            self._connection = await aio_pika.connect_robust(self.amqp_url)
            channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchange = await channel.get_exchange(INGRESS_EXCHANGE, ensure=True)
            self._replies = await channel.declare_queue(exclusive=True, auto_delete=True)
            await self._replies.consume(self._on_reply)
        return self._exchange

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            try:
                rejected = EventRejectedEvent.model_validate_json(message.body).data
            except ValidationError:
                log.warning("an unreadable reply on the office's reply queue")
                return
            if rejected.rejected_id:
                self.refused[rejected.rejected_id] = rejected.model_dump(mode="json")
                while len(self.refused) > 1000:  # the page asks soon after; old ones are dropped
                    self.refused.pop(next(iter(self.refused)))

    async def publish(self, event: CloudEvent[Any]) -> None:
        exchange = await self._open()
        assert self._replies is not None
        await exchange.publish(
            aio_pika.Message(
                event.model_dump_json().encode(),
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=event.id,
                timestamp=datetime.now(UTC),
                reply_to=self._replies.name,
                user_id=self.user_id,
            ),
            routing_key=event.type,
        )

    async def close(self) -> None:
        if self._connection:
            await self._connection.close()
            self._connection = self._exchange = self._replies = None
