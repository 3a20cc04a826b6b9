"""The analytics service under test: its platform on moto, its API in-process (its closer
running) and its workers as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from longhaul.aws.clients import AwsClients
from longhaul.config import load_settings
from longhaul.local.platform import LocalAuth, role_environment
from longhaul.local.provision import provision
from longhaul.spec import ResourceNames
from longhaul_analytics.config import AnalyticsSettings
from longhaul_analytics.service import SERVICE
from longhaul_analytics.spec import SPEC as ANALYTICS
from tests.support.app import forge
from tests.support.moto import free_port

ROOT = Path(__file__).resolve().parents[3]
REGION = "us-east-1"

FAST = {
    "LONGHAUL_POLL_WAIT_S": "1",
    "LONGHAUL_SHUTDOWN_DEADLINE_S": "5",
    "LONGHAUL_RETRY_BASE_S": "1",
    "LONGHAUL_RETRY_MAX_S": "2",
    "ANALYTICS_ALLOWED_LATENESS_S": "5",
    "ANALYTICS_IDLE_TIMEOUT_S": "2",
    "ANALYTICS_CLOSE_EVERY_S": "0.3",
    "ANALYTICS_METRICS_CACHE_S": "0",
    "ANALYTICS_LAKE_SCHEDULE_ON_START": "false",
}


@dataclass
class AnalyticsPlatform:
    """The analytics service's resources in an environment of their own."""

    env: str
    auth: LocalAuth
    endpoint: str
    names: ResourceNames

    def environment(self, role: str = "api", **extra: str) -> dict[str, str]:
        """The variables the dev runner would give the analytics service."""
        return {
            **role_environment(
                ANALYTICS,
                role,
                env=self.env,
                region=REGION,
                endpoint=self.endpoint,
                auth=self.auth,
                host="127.0.0.1",
            ),
            **FAST,
            **extra,
        }

    def bearer(self, sub: str) -> dict[str, str]:
        """The Authorization header of a caller `sub`."""
        return {"Authorization": f"Bearer {forge(self.auth, sub=sub)}"}


async def provision_analytics(aws: AwsClients, endpoint: str) -> AnalyticsPlatform:
    """Provision the analytics spec in a new environment."""
    env = "a" + uuid.uuid4().hex[:8]
    report = await provision(aws, [ANALYTICS], env=env, region=REGION)
    assert report.auth is not None
    return AnalyticsPlatform(env, report.auth, endpoint, ResourceNames.of(ANALYTICS, env))


@asynccontextmanager
async def analytics_api(
    monkeypatch: pytest.MonkeyPatch, platform: AnalyticsPlatform, **extra: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The analytics API in-process (its lifespan, and so its closer, running)."""
    for key, value in platform.environment("api", **extra).items():
        monkeypatch.setenv(key, value)
    app = SERVICE.app("api", load_settings(AnalyticsSettings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://analytics.test", timeout=60
        ) as client:
            yield app, client


class AnalyticsWorker:
    """`python -m longhaul_analytics --role worker` as its own process."""

    def __init__(self, platform: AnalyticsPlatform, logs: Path, name: str = "w", **extra: str):
        self.name = name
        self.log_path = logs / f"analytics-worker-{name}-{time.time_ns()}.log"
        variables = {**os.environ, **platform.environment("worker", **extra)}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "longhaul_analytics",
                    "--role",
                    "worker",
                    "--port",
                    str(free_port()),
                ],
                cwd=ROOT,
                env=variables,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        self._backlog: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> bool:
        """Whether it finished starting (it consumes from now on)."""
        return "Application startup complete" in self.log()

    def backlog_at_ready(self, now: int) -> int:
        """The backlog first seen once it was ready (`now` the first time asked)."""
        if self._backlog is None:
            self._backlog = now
        return self._backlog

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
