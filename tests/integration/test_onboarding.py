"""Township onboarding through the RabbitMQ management HTTP API (``wmsj township`` and the
registry's office route), against the real broker: idempotent (again = a new password),
everything a township needs printed once and no secret afterwards, revocation closes it out."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

import aio_pika
import httpx
import pytest
from fastapi import FastAPI

from shared.auth import caller_dependency, parse_keys
from shared.onboarding import BrokerAdmin, ManagementSettings, OnboardingError
from tests.conftest import Infra
from wmsj.cli import main
from wmsj.townships import set_api_key


def _township() -> str:
    return f"9{secrets.randbelow(10**8):08d}"


async def _can_connect(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except aio_pika.exceptions.ProbableAuthenticationError:
        return False
    await connection.close()
    return True


@pytest.fixture
async def admin(infra: Infra) -> AsyncIterator[BrokerAdmin]:
    async with BrokerAdmin(infra.amqp_url) as made:
        yield made


async def test_add_is_idempotent_and_again_rotates_the_password(admin: BrokerAdmin) -> None:
    township = _township()
    try:
        first = await admin.add(township)
        assert await _can_connect(first.amqp_url)
        again = await admin.add(township)
        assert again.password != first.password and again.api_key != first.api_key
        assert not await _can_connect(first.amqp_url), "the old password must stop working"
        assert await _can_connect(again.amqp_url)
        # The reply queue is there, and the township may read it.
        connection = await aio_pika.connect(again.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(again.reply_queue, passive=True)
        rotated = await admin.rotate(township)
        assert await _can_connect(rotated.amqp_url) and not await _can_connect(again.amqp_url)
    finally:
        await admin.revoke(township)


async def test_show_and_list_hold_no_secret_and_revoke_locks_out(admin: BrokerAdmin) -> None:
    township = _township()
    access = await admin.add(township)
    connection = await aio_pika.connect(access.amqp_url)
    try:
        info = await admin.show(township)
        assert info is not None
        assert access.password not in repr(info) and access.api_key not in repr(info)
        assert (info.user, info.reply_queue, info.refusals_waiting) == (access.user, access.reply_queue, 0)
        assert info.upload_prefix == f"{township}/" and info.api_key_role == f"township:{township}"
        assert "wmsj\\.unit\\.registered\\.v1" in info.may_publish
        assert township in [listed.township_id for listed in await admin.list()]
        assert await admin.revoke(township)
        assert await admin.show(township) is None
        assert not await _can_connect(access.amqp_url)
        assert connection.is_closed or not await _still_open(connection)
        assert not await admin.revoke(township), "revoking twice finds nothing"
    finally:
        await admin.revoke(township)
        if not connection.is_closed:
            await connection.close()


async def _still_open(connection: aio_pika.abc.AbstractConnection) -> bool:
    try:
        channel = await connection.channel()
        await channel.close()
        return True
    except Exception:
        return False


async def test_unknown_township_cannot_be_rotated_and_bad_ids_are_refused(admin: BrokerAdmin) -> None:
    with pytest.raises(OnboardingError, match="add it first"):
        await admin.rotate(_township())
    with pytest.raises(ValueError, match="township id"):
        await admin.add("../x")


async def test_wrong_management_credentials_say_what_to_set(infra: Infra) -> None:
    wrong = ManagementSettings(user="nobody", password="wrong")
    async with BrokerAdmin(infra.amqp_url, wrong) as admin:
        with pytest.raises(OnboardingError, match="WMSJ_RABBITMQ_MANAGEMENT_USER"):
            await admin.add(_township())


def test_cli_prints_everything_once_and_show_no_secret(
    infra: Infra, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WMSJ_AMQP_URL", infra.amqp_url)
    env_file = tmp_path / ".env"
    env_file.write_text('A=1\nWMSJ_API_KEYS=\'{"office-key-x": "office"}\'\nB=2\n', encoding="utf-8")
    township = _township()
    try:
        assert main(["township", "add", township, "--env-file", str(env_file)]) == 0
        printed = capsys.readouterr().out
        for label in ("AMQP URL:", "user:", "password:", "reply queue:", "HTTP API key:", "upload prefix:"):
            assert label in printed
        password = printed.split("password:", 1)[1].split()[0]
        api_key = printed.split("HTTP API key:", 1)[1].split()[0]
        assert f"township-{township}:{password}@" in printed
        # The key went into the env file, beside the office's; nothing else changed.
        keys = parse_keys(env_file.read_text().split("WMSJ_API_KEYS='", 1)[1].split("'", 1)[0])
        assert keys["office-key-x"].is_office and keys[api_key].township_id == township
        assert env_file.read_text().startswith("A=1\n") and env_file.read_text().endswith("B=2\n")
        assert main(["township", "show", township]) == 0
        shown = capsys.readouterr().out
        assert password not in shown and api_key not in shown and f"wmsj.replies.township-{township}" in shown
        assert main(["township", "revoke", township, "--env-file", str(env_file)]) == 0
        assert api_key not in env_file.read_text() and "office-key-x" in env_file.read_text()
        assert main(["township", "show", township]) == 1
    finally:
        main(["township", "revoke", township])


def test_set_api_key_adds_a_line_when_there_is_none(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("A=1\n", encoding="utf-8")
    set_api_key(env_file, "431381101", "k1")
    set_api_key(env_file, "431381101", "k2")  # replaces, never accumulates
    assert env_file.read_text() == 'A=1\nWMSJ_API_KEYS=\'{"k2": "township:431381101"}\'\n'


async def test_office_route_adds_lists_rotates_and_revokes(infra: Infra, apps: dict[str, ModuleType]) -> None:
    registry = apps["registry"]
    app = FastAPI()
    app.include_router(
        registry.township_routes.router(lambda: BrokerAdmin(infra.amqp_url), registry.api.CALLER)
    )
    keys = parse_keys('{"office-k": "office", "town-k": "township:431381101"}')
    app.dependency_overrides[registry.api.CALLER.dependency] = caller_dependency(keys)
    township = _township()
    office = {"Authorization": "Bearer office-k"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
        try:
            assert (await client.get("/townships")).status_code == 401
            assert (
                await client.post(f"/townships/{township}", headers={"Authorization": "Bearer town-k"})
            ).status_code == 403
            made = await client.post(f"/townships/{township}", headers=office)
            assert made.status_code == 201
            access = made.json()
            assert access["api_key_entry"] == {access["api_key"]: f"township:{township}"}
            assert await _can_connect(access["amqp_url"])
            listed = (await client.get("/townships", headers=office)).json()
            assert township in [t["township_id"] for t in listed]
            assert access["password"] not in str(listed)
            rotated = (await client.post(f"/townships/{township}/rotate", headers=office)).json()
            assert rotated["password"] != access["password"]
            assert (await client.delete(f"/townships/{township}", headers=office)).status_code == 204
            assert (await client.get(f"/townships/{township}", headers=office)).status_code == 404
            assert (await client.post(f"/townships/{'x' * 65}", headers=office)).status_code == 422
        finally:
            async with BrokerAdmin(infra.amqp_url) as admin:
                await admin.revoke(township)
    assert urlsplit(infra.amqp_url).path  # the test's own virtual host, not "/"
