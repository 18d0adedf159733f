"""``wmsj``: run the platform on one machine and talk to it as a township or the office would.

wmsj up            start the servers (RabbitMQ, MongoDB-wire, S3) and the four services
                   (--replicas N: N instances of each)
wmsj status        health of each service
wmsj down          stop the four services (--infra: the servers too)
wmsj demo          publish a month from three townships, print the score table
wmsj publish FILE  validate events locally, publish the valid ones, report every rejection
wmsj validate FILE check a file of events offline, with the services' own rules
wmsj scores        print the score table of a month
wmsj township add|rotate|show|list|revoke ID   township systems' identities (management HTTP API)
wmsj backup DIR / wmsj restore DIR   every database, the evidence bucket, the broker's definitions
wmsj import units|volunteers FILE   import a CSV/XLSX into the registry, print the row errors
wmsj export units|volunteers FILE   export the registry to a .csv or .xlsx file
wmsj replay SERVICE [--from TIME]   rebuild a service's database from the event archive
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.registry.domain import check_registration
from shared.events import TOWNSHIP_EVENTS, CloudEvent, UnitRegistered, describe_errors, parse_event
from shared.events.units import UnitRegisteredV2
from shared.identity import Publisher, owning_township, township_user
from shared.settings import CommonSettings, S3Settings
from wmsj import processes
from wmsj.client import TownshipClient, object_store, upload
from wmsj.demo import demo_month
from wmsj.township import BrokerRefused, ReplyListener
from wmsj.township import Publisher as KitPublisher

TOWNSHIP_TYPES = {e.TYPE for e in TOWNSHIP_EVENTS}


def _print_health(layout: processes.Layout) -> bool:
    ok = True
    for name, port in layout.ports.items():
        status, body = processes.health(port)
        ok &= status == 200
        state = "ready" if status == 200 else f"NOT READY ({status or 'down'}: {body[:80]})"
        print(f"  {name:<12} http://127.0.0.1:{port:<5}  {state}")
    return ok


def cmd_up(args: argparse.Namespace) -> int:
    layout = processes.Layout.default(getattr(args, "replicas", 1))
    if not args.no_infra:
        subprocess.run(["bash", str(processes.ROOT / "scripts" / "services.sh"), "start"], check=True)
    for name in layout.ports:
        processes.start(layout, name)
    processes.wait_ready(layout, list(layout.ports), timeout=args.timeout)
    print("services (logs in", layout.state_dir / "log", "):")
    return 0 if _print_health(layout) else 1


def cmd_status(_: argparse.Namespace) -> int:
    return 0 if _print_health(processes.Layout.default()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    layout = processes.Layout.default()
    for name in sorted(set(layout.ports) | set(layout.running())):
        print(f"  {name:<12} {'stopped' if processes.stop(layout, name) else 'was not running'}")
    if args.infra:
        subprocess.run(["bash", str(processes.ROOT / "scripts" / "services.sh"), "stop"], check=True)
    return 0


# ------------------------------------------------------------------------------ events in


def read_events(path: Path) -> list[tuple[int, dict[str, Any] | str]]:
    """(line, event) pairs from a JSON array or JSON-lines file; a line that is not JSON is
    kept as its text so it is reported, not skipped."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return list(enumerate(json.loads(text), start=1))
        except ValueError as error:
            return [(getattr(error, "lineno", 1), f"not a JSON array: {error}")]
    out: list[tuple[int, dict[str, Any] | str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out.append((number, json.loads(line)))
            except ValueError:
                out.append((number, line))
    return out


def validate(raw: Any, township: str | None = None) -> CloudEvent[Any]:
    """The check a service applies on receipt, plus: only township event types. The
    registry's rules that need no registry (ids by kind, own parent…) apply too; with
    ``township``, so do the scope rules that can be checked offline."""
    if isinstance(raw, str):
        raw = raw.encode()
    elif not isinstance(raw, dict):
        raise ValueError(f"an event must be a JSON object, not {type(raw).__name__}")
    event = parse_event(raw)
    if event.type not in TOWNSHIP_TYPES:
        raise ValueError(f"{event.type} is published by the platform, not by townships")
    if isinstance(event.data, UnitRegistered | UnitRegisteredV2):
        check_registration(event.data)  # RefusedUnit is a ValueError
        if township is not None:
            owner = owning_township(event.data.unit_id, event.data.kind, event.data.township_id)
            if owner is not None and (
                reason := Publisher(township_user(township), township).may_not_publish_about(
                    event.data.unit_id, owner
                )
            ):
                raise ValueError(reason)
    return event


def _check_file(path: Path, township: str | None = None) -> tuple[list[CloudEvent[Any]], int]:
    good, bad = [], 0
    for number, raw in read_events(path):
        try:
            good.append(validate(raw, township))
        except ValidationError as error:
            bad += 1
            for problem in describe_errors(error):
                print(f"{path}:{number}: {problem.location}: {problem.message}")
        except ValueError as error:
            bad += 1
            print(f"{path}:{number}: {error}")
    return good, bad


def cmd_validate(args: argparse.Namespace) -> int:
    good, bad = _check_file(Path(args.file), args.township)
    print(f"{len(good)} valid, {bad} invalid")
    return 1 if bad else 0


def cmd_publish(args: argparse.Namespace) -> int:
    """With the client kit (wmsj.township): confirms, an outbox file (``--outbox``: a run
    that was cut off sends what was not confirmed first), refusals from the reply queue."""
    good, bad = _check_file(Path(args.file))
    if bad:
        print(f"{bad} invalid events were not published")

    async def run() -> int:
        url = CommonSettings().amqp_url
        refused = 0
        async with (
            ReplyListener(url) as replies,
            KitPublisher(url, outbox=args.outbox, reply_to=replies.queue_name) as publisher,
        ):
            for event in good:
                try:
                    await publisher.publish(event)
                except BrokerRefused as refusal:
                    refused += 1
                    print(f"{event.id}: the broker refused it: {refusal}")
            print(f"{len(good) - refused} events published; waiting up to {args.wait}s for rejections")
            found = await replies.wait_for({e.id for e in good}, timeout=args.wait)
            for rejection in found.values():
                _print_rejection(rejection)
            return 1 if found or bad or refused else 0

    return asyncio.run(run())


def _print_rejection(rejected: Any) -> None:
    print(
        f"REJECTED {rejected.rejected_type} id={rejected.rejected_id} by {rejected.rejected_by}: {rejected.reason}"
    )
    for problem in rejected.errors:
        print(f"    {problem.location}: {problem.message}")


# ------------------------------------------------------------------------------ scores out


def fetch_scores(period: str, port: int = processes.SERVICES["supervision"]) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/scores?period={period}",
        headers={"Authorization": f"Bearer {os.environ.get('WMSJ_API_KEY', 'dev-office-key')}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        rows: list[dict[str, Any]] = json.load(response)
        return rows


def print_scores(rows: list[dict[str, Any]], period: str) -> None:
    print(f"\nSupervision scores for {period} (rules {rows[0]['rules_version'] if rows else '-'}):")
    print(
        f"{'#':>3}  {'unit':<16} {'name':<26} {'kind':<19} {'score':>6}  activity evidence timely participation"
    )
    for row in rows:
        items = {item["rule"]: item["points"] for item in row["breakdown"]}
        name = (row["name"] or "?")[:13]
        # Chinese characters are two columns wide in a terminal.
        pad = 26 - sum(2 if ord(c) > 0x2E80 else 1 for c in name)
        print(
            f"{row['rank']:>3}  {row['unit_id']:<16} {name}{' ' * max(pad, 1)}{(row['kind'] or '?'):<19}"
            f" {row['score']:>6.1f}  {items.get('monthly_activity', 0):>8.1f} {items.get('evidence', 0):>8.1f}"
            f" {items.get('evidence_timely', 0):>6.1f} {items.get('participation', 0):>13.1f}"
        )


def wait_for_scores(
    period: str, expect_active: set[str], expect_evidence: set[str], timeout: float
) -> list[dict[str, Any]]:
    """Poll until every unit that ran an activity is scored, every unit that reported photos
    has its evidence points (evidence can wait for its activity's schedule to reach the
    evidence service), and the table has stopped changing."""
    deadline = time.monotonic() + timeout
    previous: list[dict[str, Any]] | None = None
    while True:
        rows = fetch_scores(period)
        scored = {r["unit_id"] for r in rows if r["score"] > 0}
        evidenced = {
            r["unit_id"] for r in rows for i in r["breakdown"] if i["rule"] == "evidence" and i["points"] > 0
        }
        if expect_active <= scored and expect_evidence <= evidenced and rows == previous:
            return rows
        if time.monotonic() > deadline:
            print(
                f"timed out: {len(expect_active - scored)} active units unscored, "
                f"{len(expect_evidence - evidenced)} without their evidence points yet",
                file=sys.stderr,
            )
            return rows
        previous = rows
        time.sleep(2)


def cmd_demo(args: argparse.Namespace) -> int:
    if cmd_up(argparse.Namespace(no_infra=args.no_infra, timeout=90)) != 0:
        print("the services are not ready; see the logs above", file=sys.stderr)
        return 1
    year, month = (int(p) for p in args.period.split("-"))
    demo = demo_month(year, month)
    s3 = S3Settings()
    store = object_store(s3)
    for item in demo.uploads:
        upload(store, s3.upload_bucket, item.key, item.content, item.content_type)
    print(f"\nuploaded {len(demo.uploads)} photos and reports to s3://{s3.upload_bucket}/")

    async def publish() -> list[Any]:
        async with TownshipClient(CommonSettings().amqp_url) as township:
            for event in demo.events:
                await township.publish(event)
            # Two mistakes a township system makes, to show what it is told:
            await township.publish_raw(
                b'{"specversion": "1.0", "id": "demo-bad-1", "source": "/townships/431381101",'
                b' "type": "wmsj.activity.completed.v1", "data": {"activity_id": "x"}}',
                routing_key="wmsj.activity.completed.v1",
            )
            await township.publish_raw(b'{"id": "demo-bad-2"}', routing_key="wmsj.volunteer.hours.v1")
            print(f"published {len(demo.events)} events from {len(demo.units)} units + 2 faulty ones")
            return await township.wait_for_rejections(2, timeout=30)

    for rejection in asyncio.run(publish()):
        _print_rejection(rejection)
    rows = wait_for_scores(demo.period, demo.active_units, demo.units_with_photos, timeout=args.timeout)
    print_scores(rows, demo.period)
    return 0


def cmd_township(args: argparse.Namespace) -> int:
    """add / rotate / show / list / revoke, through the broker's management HTTP API."""
    import asyncio

    from shared.onboarding import BrokerAdmin, OnboardingError
    from wmsj.townships import access_text, info_text, set_api_key

    env_file = Path(args.env_file) if getattr(args, "env_file", None) else None

    async def run() -> int:
        async with BrokerAdmin(CommonSettings().amqp_url, public_amqp_url=args.public_amqp_url) as admin:
            if args.action in ("add", "rotate"):
                access = await (admin.add if args.action == "add" else admin.rotate)(args.township_id)
                if env_file:
                    set_api_key(env_file, access.township_id, access.api_key)
                print(access_text(access, env_file))
            elif args.action == "show":
                info = await admin.show(args.township_id)
                if info is None:
                    print(f"no township {args.township_id} on this broker", file=sys.stderr)
                    return 1
                print(info_text(info))
            elif args.action == "list":
                for info in await admin.list():
                    print(info_text(info))
            else:  # revoke
                found = await admin.revoke(args.township_id)
                if env_file:
                    set_api_key(env_file, args.township_id, None)
                print(
                    f"township {args.township_id}: "
                    + ("revoked" if found else "no such user (nothing to revoke)")
                )
        return 0

    try:
        return asyncio.run(run())
    except (OnboardingError, ValueError) as problem:
        print(f"wmsj township {args.action}: {problem}", file=sys.stderr)
        return 1


def cmd_backup(args: argparse.Namespace) -> int:
    """Back up (or restore) every service database, the evidence bucket and the broker's
    definitions, online (wmsj/backup.py)."""
    from wmsj import backup

    plan = backup.default_plan()
    directory = Path(args.directory)
    if args.action == "backup":
        manifest = backup.backup(directory, plan)
        done = asyncio.run(manifest)
        documents = sum(sum(c.values()) for c in done["mongo"].values())
        objects = sum(done["s3"].values())
        print(
            f"backed up {documents} documents, {objects} objects and the broker's definitions to {directory}"
        )
    else:
        restored = asyncio.run(backup.restore(directory, plan))
        documents = sum(sum(c.values()) for c in restored["mongo"].values())
        print(
            f"restored {documents} documents, {sum(restored['s3'].values())} new objects, and the broker's definitions"
        )
    return 0


def _registry_request(path: str, data: bytes | None = None, content_type: str = "") -> bytes:
    port = processes.SERVICES["registry"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    request.add_header("Authorization", f"Bearer {args_api_key()}")
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=600) as response:
        body: bytes = response.read()
        return body


def args_api_key() -> str:
    import os

    from shared.auth import DEV_OFFICE_KEY

    return os.environ.get("WMSJ_API_KEY", DEV_OFFICE_KEY)


def cmd_import(args: argparse.Namespace) -> int:
    import uuid

    path = Path(args.file)
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    report = json.loads(
        _registry_request(f"/import/{args.what}", body, f"multipart/form-data; boundary={boundary}")
    )
    for error in report["errors"]:
        print(f"{path}: row {error['row']}, column {error['column']}: {error['reason']}")
    print(
        f"{report['imported']} imported, {report['unchanged']} unchanged, "
        f"{report.get('held', 0)} waiting for their parent, {len(report['errors'])} errors"
    )
    return 1 if report["errors"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    path = Path(args.file)
    fmt = "xlsx" if path.suffix.lower() == ".xlsx" else "csv"
    path.write_bytes(_registry_request(f"/export/{args.what}?format={fmt}"))
    print(f"wrote {path}")
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    print_scores(fetch_scores(args.period), args.period)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from wmsj.replay import replay

    since: datetime | str = "first"
    if args.since:
        since = datetime.fromisoformat(args.since)
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    into = args.into or f"replay_{datetime.now(UTC):%Y%m%d%H%M%S}_"
    done = asyncio.run(replay(args.service, CommonSettings().amqp_url, into, since, args.idle))
    print(f"{done.read} archived events read, {done.applied} applied, into database {done.database}")
    for why, count in done.skipped.items():
        print(f"  {count} skipped: {why}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wmsj", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start servers and services")
    up.add_argument("--no-infra", action="store_true", help="do not start RabbitMQ/MongoDB/S3")
    up.add_argument("--timeout", type=float, default=90)
    up.add_argument(
        "--replicas", type=int, default=1, help="instances of each service (replica k on port + 100·(k-1))"
    )
    up.set_defaults(func=cmd_up)
    sub.add_parser("status", help="health of the services").set_defaults(func=cmd_status)
    down = sub.add_parser("down", help="stop the services")
    down.add_argument(
        "--infra", action="store_true", help="also stop the servers scripts/services.sh started"
    )
    down.set_defaults(func=cmd_down)
    demo = sub.add_parser("demo", help="publish a demo month and print the scores")
    demo.add_argument("--period", default="2020-06")
    demo.add_argument("--timeout", type=float, default=120)
    demo.add_argument("--no-infra", action="store_true")
    demo.set_defaults(func=cmd_demo)
    publish = sub.add_parser("publish", help="validate and publish a file of events")
    publish.add_argument("file")
    publish.add_argument("--wait", type=float, default=5, help="seconds to wait for rejections")
    publish.add_argument("--outbox", help="file of events not confirmed yet (sent first on the next run)")
    publish.set_defaults(func=cmd_publish)
    check = sub.add_parser("validate", help="check a file of events offline")
    check.add_argument("file")
    check.add_argument("--township", help="also check the scope rules for this township's system")
    check.set_defaults(func=cmd_validate)
    scores = sub.add_parser("scores", help="print a month's score table")
    scores.add_argument("--period", required=True)
    scores.set_defaults(func=cmd_scores)
    township = sub.add_parser(
        "township",
        help="township systems' identities (RabbitMQ management API: WMSJ_RABBITMQ_MANAGEMENT_URL/_USER/_PASSWORD)",
    )
    township.add_argument(
        "--public-amqp-url", help="the broker's address as townships reach it (default: WMSJ_AMQP_URL's)"
    )
    township_sub = township.add_subparsers(dest="action", required=True)
    for action, text in (
        (
            "add",
            "create a township's user, permissions, reply queue and API key (again: new password and key)",
        ),
        ("rotate", "a new password and API key for an existing township"),
        ("show", "what a township has, without secrets"),
        ("revoke", "delete a township's user and close its connections (its reply queue stays)"),
    ):
        one = township_sub.add_parser(action, help=text)
        one.add_argument("township_id")
        if action in ("add", "rotate", "revoke"):
            one.add_argument("--env-file", help="write (or remove) the API key entry in this .env file")
        one.set_defaults(func=cmd_township)
    township_sub.add_parser("list", help="every township on this broker").set_defaults(func=cmd_township)
    for action, text in (
        ("backup", "back up the databases, the evidence bucket and the broker's definitions to DIR (online)"),
        ("restore", "restore a backup made by `wmsj backup` (onto an empty stack)"),
    ):
        one = sub.add_parser(action, help=text)
        one.add_argument("directory")
        one.set_defaults(func=cmd_backup, action=action)
    imp = sub.add_parser("import", help="import units or volunteers from a CSV/XLSX file")
    imp.add_argument("what", choices=["units", "volunteers"])
    imp.add_argument("file")
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="export units or volunteers to a .csv/.xlsx file")
    exp.add_argument("what", choices=["units", "volunteers"])
    exp.add_argument("file")
    exp.set_defaults(func=cmd_export)
    rep = sub.add_parser("replay", help="rebuild a service's database from the event archive")
    rep.add_argument("service", choices=["supervision", "activities"])
    rep.add_argument("--from", dest="since", help="ISO time: replay events archived since then")
    rep.add_argument("--into", help="database prefix of the fresh database (default replay_<time>_)")
    rep.add_argument("--idle", type=float, default=3.0, help="seconds without events that end the archive")
    rep.set_defaults(func=cmd_replay)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
