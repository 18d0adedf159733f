"""A generated city month for the fault suite: several townships, each with its practice
institute (所), villages with their stations (站) and a squad (分队); activities with a photo
and a written report each; a few faulty events (each must be refused back to its sender);
every event's copy sent again (duplicates), all in a shuffled order."""

from __future__ import annotations

import hashlib
import random
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
from wmsj.demo import png


@dataclass(frozen=True)
class Faulty:
    """An event a service must refuse, and the id the refusal names."""

    event_id: str
    body: bytes
    routing_key: str
    township: str | None  # its sender (None: the office)


@dataclass
class CityMonth:
    period: str
    events: list[CloudEvent[Any]] = field(default_factory=list)  # distinct, valid
    faulty: list[Faulty] = field(default_factory=list)
    uploads: list[tuple[str, bytes, str]] = field(default_factory=list)  # key, content, type
    sends: list[CloudEvent[Any] | Faulty] = field(default_factory=list)  # what is published, in order

    @property
    def townships(self) -> set[str]:
        """The townships whose systems publish the month (each its own events)."""
        return {e.source.removeprefix("/townships/") for e in self.events}

    @property
    def units(self) -> int:
        return sum(isinstance(e, UnitRegisteredEvent) for e in self.events)


def city_month(townships: int, villages: int, run: str, seed: int = 12, duplicates: float = 0.1) -> CityMonth:
    """``townships`` × (township, institute, squad, ``villages`` × (village, station)) units,
    one to three activities each (an activity: schedule, completion, photo, report)."""
    rng = random.Random(seed)
    month = CityMonth(period="2020-06")
    first_day = datetime(2020, 6, 1, 9, 0, tzinfo=CITY_TZ)
    counter = iter(range(1, 10_000_000))

    def add(model: type[CloudEvent[Any]], data: Any, township: str, at: datetime) -> None:
        month.events.append(
            new_event(
                model,
                data,
                id=f"{run}-{next(counter):06d}",
                source=f"/townships/{township}",
                time=at.astimezone(UTC),
                subject=getattr(data, "activity_id", None) or data.unit_id,
            )
        )

    for t in range(townships):
        code = f"4313{81001 + t:05d}"
        members = [
            UnitRegistered(unit_id=code, name=f"第{t + 1}街道", kind=UnitKind.STREET, township_id=code),
            UnitRegistered(
                unit_id=f"{code}-S",
                name=f"第{t + 1}街道新时代文明实践所",
                kind=UnitKind.PRACTICE_INSTITUTE,
                parent_id=code,
                township_id=code,
            ),
            UnitRegistered(
                unit_id=f"{code}-FD1",
                name=f"第{t + 1}街道志愿服务分队",
                kind=UnitKind.SQUAD,
                parent_id=f"{code}-S",
                township_id=code,
            ),
        ]
        for v in range(villages):
            village = f"{code}{201 + v:03d}"
            members += [
                UnitRegistered(
                    unit_id=village,
                    name=f"第{t + 1}街道第{v + 1}村",
                    kind=UnitKind.VILLAGE,
                    parent_id=code,
                    township_id=code,
                ),
                UnitRegistered(
                    unit_id=f"{village}-Z",
                    name=f"第{t + 1}街道第{v + 1}村文明实践站",
                    kind=UnitKind.PRACTICE_STATION,
                    parent_id=village,
                    township_id=code,
                ),
            ]
        for unit in members:
            add(UnitRegisteredEvent, unit, code, first_day - timedelta(days=3))
        for unit in members:
            for n in range(rng.randint(0, 3)):  # some units do nothing: they score zero
                activity_id = f"{run}-{unit.unit_id}-{n + 1}"
                starts = first_day + timedelta(days=rng.randint(0, 26), hours=rng.randint(0, 6))
                ends = starts + timedelta(hours=rng.choice([2, 3, 4]))
                add(
                    ActivityScheduledEvent,
                    ActivityScheduled(
                        activity_id=activity_id,
                        unit_id=unit.unit_id,
                        project_id=f"2020-P{rng.randint(1, 12):02d}",
                        title=f"{unit.name}志愿服务活动{n + 1}",
                        starts_at=starts,
                        ends_at=ends,
                        place=unit.name,
                    ),
                    code,
                    starts - timedelta(days=5),
                )
                volunteers = rng.randint(3, 15)
                add(
                    ActivityCompletedEvent,
                    ActivityCompleted(
                        activity_id=activity_id,
                        unit_id=unit.unit_id,
                        ended_at=ends,
                        volunteers=volunteers,
                        service_hours=float(volunteers * 2),
                        people_served=rng.randint(10, 200),
                    ),
                    code,
                    ends + timedelta(hours=1),
                )
                photo = png(seed * 1_000_000 + len(month.uploads))
                report = f"{unit.name}：{activity_id}活动总结，志愿者{volunteers}人。\n".encode()
                for suffix, name, content, kind in (
                    ("E1", "photo-1.png", photo, "image/png"),
                    ("R1", "report.txt", report, "text/plain"),
                ):
                    key = f"{run}/{code}/{activity_id}/{name}"
                    month.uploads.append((key, content, kind))
                    add(
                        EvidenceSubmittedEvent,
                        EvidenceSubmitted(
                            evidence_id=f"{activity_id}-{suffix}",
                            activity_id=activity_id,
                            unit_id=unit.unit_id,
                            object_key=key,
                            sha256=hashlib.sha256(content).hexdigest(),
                            size=len(content),
                            content_type=kind,
                            caption=f"{unit.name}{name}",
                        ),
                        code,
                        ends + timedelta(hours=3),
                    )
    # Faulty events: each must come back to the sender as a refusal, however often sent.
    for n in range(3):
        event_id = f"{run}-bad-{n}"
        body = (
            b'{"specversion": "1.0", "id": "' + event_id.encode() + b'", "source": "/townships/431381001",'
            b' "type": "wmsj.activity.completed.v1", "data": {"activity_id": "x"}}'
        )
        month.faulty.append(Faulty(event_id, body, "wmsj.activity.completed.v1", "431381001"))
    # Sent by the office: the broker's topic permissions stop a township's unknown type
    # before any service sees it (and close the township's channel).
    month.faulty.append(
        Faulty(f"{run}-bad-route", b'{"id": "' + f"{run}-bad-route".encode() + b'"}', "wmsj.nothing.v1", None)
    )
    sends: list[CloudEvent[Any] | Faulty] = [*month.events, *month.faulty]
    sends += rng.sample(sends, int(len(sends) * duplicates))
    rng.shuffle(sends)
    month.sends = sends
    return month
