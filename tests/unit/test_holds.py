"""The pure rules of holding early events (shared/holds.py), without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.hold_rules import Awaited, duration, outstayed, outstayed_reason


def test_what_is_awaited_is_keyed_by_its_kind_and_id_and_read_back():
    for awaited in (
        Awaited("unit", "431381101201"),
        Awaited("activity", "a:1"),
        Awaited("order", "o-1"),
        Awaited("volunteer", "v-1"),
    ):
        assert Awaited.from_key(awaited.key) == awaited
    assert Awaited("unit", "431381101201").key == "unit:431381101201"
    assert Awaited.from_key("activity:a:1") == Awaited("activity", "a:1")  # ids may hold colons


@pytest.mark.parametrize("key", ["planet:p1", "unit:", "unit", ""])  # a credit waits for "volunteer:"
def test_a_key_that_names_nothing_awaited_is_an_error(key: str):
    with pytest.raises(ValueError, match="not an awaited key"):
        Awaited.from_key(key)


def test_an_event_outstays_the_hold_once_it_has_waited_that_long():
    now = datetime(2020, 6, 1, 12, tzinfo=UTC)
    hold = timedelta(hours=1)
    fresh = {"_id": "a", "held_at": now - timedelta(minutes=59)}
    due = {"_id": "b", "held_at": now - hold}
    untimed = {"_id": "c"}
    assert outstayed([fresh, due, untimed], now, hold) == [due, untimed]
    assert outstayed([fresh], now + timedelta(minutes=1), hold) == [fresh]


def test_a_hold_reads_as_people_say_it():
    assert [duration(timedelta(seconds=s)) for s in (3600, 7200, 60, 1800, 90)] == [
        "1 h",
        "2 h",
        "1 min",
        "30 min",
        "90 s",
    ]


def test_an_outstayed_event_says_what_it_waited_for_and_what_to_do():
    hold = timedelta(hours=1)
    assert outstayed_reason(Awaited("unit", "431381101299"), hold) == (
        "unit 431381101299 was not registered within 1 h; register it first, then send the event again"
    )
    assert outstayed_reason(Awaited("activity", "a-1"), timedelta(minutes=2)) == (
        "activity a-1 was not scheduled within 2 min; schedule it first (wmsj.activity.scheduled.v1), "
        "then submit the evidence again"
    )
    assert outstayed_reason(Awaited("order", "o-1"), hold) == (
        "order o-1 was not placed (点单) within 1 h; a rating (评单) follows its order: place the order "
        "first, then send the rating again"
    )
