"""Generate the contract documents from the code (never written by hand):

- ``docs/asyncapi/<service>.json``: each service's AsyncAPI 3.0 document, by FastStream,
  completed by ``wmsj.asyncapi`` (servers, security, message examples);
- ``docs/openapi/<service>.json``: each service's HTTP API (OpenAPI 3.1, by FastAPI, with
  ``shared.openapi``'s security schemes and error responses);
- ``docs/schemas/<event type>.json``: the JSON Schema of every event type;
- the generated parts of ``docs/township-integration.md`` (``wmsj.guide``): allowed parents,
  event types, size limits, scoring rules.

``python -m wmsj.docs`` writes them; ``--check`` fails if the committed ones differ.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from shared.events import ALL_EVENTS
from wmsj.asyncapi import complete as complete_asyncapi
from wmsj.guide import GUIDE
from wmsj.guide import render as render_guide

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("registry", "activities", "evidence", "supervision")


def render() -> dict[Path, str]:
    # The documents describe the deployment (compose's host names), not this machine's settings.
    os.environ["WMSJ_AMQP_URL"] = "amqp://rabbitmq:5672/"
    out: dict[Path, str] = {}
    for name in SERVICES:
        app = importlib.import_module(f"services.{name}.app")
        spec = complete_asyncapi(json.loads(app.asyncapi.to_specification().to_json()))
        out[Path("docs/asyncapi") / f"{name}.json"] = (
            json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )
        out[Path("docs/openapi") / f"{name}.json"] = (
            json.dumps(app.create_app().openapi(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )
    for event in ALL_EVENTS:
        schema = event.model_json_schema()
        schema["$id"] = f"https://wmsj.example/schemas/{event.TYPE}.json"
        out[Path("docs/schemas") / f"{event.TYPE}.json"] = (
            json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )
    guide = (ROOT / GUIDE).read_text(encoding="utf-8")
    out[GUIDE] = render_guide(guide)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare with the committed files")
    args = parser.parse_args(argv)
    stale = []
    for relative, text in render().items():
        path = ROOT / relative
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(relative))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run: python -m wmsj.docs):", *stale, sep="\n  ")
        return 1
    print("docs up to date" if args.check else "docs written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
