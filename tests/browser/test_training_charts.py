"""A training job's metrics are charted on its page: one line chart per metric, fed by
the training API's metric series, with every point the API holds once the job ended. The
training API, a training worker (LightGBM in its trainer process) and the console run as
real processes on moto (conftest.py's `training`, shared with test_model_card.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import TrainingStack
from tests.browser.test_console import sign_in, wait
from tests.support.app import forge
from tests.support.training import (
    classification_csv,
    dataset_settled,
    lightgbm_train,
    upload_dataset,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


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
