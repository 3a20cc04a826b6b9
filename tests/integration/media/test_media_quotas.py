"""The media service's quotas against a real moto server: uploads an hour, stored bytes and
concurrent transcodes per owner (429 problem+json with Retry-After), and multipart uploads
held to their declared size (signed part lengths, and a refused completion)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from longhaul.aws.clients import AwsClients
from tests.support.app import forge
from tests.support.media import MediaPlatform, media_api, provision_media, store_of
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
MIB = 1024 * 1024


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> MediaPlatform:
    return await provision_media(aws, moto.endpoint)


def bearer(platform: MediaPlatform, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {forge(platform.auth, sub=sub)}"}


def upload(size: int = 1000, **more: Any) -> dict[str, Any]:
    return {"filename": "clip.mp4", "content_type": "video/mp4", "size": size, **more}


def assert_429(response: httpx.Response, quota: str, limit: int, longest_s: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["quota"] == quota
    assert response.json()["limit"] == limit
    assert 1 <= int(response.headers["retry-after"]) <= longest_s


async def test_uploads_over_the_hourly_quota_are_429_per_owner(
    platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = bearer(platform, "alice")
    async with media_api(monkeypatch, platform, MEDIA_QUOTA_UPLOADS_PER_HOUR="2") as (_, api):
        answers = [await api.post("/uploads", json=upload(), headers=alice) for _ in range(3)]
        bob = await api.post("/uploads", json=upload(), headers=bearer(platform, "bob"))
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert_429(answers[2], "uploads_per_hour", 2, 3600)
    assert bob.status_code == 201


async def test_uploads_over_the_stored_bytes_quota_are_429_and_refused_ones_count_nothing(
    platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = bearer(platform, "alice")
    quotas = {"MEDIA_QUOTA_STORED_BYTES": "5000", "MEDIA_QUOTA_UPLOADS_PER_HOUR": "2"}
    async with media_api(monkeypatch, platform, **quotas) as (_, api):
        first = await api.post("/uploads", json=upload(3000), headers=alice)
        over = await api.post("/uploads", json=upload(3000), headers=alice)
        fits = await api.post("/uploads", json=upload(2000), headers=alice)
        never = await api.post("/uploads", json=upload(6000), headers=bearer(platform, "bob"))
    assert first.status_code == 201
    assert_429(over, "stored_bytes", 5000, 31 * 86_400)
    assert fits.status_code == 201, "the refused upload took none of the hour's two"
    assert never.status_code == 413, "more than the whole quota can never fit"
    assert never.json()["max_bytes"] == 5000


async def test_an_upload_that_starts_a_transcode_holds_a_job_slot_until_its_job_ends(
    aws: AwsClients, platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = bearer(platform, "alice")
    store = await store_of(aws, platform)
    async with media_api(monkeypatch, platform, MEDIA_QUOTA_CONCURRENT_JOBS="1") as (_, api):
        ticket = (await api.post("/uploads", json=upload(), headers=alice)).json()
        second = await api.post("/uploads", json=upload(), headers=alice)
        plain = await api.post("/uploads", json=upload(transcode=False), headers=alice)
        resubmit = await api.post(
            "/jobs", json={"type": "transcode", "payload": {"key": ticket["key"]}}, headers=alice
        )
        # The upload lands and its event handler submits the transcode (worker/handlers.py).
        job, _ = await store.submit(
            owner="alice",
            job_type="transcode",
            payload={"key": ticket["key"], "preset": "default"},
            idempotency_key=f"upload-{ticket['upload_id']}",
        )
        still = await api.post("/uploads", json=upload(), headers=alice)
        await store.cancel(job.id, "alice")
        after = await api.post("/uploads", json=upload(), headers=alice)
    assert_429(second, "concurrent_jobs", 1, 30)
    assert plain.status_code == 201, "an upload without a transcode takes no job slot"
    assert_429(resubmit, "concurrent_jobs", 1, 30)
    assert_429(still, "concurrent_jobs", 1, 30)
    assert after.status_code == 201, "the transcode ended, and its slot with it"


async def test_multipart_parts_sign_their_length_and_an_oversized_upload_is_refused(
    aws: AwsClients, platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 11 * MIB
    alice = bearer(platform, "alice")
    overrides = {
        "MEDIA_MULTIPART_THRESHOLD_BYTES": str(5 * MIB),
        "MEDIA_MULTIPART_PART_BYTES": str(5 * MIB),
    }
    async with media_api(monkeypatch, platform, **overrides) as (_, api):
        ticket = (
            await api.post("/uploads", json=upload(size, transcode=False), headers=alice)
        ).json()
        signed = [
            parse_qs(urlparse(part["url"]).query)["X-Amz-SignedHeaders"][0].split(";")
            for part in ticket["parts"]
        ]
        # S3 refuses a part whose Content-Length is not the signed one; moto does not check
        # signatures, so the last part goes up 4 MiB too long and completion must catch it.
        parts = []
        async with httpx.AsyncClient() as s3:
            for part in ticket["parts"]:
                put = await s3.put(part["url"], content=b"x" * (5 * MIB))
                assert put.status_code == 200, put.text
                parts.append({"part_number": part["part_number"], "etag": put.headers["ETag"]})
        done = await api.post(
            ticket["complete_url"],
            json={
                "key": ticket["key"],
                "multipart_upload_id": ticket["multipart_upload_id"],
                "parts": parts,
            },
            headers=alice,
        )
    listed = await (await aws.get("s3")).list_objects_v2(
        Bucket=platform.names.bucket, Prefix=ticket["key"]
    )
    assert all("content-length" in headers for headers in signed)
    assert done.status_code == 413
    assert done.headers["content-type"] == PROBLEM
    assert f"over the {size} bytes it declared" in done.json()["detail"]
    assert listed.get("KeyCount", 0) == 0, "the oversized object was deleted"
