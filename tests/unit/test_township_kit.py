"""The client kit without servers: a builder for every township event type, the examples of
every type valid against their models, and the outbox file keeping what was not confirmed."""

from __future__ import annotations

import inspect
from pathlib import Path

from shared.events import ALL_EVENTS, TOWNSHIP_EVENTS, parse_event
from wmsj.examples import DATA, example
from wmsj.township import Events, Outbox
from wmsj.township.outbox import Entry


def builders() -> dict[str, str]:
    """Event type -> the ``Events`` method that builds it (from the return annotations)."""
    found = {}
    for name, method in inspect.getmembers(Events, inspect.isfunction):
        if name.startswith("_"):
            continue
        model = inspect.get_annotations(method, eval_str=True)["return"]
        found[model.TYPE] = name
    return found


def test_every_township_event_type_has_a_typed_builder() -> None:
    assert set(builders()) == {e.TYPE for e in TOWNSHIP_EVENTS}


def test_each_builder_makes_its_type_with_the_townships_source_a_new_id_and_the_time() -> None:
    events = Events("431381101")
    models = {e.TYPE: e for e in TOWNSHIP_EVENTS}
    for event_type, name in builders().items():
        model = models[event_type]
        data = model.model_fields["data"].annotation.model_validate(DATA[event_type])  # type: ignore[union-attr]
        one, two = getattr(events, name)(data), getattr(events, name)(data)
        assert (one.type, one.source) == (event_type, "/townships/431381101")
        assert one.id != two.id and one.time.tzinfo is not None
        assert parse_event(one.model_dump_json()) == one


def test_every_event_type_has_an_example_valid_against_its_model() -> None:
    for event in ALL_EVENTS:
        assert parse_event(example(event.TYPE)).type == event.TYPE


def entry(n: int) -> Entry:
    return Entry(
        key=f"/townships/t|e-{n}", routing_key="wmsj.unit.registered.v1", message_id=f"e-{n}", body="{}"
    )


def test_the_outbox_keeps_what_was_not_confirmed_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    outbox = Outbox(path)
    for n in (1, 2, 3):
        outbox.add(entry(n))
    outbox.done("/townships/t|e-2")
    with path.open("a") as f:
        f.write('{"done": "/townships/t|e-')  # a crash in the middle of a line
    reopened = Outbox(path)
    assert reopened.pending() == [entry(1), entry(3)]
    # Reopening rewrote the file with only what is pending.
    assert len(path.read_text().splitlines()) == 2


def test_adding_an_event_twice_keeps_it_once(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    outbox.add(entry(1))
    outbox.add(entry(1))
    outbox.done("/townships/t|e-1")
    assert Outbox(tmp_path / "outbox.jsonl").pending() == []
