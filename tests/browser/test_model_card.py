"""A finished training job's page shows the card of the model it made, with the values the
training API's registry holds for it (GET /models/{id}) and a link per file (GET
/models/{id}/download), every string put in as text. The training API, a training worker
(LightGBM in its trainer process) and the console run as real processes on moto
(conftest.py's `training` and its `trained_job`, which test_training_charts.py charts)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import HOSTILE_COLUMN, TrainedJob, TrainingStack
from tests.browser.test_console import sign_in, wait

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def cells(driver: webdriver.Chrome, css: str) -> list[str]:
    """The text of every element matching `css`."""
    return [str(node.text) for node in driver.find_elements(By.CSS_SELECTOR, css)]


def attribute(driver: webdriver.Chrome, css: str, name: str) -> list[str]:
    """Attribute `name` of every element matching `css`."""
    return [str(node.get_attribute(name)) for node in driver.find_elements(By.CSS_SELECTOR, css)]


async def test_a_trained_models_card_shows_what_the_api_says(
    browser: webdriver.Chrome,
    training: TrainingStack,
    trained_job: TrainedJob,
    screenshots: Callable[[webdriver.Chrome, str], Path],
) -> None:
    """Once a LightGBM job succeeded, its page holds the model's card: its family, task,
    target, dataset digest, rows and seed; every held-out metric with the API's exact value;
    every parameter; every column but the target as a feature (a column named with markup
    shown as that text, its script never run); every file with a download link to that
    file's object."""
    sign_in(browser, training.console.url, trained_job.token, trained_job.username)
    browser.get(f"{training.console.url}/#/jobs/training/{trained_job.job_id}")
    wait(browser).until(ec.text_to_be_present_in_element((By.ID, "job-state"), "succeeded"))
    headers = trained_job.headers
    async with httpx.AsyncClient(base_url=training.api.url, timeout=30) as api:
        job = (await api.get(f"/jobs/{trained_job.job_id}", headers=headers)).json()
        model_id = job["result"]["model_id"]
        model: dict[str, Any] = (await api.get(f"/models/{model_id}", headers=headers)).json()
        links = (await api.get(f"/models/{model_id}/download", headers=headers)).json()["urls"]

    section = wait(browser).until(ec.presence_of_element_located((By.ID, "model-card")))
    assert section.get_attribute("data-model-id") == model_id
    card = model["card"]

    def fact(key: str) -> str:
        return str(browser.find_element(By.CSS_SELECTOR, f'dd[data-fact="{key}"]').text)

    assert fact("family") == card["family"] == "lightgbm"
    assert fact("task") == card["task"] == "classification"
    assert fact("target") == card["target"] == "label"
    assert fact("dataset") == trained_job.dataset["id"] == card["dataset_id"]
    assert fact("dataset-sha256") == card["dataset_sha256"] == trained_job.dataset["info"]["sha256"]
    assert fact("rows") == str(card["rows"]) == "200"
    assert fact("seed") == str(card["seed"])
    assert "holdout of 25%" in fact("validation")

    shown_metrics = dict(
        zip(
            attribute(browser, "tr.card-metric", "data-metric"),
            attribute(browser, "tr.card-metric", "data-value"),
            strict=True,
        )
    )
    assert shown_metrics, card["metrics"]
    assert shown_metrics.keys() == card["metrics"].keys(), card["metrics"]
    for name, shown in shown_metrics.items():
        assert float(shown) == card["metrics"][name]["value"], name

    params = browser.find_elements(By.CSS_SELECTOR, "tr.card-param")
    shown_params = {
        str(row.get_attribute("data-param")): json.loads(
            row.find_elements(By.TAG_NAME, "td")[1].text
        )
        for row in params
    }
    assert shown_params
    assert shown_params == card["params"]

    features = cells(browser, "tr.card-feature td.card-column-name")
    expected = [c["name"] for c in card["schema"] if c["name"] != card["target"]]
    assert features == expected, features
    assert HOSTILE_COLUMN in features
    assert browser.execute_script("return window.__pwned === undefined;")

    files = attribute(browser, "tr.card-file", "data-file")
    assert files == model["files"], files
    assert "card.json" in files
    hrefs = [
        str(row.find_element(By.TAG_NAME, "a").get_attribute("href"))
        for row in browser.find_elements(By.CSS_SELECTOR, "tr.card-file")
    ]
    # Each link is a presigned URL of that file's object (signatures differ per call).
    assert [urlsplit(h).path for h in hrefs] == [urlsplit(links[f]).path for f in files]
    assert all(urlsplit(links[f]).path.endswith(model["prefix"] + f) for f in files)

    browser.execute_script("document.getElementById('model-card').scrollIntoView();")
    screenshots(browser, "training-model-card")
