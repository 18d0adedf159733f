"""The evidence service's HTTP side against the real S3 store: the streaming multipart
upload, the presigned POST policy (enforced by the S3 server), view links, and progress."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import httpx
import pytest

from shared.auth import DEV_OFFICE_KEY
from tests.integration.test_evidence import UNIT, camera_photo, scheduled, submit
from tests.support import Tap
from wmsj.client import TownshipClient
from wmsj.demo import png

OFFICE = {"Authorization": f"Bearer {DEV_OFFICE_KEY}"}


@pytest.fixture
async def http(apps: dict[str, ModuleType]) -> AsyncIterator[httpx.AsyncClient]:
    # The services already run in this process; the app is driven without its lifespan.
    app = apps["evidence"].create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://evidence"
    ) as client:
        yield client


def read(s3: Any, bucket: str, key: str) -> bytes:
    _, client = s3
    response = client.get_object(bucket, key)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


async def test_a_multipart_upload_lands_in_the_upload_bucket_with_its_claim_check(
    http: httpx.AsyncClient, s3: Any
) -> None:
    settings, _ = s3
    content = png(secrets.randbits(32)) + secrets.token_bytes(3 * 2**20)  # several network chunks
    response = await http.post(
        "/uploads", headers=OFFICE, files={"file": ("photo.png", content, "image/png")}, data={"note": "x"}
    )
    assert response.status_code == 201, response.text
    claim = response.json()
    assert claim["size"] == len(content)
    assert claim["sha256"] == hashlib.sha256(content).hexdigest()
    assert (claim["content_type"], claim["detected_type"]) == ("image/png", "image/png")
    assert claim["object_key"].startswith("office/")
    assert read(s3, settings.upload_bucket, claim["object_key"]) == content


async def test_an_upload_needs_an_api_key_and_a_file_part(http: httpx.AsyncClient) -> None:
    assert (await http.post("/uploads", files={"file": ("a.txt", b"hi", "text/plain")})).status_code == 401
    no_file = await http.post("/uploads", headers=OFFICE, files={"other": ("a.txt", b"hi", "text/plain")})
    assert no_file.status_code == 422
    not_a_form = await http.post("/uploads", headers=OFFICE, content=b"hi")
    assert not_a_form.status_code == 415


async def policy(http: httpx.AsyncClient, content_type: str, size: int) -> dict[str, Any]:
    response = await http.post(
        "/uploads/policy", headers=OFFICE, json={"content_type": content_type, "size": size}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def post_to_s3(grant: dict[str, Any], content: bytes, **change: str) -> httpx.Response:
    fields = {**grant["fields"], **change}
    async with httpx.AsyncClient() as client:
        return await client.post(
            grant["url"], data=fields, files={"file": ("f", content, fields["Content-Type"])}
        )


async def test_a_presigned_post_uploads_exactly_the_granted_object(http: httpx.AsyncClient, s3: Any) -> None:
    settings, _ = s3
    content = png(secrets.randbits(32))
    grant = await policy(http, "image/png", len(content))
    response = await post_to_s3(grant, content)
    assert response.status_code in (200, 204), response.text
    assert read(s3, settings.upload_bucket, grant["object_key"]) == content


@pytest.mark.parametrize("wrong", ["key", "size", "content-type"])
async def test_the_s3_server_refuses_an_upload_outside_the_policy(
    http: httpx.AsyncClient, s3: Any, wrong: str
) -> None:
    settings, client = s3
    content = png(secrets.randbits(32))
    grant = await policy(http, "image/png", len(content))
    if wrong == "key":
        response = await post_to_s3(grant, content, key=grant["object_key"] + "-elsewhere")
    elif wrong == "size":
        response = await post_to_s3(grant, content + b"\x00")
    else:
        response = await post_to_s3(grant, content, **{"Content-Type": "text/plain"})
    assert response.status_code in (400, 403), f"{wrong}: S3 answered {response.status_code}"
    names = {
        o.object_name for o in client.list_objects(settings.upload_bucket, prefix="office/", recursive=True)
    }
    assert grant["object_key"] not in names and grant["object_key"] + "-elsewhere" not in names


async def test_a_policy_for_a_type_that_is_not_accepted_or_too_big_is_refused(
    http: httpx.AsyncClient,
) -> None:
    zip_file = await http.post(
        "/uploads/policy", headers=OFFICE, json={"content_type": "application/zip", "size": 9}
    )
    assert zip_file.status_code == 422
    too_big = await http.post(
        "/uploads/policy", headers=OFFICE, json={"content_type": "image/png", "size": 2**30}
    )
    assert too_big.status_code == 422


async def test_the_office_gets_time_limited_links_to_the_original_and_its_thumbnail(
    apps: dict[str, ModuleType], http: httpx.AsyncClient, s3: Any, township: TownshipClient, tap: Tap
) -> None:
    activity_id = await scheduled(apps, township)
    photo = camera_photo(secrets.randbits(32))
    event = await submit(s3, township, tap, activity_id, photo, "image/jpeg")

    response = await http.get(f"/evidence/{event.data.evidence_id}/links", headers=OFFICE)
    assert response.status_code == 200, response.text
    links = response.json()
    assert "X-Amz-Expires=900" in links["original"] and "X-Amz-Signature=" in links["original"]
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(links["original"])).content == photo
        thumbnail = await browser.get(links["thumbnail"])
        assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
        unsigned = links["original"].split("?")[0]
        assert (await browser.get(unsigned)).status_code == 403  # no link, no view

    assert (await http.get(f"/evidence/{event.data.evidence_id}/links")).status_code == 401
    assert (await http.get("/evidence/e-nowhere/links", headers=OFFICE)).status_code == 404


async def test_a_township_key_gets_no_view_links(
    apps: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WMSJ_API_KEYS", json.dumps({DEV_OFFICE_KEY: "office", "t-key": f"township:{UNIT}"}))
    app = apps["evidence"].create_app()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://evidence"
    ) as client:
        response = await client.get("/evidence/anything/links", headers={"Authorization": "Bearer t-key"})
        assert response.status_code == 403
        upload = await client.post(
            "/uploads",
            headers={"Authorization": "Bearer t-key"},
            files={"file": ("r.txt", b"report", "text/plain")},
        )
        assert upload.status_code == 201 and upload.json()["object_key"].startswith(f"{UNIT}/")


async def test_an_activitys_evidence_progress_says_what_is_missing(
    apps: dict[str, ModuleType], http: httpx.AsyncClient, s3: Any, township: TownshipClient, tap: Tap
) -> None:
    activity_id = await scheduled(apps, township)
    before = (await http.get(f"/activities/{activity_id}/evidence", headers=OFFICE)).json()
    assert before["complete"] is False and before["requirement"]["min_photos"] == 1
    await submit(s3, township, tap, activity_id, png(secrets.randbits(32)), "image/png")
    after = (await http.get(f"/activities/{activity_id}/evidence", headers=OFFICE)).json()
    assert (after["photos"], after["complete"]) == (1, False)
    assert after["missing"] == ["a text report (plain text or PDF)"]  # the contract's default rule
    assert (await http.get("/activities/a-nowhere/evidence", headers=OFFICE)).status_code == 404


async def test_links_and_policies_are_signed_for_the_public_address_of_the_s3_server(s3: Any) -> None:
    """Inside a deployment the service reaches S3 by an internal name; what it hands out must
    name the address townships and browsers use, or the S3 server refuses the signature."""
    from services.evidence.objects import ObjectStore

    settings, client = s3
    host, port = settings.endpoint.rsplit(":", 1)
    assert host == "127.0.0.1"  # the same server, reached under another name below
    public = settings.model_copy(update={"public_endpoint": f"localhost:{port}"})
    store = ObjectStore(public, retention_days=1)

    content = png(secrets.randbits(32))
    key = f"office/public-{secrets.token_hex(4)}.png"
    grant = store.upload_policy(key, len(content), "image/png", timedelta(minutes=5))
    assert grant["url"].startswith(f"http://localhost:{port}/")
    uploaded = await post_to_s3(grant, content)
    assert uploaded.status_code in (200, 204), uploaded.text

    client.put_object(settings.evidence_bucket, key, io.BytesIO(content), len(content), "image/png")
    link = store.view_link(key, timedelta(minutes=5))
    assert link.startswith(f"http://localhost:{port}/")
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(link)).content == content
        # The host is part of the signature: the internal address does not take this link.
        internal = link.replace(f"localhost:{port}", settings.endpoint)
        assert (await browser.get(internal)).status_code == 403
