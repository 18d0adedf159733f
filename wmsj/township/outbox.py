"""A local outbox file: what the township system has handed to the publisher and the broker
has not confirmed yet. An event is written (and flushed to disk) before it is sent and
marked done once the broker confirms it — so a system that crashes in between, or loses its
connection, sends it again when it starts: the platform ignores the copy if the first one
did arrive (the same ``source`` and ``id`` is the same event).

The file is JSON lines, appended to: ``{"pending": {...}}`` and ``{"done": key}``. Opening it
rewrites it with only what is still pending.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    key: str  # source|id: the event's identity
    routing_key: str  # its type
    message_id: str
    body: str  # the event, JSON


class Outbox:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pending: dict[str, Entry] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:  # a line cut short by a crash: it was never confirmed
                    continue
                if "pending" in record:
                    entry = Entry(**record["pending"])
                    self._pending[entry.key] = entry
                elif "done" in record:
                    self._pending.pop(record["done"], None)
        self._rewrite()

    def pending(self) -> list[Entry]:
        """What was not confirmed, oldest first."""
        return list(self._pending.values())

    def add(self, entry: Entry) -> None:
        if entry.key not in self._pending:
            self._pending[entry.key] = entry
            self._append({"pending": asdict(entry)})

    def done(self, key: str) -> None:
        if self._pending.pop(key, None) is not None:
            self._append({"done": key})

    def _append(self, record: dict[str, object]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as f:
            for entry in self._pending.values():
                f.write(json.dumps({"pending": asdict(entry)}, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
