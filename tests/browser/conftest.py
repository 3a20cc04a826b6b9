"""The console's browser tests: Debian's headless Chromium driven by selenium, against the
echo service's API and a worker as real processes on moto, and the console as a real
process pointed at that API; for another service's pages, its API and the console in front
of it (`api_and_console`), training's shared by the tests of a training job's page
(`training`, `trained_job`). Skipped, with the reason, only when Chromium or its driver is
not installed (`apt-get install chromium chromium-driver`; .ci/run installs them)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService

from longhaul.aws.clients import AwsClients
from tests.conftest import REGION, Platform, new_platform
from tests.support.app import echo_environment, forge
from tests.support.moto import MotoServer, free_port
from tests.support.processes import kill_tree
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
from tests.support.workers import FAST, ROOT, Worker

# A column name that runs script if the page ever parses a model's card as HTML.
HOSTILE_COLUMN = "<img src=x onerror=window.__pwned=1>"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
START_TIMEOUT_S = 60.0


def _missing_browser() -> str | None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    return None


class Server:
    """A real server process (the echo API, the console) with its log kept in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = logs / f"{name}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, *argv, "--port", str(self.port)],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            kill_tree(self.process.pid)
        self.process.wait()


@dataclass
class Served:
    """One service's API and the console in front of it, both real processes."""

    api: Server
    console: Server


@contextlib.contextmanager
def api_and_console(
    service: str,
    module: str,
    env: dict[str, str],
    logs: Path,
    console_env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """`python -m <module> --role api` with `env`, and the console forwarding `service`
    to it (with `console_env` too), once both answer /healthz; both killed at the end,
    whatever happened."""
    api = Server(f"{service}-api", ["-m", module, "--role", "api"], env, logs)
    try:
        console = Server(
            "console",
            ["-m", "longhaul.console"],
            {"LONGHAUL_CONSOLE_SERVICES": json.dumps({service: api.url}), **(console_env or {})},
            logs,
        )
        try:
            api.wait_healthy()
            console.wait_healthy()
            yield Served(api, console)
        finally:
            console.stop()
    finally:
        api.stop()


@dataclass
class TrainingStack:
    """The training API, a training worker and the console in front of the API."""

    platform: TrainingPlatform
    api: Server
    console: Server


@pytest.fixture(scope="session")
async def training(
    moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[TrainingStack]:
    """The training API, one training worker (LightGBM and the rest in its trainer
    processes) and the console, for every browser test of a training job's page; killed at
    the end, whatever happened."""
    aws = AwsClients(REGION)
    try:
        platform = await provision_training(aws, moto.endpoint)
    finally:
        await aws.close()
    logs = tmp_path_factory.mktemp("training-console")
    worker = TrainingWorker(platform, logs)
    try:
        env = with_bytecode_cache(platform.environment())
        with api_and_console("training", "longhaul_training", env, logs) as served:
            yield TrainingStack(platform, served.api, served.console)
    finally:
        worker.stop()


@dataclass
class TrainedJob:
    """A small LightGBM train job of a user of its own, submitted once for the tests of a
    training job's page (its charts, its model's card); each waits for it on the page."""

    token: str
    username: str
    job_id: str
    dataset: dict[str, Any]  # the dataset's record, registered

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def hostile_csv() -> bytes:
    """A generated classification table (200 rows, features f0..f5, target `label`), its
    first feature column named `HOSTILE_COLUMN`."""
    header, rest = classification_csv(rows=200).split(b"\n", 1)
    columns = header.decode().split(",")
    columns[0] = HOSTILE_COLUMN
    return ",".join(columns).encode() + b"\n" + rest


@pytest.fixture(scope="session")
async def trained_job(training: TrainingStack) -> TrainedJob:
    """The dataset uploaded and registered, and the train job submitted (15 rounds, a
    checkpoint every 5), as a new user."""
    sub = f"tara-{uuid.uuid4().hex[:8]}"
    token = forge(training.platform.auth, sub=sub, username="tara")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=training.api.url, timeout=30) as api:
        dataset_id = await upload_dataset(api, headers, hostile_csv())
        dataset = await dataset_settled(api, headers, dataset_id)
        assert dataset["status"] == "registered", dataset
        answer = await api.post(
            "/jobs",
            json={"type": "train", "payload": lightgbm_train(dataset_id, rounds=15, every=5)},
            headers=headers,
        )
    assert answer.status_code == 202, answer.text
    return TrainedJob(token, "tara", str(answer.json()["id"]), dataset)


@dataclass
class Stack:
    """The echo API and the console in front of it, on one provisioned platform."""

    platform: Platform
    api: Server
    console: Server
    logs: Path
    workers: list[Worker] = field(default_factory=list)

    def token(self, sub: str, username: str) -> str:
        """An access token for `sub`, signed as the local pool signs them."""
        return forge(self.platform.auth, sub=sub, username=username)

    def user(self, name: str) -> tuple[str, str]:
        """A new user of this run: (sub, token)."""
        sub = f"{name}-{uuid.uuid4().hex[:8]}"
        return sub, self.token(sub, name)

    def call(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        """Call the echo API directly, as `token`'s user."""
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.api.url}{path}", headers=headers, timeout=30, **kwargs)

    def submit(self, token: str, job_type: str = "work", **payload: Any) -> str:
        """Submit a job as `token`'s user; its id."""
        answer = self.call("POST", "/jobs", token, json={"type": job_type, "payload": payload})
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def start_worker(self) -> None:
        """One echo worker process (only the first call starts it)."""
        if not self.workers:
            self.workers.append(Worker(self.platform, self.logs, name="console"))


@pytest.fixture(scope="module")
async def stack(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """A platform of its own, the echo API and the console as real processes; a worker
    once a test asks for it. Everything is killed at the end, whatever happened."""
    aws = AwsClients(REGION)
    try:
        platform = await new_platform(aws, moto.endpoint)
    finally:
        await aws.close()
    logs = tmp_path_factory.mktemp("console")
    api_env = {
        **echo_environment(platform.env, platform.endpoint, platform.auth, role="api"),
        **FAST,
    }
    api = Server("echo-api", ["-m", "tests.support.echo", "--role", "api"], api_env, logs)
    console = Server(
        "console",
        ["-m", "longhaul.console"],
        {"LONGHAUL_CONSOLE_SERVICES": json.dumps({"echo": api.url})},
        logs,
    )
    running = Stack(platform=platform, api=api, console=console, logs=logs)
    try:
        api.wait_healthy()
        console.wait_healthy()
        yield running
    finally:
        for worker in running.workers:
            worker.stop()
        console.stop()
        api.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Debian's Chromium, headless, with a profile of its own, for every browser test (each
    signs in to the console it uses); quit at the end."""
    reason = _missing_browser()
    if reason is not None:
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,820",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=ChromeService(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Callable[[webdriver.Chrome, str], Path]:
    """Save a PNG of the page: into $LONGHAUL_CONSOLE_SCREENSHOTS (docs/console/ when the
    docs' pictures are renewed) or else the test's temporary folder."""
    folder = Path(os.environ.get("LONGHAUL_CONSOLE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def take(driver: webdriver.Chrome, name: str) -> Path:
        path = folder / f"{name}.png"
        size = driver.get_window_size()
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(size["width"], min(max(int(height) + 120, 500), 1600))
        try:
            assert driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
        finally:
            driver.set_window_size(size["width"], size["height"])
        return path

    return take
