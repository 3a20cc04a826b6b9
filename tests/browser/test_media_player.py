"""A finished transcode plays in the console: the job page fetches the HLS ladder's
playlists with the caller's token (the media API's playlist route wants it; a <video>
can not send it) and Chromium's own HLS support plays the ladder from the presigned
segment URLs. The media API, a media worker (with its ffmpeg) and the console run as
real processes on moto."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from longhaul.aws.clients import AwsClients
from tests.browser.conftest import Server, api_and_console
from tests.browser.test_console import sign_in, wait
from tests.conftest import REGION
from tests.support.app import forge
from tests.support.media import MediaPlatform, MediaWorker, make_clip, provision_media, put_object
from tests.support.moto import MotoServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


@dataclass
class MediaStack:
    platform: MediaPlatform
    api: Server
    console: Server
    clips: Path


@pytest.fixture(scope="module")
async def media(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[MediaStack]:
    """The media API, one media worker and the console in front of the API; killed at the
    end, whatever happened."""
    aws = AwsClients(REGION)
    try:
        platform = await provision_media(aws, moto.endpoint)
    finally:
        await aws.close()
    logs = tmp_path_factory.mktemp("media-console")
    worker = MediaWorker(platform, logs)
    try:
        with api_and_console(
            "media",
            "longhaul_media",
            platform.environment(),
            logs,
            # as the dev runner sets it
            console_env={"LONGHAUL_CONSOLE_MEDIA_ORIGINS": platform.endpoint},
        ) as served:
            yield MediaStack(platform, served.api, served.console, logs)
    finally:
        worker.stop()


async def test_a_finished_transcode_plays_on_its_job_page(
    browser: webdriver.Chrome,
    media: MediaStack,
    screenshots: Callable[[webdriver.Chrome, str], Path],
) -> None:
    """The page of a transcode that succeeded shows a player, and the video plays: its
    clock moves past the first segment's start with no media error."""
    sub = f"olivia-{uuid.uuid4().hex[:8]}"
    token = forge(media.platform.auth, sub=sub, username="olivia")
    key = f"uploads/{sub}/{uuid.uuid4().hex}/clip.mp4"
    clip = make_clip(media.clips / "clip.mp4", seconds=2)
    aws = AwsClients(REGION)
    try:
        await put_object(aws, media.platform, key, clip)
    finally:
        await aws.close()
    async with httpx.AsyncClient(base_url=media.api.url, timeout=30) as api:
        answer = await api.post(
            "/jobs",
            json={"type": "transcode", "payload": {"key": key, "preset": "fast"}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    sign_in(browser, media.console.url, token, "olivia")
    browser.get(f"{media.console.url}/#/jobs/media/{job_id}")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
    wait(browser).until(
        lambda d: d.find_elements(By.ID, "player") or d.find_elements(By.ID, "player-problem")
    )
    assert not browser.find_elements(By.ID, "player-problem"), browser.find_element(
        By.ID, "player-problem"
    ).text
    browser.execute_script("const v = document.getElementById('player'); v.muted = true; v.play();")
    wait(browser).until(
        lambda d: d.execute_script(
            "const v = document.getElementById('player');"
            "if (v.error) { throw new Error(`media error ${v.error.code}: ${v.error.message}`); }"
            "return v.currentTime > 0.3;"
        )
    )
    assert "master.m3u8" in browser.find_element(By.ID, "outputs-list").text
    browser.execute_script("document.getElementById('player').pause();")
    screenshots(browser, "media-job-page")
