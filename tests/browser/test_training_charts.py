"""A training job's metrics are charted on its page: one line chart per metric, fed by
the training API's metric series, with every point the API holds once the job ended. The
training API, a training worker (LightGBM in its trainer process) and the console run as
real processes on moto."""

from __future__ import annotations

import json
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
from tests.browser.conftest import Server
from tests.browser.test_console import sign_in, wait
from tests.conftest import REGION
from tests.support.app import forge
from tests.support.moto import MotoServer
from tests.support.training import (
    TrainingPlatform,
    TrainingWorker,
    classification_csv,
    dataset_settled,
    lightgbm_train,
    provision_training,
    upload_dataset,
    with_bytecode_cache,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


@dataclass
class TrainingStack:
    platform: TrainingPlatform
    api: Server
    console: Server


@pytest.fixture(scope="module")
async def training(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TrainingStack]:
    """The training API, one training worker and the console in front of the API; killed
    at the end, whatever happened."""
    aws = AwsClients(REGION)
    try:
        platform = await provision_training(aws, moto.endpoint)
    finally:
        await aws.close()
    logs = tmp_path_factory.mktemp("training-console")
    api = Server(
        "training-api",
        ["-m", "longhaul_training", "--role", "api"],
        with_bytecode_cache(platform.environment()),
        logs,
    )
    console = Server(
        "console",
        ["-m", "longhaul.console"],
        {"LONGHAUL_CONSOLE_SERVICES": json.dumps({"training": api.url})},
        logs,
    )
    worker = TrainingWorker(platform, logs)
    try:
        api.wait_healthy()
        console.wait_healthy()
        yield TrainingStack(platform, api, console)
    finally:
        worker.stop()
        console.stop()
        api.stop()


async def test_a_training_jobs_metrics_are_charted_on_its_page(
    browser: webdriver.Chrome,
    training: TrainingStack,
    screenshots: Callable[[webdriver.Chrome, str], Path],
) -> None:
    """Once the job succeeded, its page holds a chart per metric the API reports (train
    and validation as two lines), each with every value the API's series has for it."""
    sub = f"tara-{uuid.uuid4().hex[:8]}"
    token = forge(training.platform.auth, sub=sub, username="tara")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=training.api.url, timeout=30) as api:
        dataset = await upload_dataset(api, headers, classification_csv())
        assert (await dataset_settled(api, headers, dataset))["status"] == "registered"
        answer = await api.post(
            "/jobs",
            json={"type": "train", "payload": lightgbm_train(dataset, rounds=30, every=5)},
            headers=headers,
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]

        sign_in(browser, training.console.url, token, "tara")
        browser.get(f"{training.console.url}/#/jobs/training/{job_id}")
        wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
        points = (await api.get(f"/jobs/{job_id}/metrics", headers=headers)).json()["points"]

    # Per metric, its values across the points: in each group (train, valid) or at the top.
    expected: dict[str, int] = {}
    for point in points:
        for key, value in point.items():
            if key in ("step", "of", "fold", "kind"):
                continue
            values = value if isinstance(value, dict) else {key: value}
            for name, number in values.items():
                if isinstance(number, int | float) and not isinstance(number, bool):
                    expected[name] = expected.get(name, 0) + 1
    assert expected, points

    def charted(driver: webdriver.Chrome) -> dict[str, int]:
        figures = driver.find_elements(By.CSS_SELECTOR, "figure.metric-chart")
        return {
            str(f.get_attribute("data-metric")): int(str(f.get_attribute("data-points")))
            for f in figures
        }

    wait(browser).until(lambda d: charted(d) == expected)
    screenshots(browser, "training-job-page")
