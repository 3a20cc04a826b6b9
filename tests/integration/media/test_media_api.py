"""The media API against a real moto server: uploads (presigned PUT and multipart), the
presets, and what a caller may submit."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from longhaul.aws.clients import AwsClients
from tests.support.app import forge
from tests.support.media import MediaPlatform, media_api, provision_media
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> MediaPlatform:
    return await provision_media(aws, moto.endpoint)


def bearer(platform: MediaPlatform, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {forge(platform.auth, sub=sub)}"}


async def test_presets_are_listed_with_their_ladders(
    platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with media_api(monkeypatch, platform) as (_, api):
        presets = (await api.get("/presets")).json()
    assert {"default", "fast"} <= set(presets)
    assert [r["height"] for r in presets["default"]["renditions"]] == [1080, 720, 480, 360]


async def test_presigned_put_lands_under_the_callers_prefix_with_its_preset(
    aws: AwsClients, platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"\0" * 2048
    async with media_api(monkeypatch, platform) as (_, api):
        response = await api.post(
            "/uploads",
            json={
                "filename": "../../etc/My Clip!.mp4",
                "content_type": "video/mp4",
                "size": 2048,
                "preset": "fast",
            },
            headers=bearer(platform, "alice"),
        )
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["method"] == "PUT"
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in ticket["url"]  # S3 accepts only SigV4 now
    assert ticket["key"].startswith(f"uploads/alice/{ticket['upload_id']}/")
    assert ticket["key"].endswith("/My_Clip_.mp4")  # no path, no odd characters
    async with httpx.AsyncClient() as s3:
        put = await s3.put(ticket["url"], content=body, headers=ticket["headers"])
    assert put.status_code == 200, put.text
    head = await (await aws.get("s3")).head_object(Bucket=platform.names.bucket, Key=ticket["key"])
    assert head["ContentLength"] == 2048
    assert head["Metadata"]["longhaul-preset"] == "fast"


async def test_a_big_file_gets_a_multipart_upload_that_completes(
    aws: AwsClients, platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    mib = 1024 * 1024
    size = 11 * mib
    alice = bearer(platform, "alice")
    overrides = {
        "MEDIA_MULTIPART_THRESHOLD_BYTES": str(5 * mib),
        "MEDIA_MULTIPART_PART_BYTES": str(5 * mib),
    }
    async with media_api(monkeypatch, platform, **overrides) as (_, api):
        ticket = (
            await api.post(
                "/uploads",
                json={"filename": "big.mov", "content_type": "video/quicktime", "size": size},
                headers=alice,
            )
        ).json()
        assert ticket["method"] == "MULTIPART"
        assert [p["part_number"] for p in ticket["parts"]] == [1, 2, 3]
        parts = []
        async with httpx.AsyncClient() as s3:
            for part in ticket["parts"]:
                length = min(5 * mib, size - (part["part_number"] - 1) * 5 * mib)
                put = await s3.put(part["url"], content=b"x" * length)
                assert put.status_code == 200, put.text
                parts.append({"part_number": part["part_number"], "etag": put.headers["ETag"]})
        completion = {
            "key": ticket["key"],
            "multipart_upload_id": ticket["multipart_upload_id"],
            "parts": parts,
        }
        bob = await api.post(
            ticket["complete_url"], json=completion, headers=bearer(platform, "bob")
        )
        assert bob.status_code == 404  # not bob's upload
        done = await api.post(ticket["complete_url"], json=completion, headers=alice)
        assert done.status_code == 200, done.text
    head = await (await aws.get("s3")).head_object(Bucket=platform.names.bucket, Key=ticket["key"])
    assert head["ContentLength"] == size


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"filename": "a.mp4", "content_type": "text/plain", "size": 10}, 415, "not accepted"),
        ({"filename": "a.mp4", "content_type": "video/mp4", "size": 10**12}, 413, "over the limit"),
        ({"filename": "a.mp4", "content_type": "video/mp4", "size": 0}, 422, None),
        (
            {"filename": "a.mp4", "content_type": "video/mp4", "size": 9, "preset": "nope"},
            422,
            None,
        ),
    ],
)
async def test_bad_upload_requests_get_problem_details(
    platform: MediaPlatform,
    monkeypatch: pytest.MonkeyPatch,
    body: dict[str, object],
    status: int,
    detail: str | None,
) -> None:
    async with media_api(monkeypatch, platform) as (_, api):
        response = await api.post("/uploads", json=body, headers=bearer(platform, "alice"))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    if detail:
        assert detail in response.json()["detail"]


async def test_a_caller_cannot_transcode_another_callers_upload_nor_submit_chunks(
    platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "uploads/alice/" + "a" * 32 + "/clip.mp4"
    async with media_api(monkeypatch, platform) as (_, api):
        bob = bearer(platform, "bob")
        theirs = await api.post(
            "/jobs", json={"type": "transcode", "payload": {"key": key}}, headers=bob
        )
        assert theirs.status_code == 404
        chunk = await api.post(
            "/jobs", json={"type": "transcode-chunk", "payload": {}}, headers=bob
        )
        assert chunk.status_code == 422
        assert chunk.json()["known_types"] == ["transcode"]
        preset = await api.post(
            "/jobs",
            json={"type": "transcode", "payload": {"key": key, "preset": "nope"}},
            headers=bearer(platform, "alice"),
        )
        assert preset.status_code == 422
        assert "unknown preset" in preset.text


async def test_outputs_of_an_unfinished_or_missing_job_are_refused(
    platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = "uploads/alice/" + "b" * 32 + "/clip.mp4"
    alice = bearer(platform, "alice")
    async with media_api(monkeypatch, platform) as (_, api):
        job = (
            await api.post(
                "/jobs", json={"type": "transcode", "payload": {"key": key}}, headers=alice
            )
        ).json()
        assert (await api.get(f"/jobs/{job['id']}/outputs", headers=alice)).status_code == 409
        assert (await api.get("/jobs/nope/outputs", headers=alice)).status_code == 404
