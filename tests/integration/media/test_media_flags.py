"""A preset behind a feature flag: unseen and refused while the flag is off, offered and
accepted once `longhaul flags set` turns it on, with no restart (the API reads the service's
SSM parameter on a real moto server)."""

from __future__ import annotations

import json

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.flags import flags_parameter_name
from longhaul_media.presets import load_presets, preset_flags
from tests.support.app import forge
from tests.support.media import MediaPlatform, media_api, provision_media
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration

UPLOAD = {"filename": "clip.mp4", "content_type": "video/mp4", "size": 2048, "preset": "quality"}


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> MediaPlatform:
    return await provision_media(aws, moto.endpoint)


async def set_flags(aws: AwsClients, platform: MediaPlatform, **values: object) -> None:
    ssm = await aws.get("ssm")
    await ssm.put_parameter(
        Name=flags_parameter_name(platform.env, "media"),
        Value=json.dumps(values),
        Type="String",
        Overwrite=True,
    )


def test_the_quality_preset_is_behind_its_flag_which_is_off_by_default() -> None:
    assert load_presets()["quality"].flag == "preset_quality"
    assert preset_flags() == {"preset_quality": False}
    assert all(p.flag is None for n, p in load_presets().items() if n != "quality")


async def test_a_flagged_preset_is_hidden_and_refused_while_its_flag_is_off(
    platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = {"Authorization": f"Bearer {forge(platform.auth, sub='alice')}"}
    async with media_api(monkeypatch, platform) as (_, api):
        assert set((await api.get("/presets")).json()) == {"default", "fast"}
        refused = await api.post("/uploads", json=UPLOAD, headers=alice)
        # an upload only (no transcode) names no preset that runs: accepted
        plain = await api.post("/uploads", json={**UPLOAD, "transcode": False}, headers=alice)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["preset"] == "quality"
    assert "feature flag preset_quality is off" in problem["detail"]
    assert plain.status_code == 201, plain.text


async def test_turning_the_flag_on_offers_and_accepts_the_preset_without_a_restart(
    aws: AwsClients, platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = {"Authorization": f"Bearer {forge(platform.auth, sub='alice')}"}
    async with media_api(monkeypatch, platform, LONGHAUL_FLAGS_TTL_S="0") as (_, api):
        assert (await api.post("/uploads", json=UPLOAD, headers=alice)).status_code == 422
        await set_flags(aws, platform, preset_quality=True)
        assert "quality" in (await api.get("/presets")).json()
        accepted = await api.post("/uploads", json=UPLOAD, headers=alice)
        assert accepted.status_code == 201, accepted.text
        await set_flags(aws, platform, preset_quality=False)
        assert (await api.post("/uploads", json=UPLOAD, headers=alice)).status_code == 422


async def test_a_bad_flags_value_is_ignored_and_the_api_keeps_answering(
    aws: AwsClients, platform: MediaPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = {"Authorization": f"Bearer {forge(platform.auth, sub='alice')}"}
    async with media_api(monkeypatch, platform, LONGHAUL_FLAGS_TTL_S="0") as (_, api):
        await set_flags(aws, platform, preset_quality="yes please")
        assert set((await api.get("/presets")).json()) == {"default", "fast"}
        assert (await api.post("/uploads", json=UPLOAD, headers=alice)).status_code == 422
        ssm = await aws.get("ssm")
        await ssm.delete_parameter(Name=flags_parameter_name(platform.env, "media"))
        assert (await api.get("/presets")).status_code == 200
