"""A small, realistic month of township events, for ``wmsj demo`` and the tests.

Three townships of Lengshuijiang (冷水江市, division code 431381; the township codes below
are illustrative), each with its practice institute (所), a station (站) or two and a
volunteer squad (分队). Most units run activities and report a photo and a written report;
one does nothing this month, one reports an activity without evidence, so the score table
has something to show.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import (
    CITY_TZ,
    ActivityCompleted,
    ActivityCompletedEvent,
    ActivityScheduled,
    ActivityScheduledEvent,
    CloudEvent,
    EvidenceSubmitted,
    EvidenceSubmittedEvent,
    UnitKind,
    UnitRegistered,
    UnitRegisteredEvent,
    new_event,
)

TOWNSHIPS = [
    ("431381001", "沙塘湾街道", UnitKind.STREET),
    ("431381101", "禾青镇", UnitKind.TOWN),
    ("431381103", "金竹山镇", UnitKind.TOWN),
]
THEMES = ["理论宣讲", "移风易俗", "关爱留守儿童", "环境整治", "文明交通劝导", "防汛安全宣传"]


def png(seed: int, size: int = 16) -> bytes:
    """A small, valid PNG whose pixels depend on ``seed``: every photo is a different file."""
    rng = random.Random(seed)
    raw = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(size * 3)) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Upload:
    key: str
    content: bytes
    content_type: str


@dataclass
class DemoMonth:
    period: str
    units: list[UnitRegistered] = field(default_factory=list)
    events: list[CloudEvent[Any]] = field(default_factory=list)
    uploads: list[Upload] = field(default_factory=list)

    @property
    def units_with_photos(self) -> set[str]:
        return {e.data.unit_id for e in self.events if isinstance(e, EvidenceSubmittedEvent)}

    @property
    def active_units(self) -> set[str]:
        return {e.data.unit_id for e in self.events if isinstance(e, ActivityCompletedEvent)}


def demo_month(year: int = 2020, month: int = 6, seed: int = 2020, run: str = "demo") -> DemoMonth:
    """``run`` goes into every event id, so two runs never de-duplicate against each other."""
    rng = random.Random(seed)
    out = DemoMonth(period=f"{year:04d}-{month:02d}")
    first_day = datetime(year, month, 1, 9, 0, tzinfo=CITY_TZ)
    counter = iter(range(1, 1_000_000))

    def event(model: type[CloudEvent[Any]], data: Any, township: str, at: datetime) -> None:
        out.events.append(
            new_event(
                model,
                data,
                id=f"{run}-{next(counter):05d}",
                source=f"/townships/{township}",
                time=at.astimezone(UTC),
                subject=getattr(data, "activity_id", None) or data.unit_id,
            )
        )

    reported = first_day - timedelta(days=3)
    for t_index, (code, name, kind) in enumerate(TOWNSHIPS):
        members = [
            UnitRegistered(unit_id=code, name=name, kind=kind, township_id=code),
            UnitRegistered(
                unit_id=f"{code}-S",
                name=f"{name}新时代文明实践所",
                kind=UnitKind.PRACTICE_INSTITUTE,
                parent_id=code,
                township_id=code,
            ),
            UnitRegistered(
                unit_id=f"{code}201",
                name=f"{name}第一村",
                kind=UnitKind.VILLAGE,
                parent_id=code,
                township_id=code,
            ),
            UnitRegistered(
                unit_id=f"{code}201-Z",
                name=f"{name}第一村文明实践站",
                kind=UnitKind.PRACTICE_STATION,
                parent_id=f"{code}201",
                township_id=code,
            ),
        ]
        if t_index < 2:
            members.append(
                UnitRegistered(
                    unit_id=f"{code}-FD1",
                    name=f"{name}志愿服务分队",
                    kind=UnitKind.SQUAD,
                    parent_id=f"{code}-S",
                    township_id=code,
                )
            )
        for unit in members:
            out.units.append(unit)
            event(UnitRegisteredEvent, unit, code, reported)

        for u_index, unit in enumerate(members):
            if t_index == 2 and u_index == 3:
                continue  # this station does nothing this month: it must score zero
            for n in range(rng.randint(1, 2)):
                activity_id = f"{run}-{unit.unit_id}-{n + 1}"
                day = rng.randint(0, 26)
                starts = first_day + timedelta(days=day, hours=rng.randint(0, 6))
                ends = starts + timedelta(hours=rng.choice([2, 3, 4]))
                event(
                    ActivityScheduledEvent,
                    ActivityScheduled(
                        activity_id=activity_id,
                        unit_id=unit.unit_id,
                        project_id=f"{year}-P{rng.randint(1, 12):02d}",
                        title=f"{unit.name}{rng.choice(THEMES)}志愿服务活动",
                        starts_at=starts,
                        ends_at=ends,
                        place=unit.name,
                    ),
                    code,
                    starts - timedelta(days=5),
                )
                volunteers = rng.randint(3, 15)
                event(
                    ActivityCompletedEvent,
                    ActivityCompleted(
                        activity_id=activity_id,
                        unit_id=unit.unit_id,
                        ended_at=ends,
                        volunteers=volunteers,
                        service_hours=float(volunteers * (ends - starts).seconds // 3600),
                        people_served=rng.randint(10, 200),
                    ),
                    code,
                    ends + timedelta(hours=1),
                )
                if t_index == 1 and u_index == 2:
                    continue  # reported without photos: loses the evidence points
                photo = png(seed * 1000 + len(out.uploads))
                # The written report the contract's default requirement asks for beside the
                # photo: without it the evidence service never finds the evidence complete.
                report = f"{unit.name}：{activity_id}活动总结，志愿者{volunteers}人参加。\n".encode()
                for suffix, name, content, content_type, caption in (
                    ("E1", "photo-1.png", photo, "image/png", f"{unit.name}活动现场"),
                    ("R1", "report.txt", report, "text/plain", f"{unit.name}活动总结"),
                ):
                    key = f"{code}/{activity_id}/{name}"
                    out.uploads.append(Upload(key=key, content=content, content_type=content_type))
                    event(
                        EvidenceSubmittedEvent,
                        EvidenceSubmitted(
                            evidence_id=f"{activity_id}-{suffix}",
                            activity_id=activity_id,
                            unit_id=unit.unit_id,
                            object_key=key,
                            sha256=hashlib.sha256(content).hexdigest(),
                            size=len(content),
                            content_type=content_type,
                            caption=caption,
                        ),
                        code,
                        ends + timedelta(hours=3),
                    )
    return out
