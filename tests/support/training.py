"""The training service under test: generated datasets, its platform on moto, its API (and
worker) in-process, its workers as real processes, and helpers to drive it over HTTP."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from longhaul.aws.clients import AwsClients
from longhaul.config import Role, load_settings
from longhaul.jobs import Job, JobState, JobStore
from longhaul.local.platform import LocalAuth, role_environment
from longhaul.local.provision import provision
from longhaul.spec import ResourceNames
from longhaul_training.config import TrainingSettings
from longhaul_training.service import SERVICE
from longhaul_training.spec import SPEC as TRAINING
from longhaul_training.storage import Records
from tests.support.app import forge
from tests.support.moto import free_port

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

FAST = {
    "LONGHAUL_POLL_WAIT_S": "1",
    "LONGHAUL_CANCEL_POLL_S": "0.3",
    "LONGHAUL_SHUTDOWN_DEADLINE_S": "15",
    "LONGHAUL_RECONCILE_EVERY_S": "1",
    "LONGHAUL_RECONCILE_AFTER_S": "3",
    "LONGHAUL_RETRY_BASE_S": "1",
    "LONGHAUL_RETRY_MAX_S": "4",
    "LONGHAUL_JOB_CONCURRENCY": "2",
    "LONGHAUL_VISIBILITY_TIMEOUT_S": "6",
    "TRAINING_SWEEP_POLL_S": "1",
    "TRAINING_METRICS_BATCH_S": "1",
}

# Where the suite's training processes keep the bytecode they compile, when the environment
# has them write none (PYTHONDONTWRITEBYTECODE, no cache prefix): each would otherwise
# compile scikit-learn, skops, LightGBM or PyTorch from source again, seconds of CPU a
# process. Shared by every session of this user; the interpreter checks each entry against
# its source, as it does its own __pycache__.
BYTECODE = Path(tempfile.gettempdir()) / f"longhaul-tests-pycache-{os.getuid()}"


def with_bytecode_cache(env: dict[str, str]) -> dict[str, str]:
    """`env` for a child interpreter that reads and writes compiled bytecode under
    `BYTECODE` where `env` has it write none and names no cache prefix; else `env`. The code
    it runs is the same."""
    if not env.get("PYTHONDONTWRITEBYTECODE") or env.get("PYTHONPYCACHEPREFIX"):
        return env
    return {
        **{k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPYCACHEPREFIX": str(BYTECODE),
    }


def classification_csv(rows: int = 400, features: int = 6, seed: int = 0) -> bytes:
    """A generated binary classification table as CSV (features f0.., target `label`)."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows, n_features=features, n_informative=min(4, features), random_state=seed
    )
    return _csv(x, y, "label")


def regression_csv(rows: int = 400, features: int = 6, seed: int = 0) -> bytes:
    """A generated regression table as CSV (features f0.., target `y`)."""
    from sklearn.datasets import make_regression

    x, y = make_regression(n_samples=rows, n_features=features, noise=5.0, random_state=seed)
    return _csv(x, y, "y")


def _csv(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], target: str) -> bytes:
    out = io.StringIO()
    out.write(",".join([*(f"f{i}" for i in range(x.shape[1])), target]) + "\n")
    for features, label in zip(x, y, strict=True):
        out.write(",".join([*(f"{v:.6f}" for v in features), f"{label:g}"]) + "\n")
    return out.getvalue().encode()


@dataclass
class TrainingPlatform:
    """The training service's resources in an environment of their own."""

    env: str
    auth: LocalAuth
    endpoint: str
    names: ResourceNames

    def environment(self, role: str = "api", **extra: str) -> dict[str, str]:
        """The variables the dev runner would give the training service."""
        return {
            **role_environment(
                TRAINING,
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
        """Headers that call the API as `sub`."""
        return {"Authorization": f"Bearer {forge(self.auth, sub=sub)}"}


async def provision_training(aws: AwsClients, endpoint: str) -> TrainingPlatform:
    """Provision the training spec in a new environment."""
    env = "t" + uuid.uuid4().hex[:8]
    report = await provision(aws, [TRAINING], env=env, region=REGION)
    assert report.auth is not None
    return TrainingPlatform(env, report.auth, endpoint, ResourceNames.of(TRAINING, env))


@asynccontextmanager
async def training_app(
    monkeypatch: pytest.MonkeyPatch, platform: TrainingPlatform, role: Role = "all", **extra: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The training app in-process (by default the API and a worker in one), its lifespan
    running, and a client speaking to it."""
    for key, value in platform.environment(role, **extra).items():
        monkeypatch.setenv(key, value)
    children = with_bytecode_cache(dict(os.environ))  # what the worker's trainers inherit
    if "PYTHONPYCACHEPREFIX" not in os.environ and "PYTHONPYCACHEPREFIX" in children:
        monkeypatch.delenv("PYTHONDONTWRITEBYTECODE")
        monkeypatch.setenv("PYTHONPYCACHEPREFIX", children["PYTHONPYCACHEPREFIX"])
    app = SERVICE.app(role, load_settings(TrainingSettings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://training.test", timeout=30
        ) as client:
            yield app, client


class TrainingWorker:
    """`python -m longhaul_training --role worker` as its own process."""

    def __init__(
        self,
        platform: TrainingPlatform,
        logs: Path,
        name: str = "w",
        *,
        cpu: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """`cpu` pins the worker and its trainers to one core, as a 1-vCPU task would be."""
        self.name = name
        self.log_path = logs / f"training-worker-{name}-{time.time_ns()}.log"
        variables = with_bytecode_cache(
            {**os.environ, **platform.environment("worker", **(env or {}))}
        )
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "longhaul_training", "--role", "worker"),
                    *("--port", str(free_port())),
                ],
                cwd=ROOT,
                env=variables,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None,
            )

    def kill9(self) -> None:
        """SIGKILL the worker and its trainer, as a task taken away would be."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the worker alone (as ECS does); its exit code once it stopped."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        else:  # its trainer, if the worker died before it
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def store_of(aws: AwsClients, platform: TrainingPlatform) -> JobStore:
    """The training service's job store."""
    assert platform.names.table is not None
    return JobStore(
        await aws.get("dynamodb"),
        platform.names.table,
        s3=await aws.get("s3"),
        bucket=platform.names.bucket,
    )


async def records_of(aws: AwsClients, platform: TrainingPlatform) -> Records:
    """The training service's dataset, model and metric records."""
    assert platform.names.table is not None
    return Records(await aws.get("dynamodb"), platform.names.table)


async def upload_dataset(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    filename: str = "data.csv",
) -> str:
    """Ask for a presigned PUT and upload `data` with it; the dataset's id."""
    response = await api.post(
        "/datasets", json={"filename": filename, "size": len(data)}, headers=headers
    )
    assert response.status_code == 201, response.text
    ticket = response.json()
    async with httpx.AsyncClient() as s3:
        put = await s3.put(ticket["url"], content=data, headers=ticket["headers"])
    assert put.status_code == 200, put.text
    return str(ticket["dataset_id"])


async def dataset_settled(
    api: httpx.AsyncClient, headers: dict[str, str], dataset_id: str, timeout: float = 60
) -> dict[str, Any]:
    """The dataset's record once its registration ended (registered or rejected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await api.get(f"/datasets/{dataset_id}", headers=headers)
        if response.status_code == 200:
            found: dict[str, Any] = response.json()
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"dataset {dataset_id} was never registered nor rejected")


async def submit(
    api: httpx.AsyncClient, headers: dict[str, str], job_type: str, payload: dict[str, Any]
) -> httpx.Response:
    """POST /jobs."""
    return await api.post("/jobs", json={"type": job_type, "payload": payload}, headers=headers)


async def job_ended(
    api: httpx.AsyncClient, headers: dict[str, str], job_id: str, timeout: float = 90
) -> dict[str, Any]:
    """The job, once terminal, through the API."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await api.get(f"/jobs/{job_id}", headers=headers)).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.25)
    raise AssertionError(f"job {job_id} did not end: {job}")


async def wait_for(store: JobStore, job_id: str, *states: JobState, timeout: float = 90) -> Job:
    """The job once it is in one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        job = await store.get(job_id)
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.state} (wanted {states}): {job}")
        await asyncio.sleep(0.25)


def lightgbm_train(dataset: str, rounds: int = 40, every: int = 5, **extra: Any) -> dict[str, Any]:
    """A small seeded LightGBM classification job's payload."""
    return {
        "dataset": dataset,
        "target": "label",
        "task": "classification",
        "family": "lightgbm",
        "params": {"n_rounds": rounds, **extra},
        "validation": {"holdout": 0.25},
        "seed": 7,
        "checkpoint_every": every,
    }


class NotAModel:
    """A class no model allowlist names: a skops file holding one is a forbidden type."""

    def __init__(self, command: str = "echo hello") -> None:
        self.command = command
