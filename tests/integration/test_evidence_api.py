"""The evidence service's HTTP side against the real S3 store: the streaming multipart
upload, the presigned POST policy (enforced by the S3 server), view links, and progress."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from shared.auth import DEV_OFFICE_KEY
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
