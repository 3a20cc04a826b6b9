"""The worker holds a flagged preset to its flag too: a transcode submitted with it while the
flag is off (through POST /jobs, which does not read flags) fails at once with the reason and
no retry; once the flag is on, the same preset transcodes. A real worker, ffmpeg and moto."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.flags import flags_parameter_name
from longhaul.jobs import JobState
from tests.support.app import forge
from tests.support.media import (
    MediaPlatform,
    MediaWorker,
    make_clip,
    media_api,
    provision_media,
    put_object,
    store_of,
    wait_for,
)
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> MediaPlatform:
    return await provision_media(aws, moto.endpoint)


async def test_a_transcode_with_a_flagged_preset_runs_only_while_its_flag_is_on(
    aws: AwsClients,
    platform: MediaPlatform,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    media_workers: list[MediaWorker],
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", size="320x180", seconds=4)
    keys = [f"uploads/alice/{uuid.uuid4().hex}/clip.mp4" for _ in range(2)]
    for key in keys:
        await put_object(aws, platform, key, clip)
    media_workers.append(MediaWorker(platform, tmp_path, LONGHAUL_FLAGS_TTL_S="0"))
    store = await store_of(aws, platform)
    alice = {"Authorization": f"Bearer {forge(platform.auth, sub='alice')}"}

    async def submit(key: str) -> str:
        created = await api.post(
            "/jobs",
            json={"type": "transcode", "payload": {"key": key, "preset": "quality"}},
            headers=alice,
        )
        assert created.status_code == 202, created.text
        return str(created.json()["id"])

    async with media_api(monkeypatch, platform) as (_, api):
        refused = await wait_for(store, await submit(keys[0]), JobState.FAILED, timeout=60)
        # failed for good at once (NonRetryable): the flag, not a fault, refused it
        assert (
            refused.error
            == "preset 'quality' is not available (feature flag preset_quality is off)"
        )

        await (await aws.get("ssm")).put_parameter(
            Name=flags_parameter_name(platform.env, "media"),
            Value=json.dumps({"preset_quality": True}),
            Overwrite=True,
        )
        done = await wait_for(
            store, await submit(keys[1]), JobState.SUCCEEDED, JobState.FAILED, timeout=120
        )
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result is not None
    assert done.result["preset"] == "quality"
