"""A training job's metrics are charted on its page: one line chart per metric, fed by
the training API's metric series, with every point the API holds once the job ended. The
training API, a training worker (LightGBM in its trainer process) and the console run as
real processes on moto (conftest.py's `training` and its `trained_job`, which
test_model_card.py looks at too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import TrainedJob, TrainingStack
from tests.browser.test_console import sign_in, wait

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


async def test_a_training_jobs_metrics_are_charted_on_its_page(
    browser: webdriver.Chrome,
    training: TrainingStack,
    trained_job: TrainedJob,
    screenshots: Callable[[webdriver.Chrome, str], Path],
) -> None:
    """Once the job succeeded, its page holds a chart per metric the API reports (train
    and validation as two lines), each with every value the API's series has for it."""
    sign_in(browser, training.console.url, trained_job.token, trained_job.username)
    browser.get(f"{training.console.url}/#/jobs/training/{trained_job.job_id}")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
    async with httpx.AsyncClient(base_url=training.api.url, timeout=30) as api:
        found = await api.get(f"/jobs/{trained_job.job_id}/metrics", headers=trained_job.headers)
    points = found.json()["points"]

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
