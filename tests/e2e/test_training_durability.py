"""Exact resume across real worker processes: a train job whose worker is killed -9 in the
middle of training, and whose next worker is stopped by SIGTERM (Spot's notice), ends on a
third worker with exactly the model an uninterrupted run makes (identical predictions)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul_training.worker.runner import trainer_argv
from tests.support.moto import MotoServer
from tests.support.training import (
    TrainingPlatform,
    TrainingWorker,
    classification_csv,
    dataset_settled,
    lightgbm_train,
    provision_training,
    store_of,
    submit,
    training_app,
    upload_dataset,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROWS = int(os.environ.get("TRAINING_E2E_ROWS", "2000"))
ROUNDS = int(os.environ.get("TRAINING_E2E_ROUNDS", "150"))
# The trainer sleeps this long after each round in the workers (never in the reference run),
# so that the kill and the stop land in the middle of training on any machine.
PAUSE = {"LONGHAUL_TRAINING_STEP_PAUSE_S": os.environ.get("TRAINING_E2E_PAUSE_S", "0.1")}


@pytest.fixture
def training_workers() -> Iterator[list[TrainingWorker]]:
    """Training worker processes a test starts; killed at its end, whatever happened."""
    started: list[TrainingWorker] = []
    yield started
    for worker in started:
        worker.stop()


async def _checkpoint_etag(aws: AwsClients, platform: TrainingPlatform, job_id: str) -> str | None:
    s3 = await aws.get("s3")
    try:
        head = await s3.head_object(
            Bucket=platform.names.bucket, Key=f"work/{job_id}/checkpoint.tar"
        )
    except s3.exceptions.ClientError:
        return None
    return str(head["ETag"])


async def _new_checkpoint(
    aws: AwsClients, platform: TrainingPlatform, job_id: str, other_than: str | None
) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        etag = await _checkpoint_etag(aws, platform, job_id)
        if etag is not None and etag != other_than:
            return etag
        await asyncio.sleep(0.1)
    raise AssertionError("the job never uploaded a (new) checkpoint")


async def _resumed_by(workers: list[TrainingWorker]) -> TrainingWorker:
    """The worker that resumed the job (its log says so): after the killed worker's lease
    lapses (6 s) and a spare's poll finds the message, seconds; a loaded machine's trainer
    start-up takes longer, so the bound is generous."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for worker in workers:
            if "resuming the trainer" in worker.log():
                return worker
        await asyncio.sleep(0.2)
    raise AssertionError("no worker resumed the job")


def _predictions(model_dir: Path, data: Path) -> pa.Table:
    from longhaul_training.training.artifacts import load_model
    from longhaul_training.training.datasets import load_table

    return load_model(model_dir).predict(load_table(data, "csv"))


async def test_a_train_job_killed_9_then_termed_ends_with_the_uninterrupted_model(
    aws: AwsClients,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    training_workers: list[TrainingWorker],
) -> None:
    platform = await provision_training(aws, moto.endpoint)
    store = await store_of(aws, platform)
    alice = platform.bearer("alice")
    data = classification_csv(rows=ROWS, features=12)
    csv = tmp_path / "data.csv"
    csv.write_bytes(data)
    training_workers.append(TrainingWorker(platform, tmp_path, "a", env=PAUSE))
    async with training_app(monkeypatch, platform, role="api") as (_, api):
        dataset = await upload_dataset(api, alice, data)
        assert (await dataset_settled(api, alice, dataset))["status"] == "registered"
        payload = lightgbm_train(dataset, rounds=ROUNDS, every=10, learning_rate=0.05)
        response = await submit(api, alice, "train", payload)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

    # The uninterrupted run, beside it: the trainer as the job runs it, never stopped.
    reference = tmp_path / "reference"
    reference.mkdir()
    spec = {k: v for k, v in payload.items() if k != "dataset"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    uninterrupted = subprocess.Popen(  # noqa: ASYNC220  (started, never waited on here)
        trainer_argv(tmp_path / "spec.json", csv, "csv", reference),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )

    async def predict_uninterrupted() -> pa.Table:
        _, stderr = await asyncio.to_thread(uninterrupted.communicate, timeout=120)
        assert uninterrupted.returncode == 0, stderr[-2000:]
        return await asyncio.to_thread(_predictions, reference / "model", csv)

    reference_predictions = asyncio.create_task(predict_uninterrupted())

    # Killed -9 once it has a checkpoint in the bucket; two more workers start meanwhile.
    first = await _new_checkpoint(aws, platform, job_id, None)
    # The archive is uploaded before the job's row records it: kill only once the row does,
    # or the next run rightly starts over (same model, but no resume to prove).
    deadline = time.monotonic() + 60
    while not (await store.checkpoint_of(job_id) or {}).get("step"):
        assert time.monotonic() < deadline, "the job never recorded its checkpoint"
        await asyncio.sleep(0.05)
    assert not (await store.get(job_id)).terminal, "training ended before it could be killed"
    spares = [TrainingWorker(platform, tmp_path, name, env=PAUSE) for name in ("b", "c")]
    training_workers.extend(spares)
    training_workers[0].kill9()
    # One of them takes it over from that checkpoint; SIGTERM once it saved another.
    taker = await _resumed_by(spares)
    await _new_checkpoint(aws, platform, job_id, first)
    assert not (await store.get(job_id)).terminal, "training ended before it could be stopped"
    assert await asyncio.to_thread(taker.terminate) == 0
    assert "asked the trainer to checkpoint and stop" in taker.log()
    released = await store.get(job_id)
    assert released.state in (JobState.QUEUED, JobState.RUNNING), released
    # The other finishes it, from the checkpoint the stop saved.
    [finisher] = [w for w in spares if w is not taker]
    job = await wait_for(store, job_id, JobState.SUCCEEDED, JobState.FAILED, timeout=90)
    assert job.state is JobState.SUCCEEDED, job
    assert job.takeovers >= 1, job
    assert job.runs >= 3, job
    assert job.attempts == 0, "neither the kill nor the stop counts as a failed attempt"
    assert "resuming the trainer" in finisher.log()

    expected = await reference_predictions
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    s3 = await aws.get("s3")
    result = job.result or {}
    for key in result["files"]:
        name = key.split(f"/{result['model_id']}/", 1)[1]
        (resumed / name).parent.mkdir(parents=True, exist_ok=True)
        await s3.download_file(platform.names.bucket, key, str(resumed / name))
    got = await asyncio.to_thread(_predictions, resumed, csv)
    assert got.equals(expected), "the resumed model predicts otherwise than the uninterrupted one"
    card: dict[str, Any] = json.loads((resumed / "card.json").read_text())
    assert card["dataset_id"] == dataset
