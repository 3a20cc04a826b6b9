"""The training API against a real moto server, with a worker in-process: datasets
uploaded and registered or rejected with a reason, train jobs refused or failed with a
reason, a model's way into the registry, batch prediction, models callers upload, and
what another caller may see (nothing: 404)."""

from __future__ import annotations

import asyncio
import io
import pickle
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from longhaul.aws.clients import AwsClients
from tests.support.moto import MotoServer
from tests.support.training import (
    NotAModel,
    TrainingPlatform,
    classification_csv,
    dataset_settled,
    job_ended,
    lightgbm_train,
    provision_training,
    submit,
    training_app,
    upload_dataset,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> TrainingPlatform:
    return await provision_training(aws, moto.endpoint)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    found: dict[str, Any] = response.json()
    return found


def _nested_parquet() -> bytes:
    table = pa.table({"x": [[1, 2], [3]], "label": [0, 1]})
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


async def test_bad_datasets_and_models_are_rejected_with_a_reason_and_the_worker_goes_on(
    platform: TrainingPlatform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    alice = platform.bearer("alice")
    bad = {
        "ragged.csv": (b"a,b,label\n1,2,0\n3,4\n5,6,1\n", "same number of fields"),
        "empty.csv": (b"a,b,label\n", "no data rows"),
        "nested.parquet": (_nested_parquet(), "nested"),
    }
    # Every file is made before the app (and its in-process worker) starts: importing
    # scikit-learn or skops takes seconds that would hold the worker's event loop.
    models, good_csv = _bad_models(tmp_path), classification_csv()
    async with training_app(monkeypatch, platform) as (_, api):
        ids = {
            name: await upload_dataset(api, alice, data, name) for name, (data, _) in bad.items()
        }
        good = await upload_dataset(api, alice, good_csv, "good.csv")
        imports = await _upload_models(api, alice, models)
        for name, (_, words) in bad.items():
            record = await dataset_settled(api, alice, ids[name])
            assert record["status"] == "rejected", record
            assert words in record["reason"].lower(), record["reason"]
            assert "/tmp" not in record["reason"]  # a reason names no path of the worker's
        registered = await dataset_settled(api, alice, good)
        assert registered["status"] == "registered", registered
        info = registered["info"]
        assert (info["rows"], info["columns"], info["format"]) == (400, 7, "csv")
        assert "label" in info["target_candidates"]
        assert len(info["sha256"]) == 64
        listed = (await api.get("/datasets", headers=alice)).json()["datasets"]
        assert {d["id"] for d in listed} == {good, *ids.values()}
        bob = platform.bearer("bob")
        _problem(await api.get(f"/datasets/{good}", headers=bob), 404)
        assert (await api.get("/datasets", headers=bob)).json()["datasets"] == []
        jobs = (await api.get("/jobs", headers=alice)).json()["jobs"]
        failed = [j for j in jobs if j["type"] == "register-dataset" and j["state"] == "failed"]
        assert len(failed) == 3
        assert all("rejected" in j["error"] for j in failed)
        await _models_refused(api, alice, imports)


async def test_uploads_over_the_limit_or_of_another_kind_are_refused_up_front(
    platform: TrainingPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = platform.bearer("alice")
    async with training_app(
        monkeypatch, platform, role="api", TRAINING_MAX_DATASET_BYTES="1000"
    ) as (_, api):
        over = await api.post("/datasets", json={"filename": "a.csv", "size": 1001}, headers=alice)
        assert "over the limit of 1000 bytes" in _problem(over, 413)["detail"]
        kind = await api.post("/datasets", json={"filename": "a.xlsx", "size": 10}, headers=alice)
        assert "CSV" in _problem(kind, 422)["detail"]
        pickled = await api.post("/models", json={"filename": "m.exe", "size": 10}, headers=alice)
        _problem(pickled, 422)


async def test_bad_train_requests_fail_with_a_reason_and_the_worker_goes_on_to_register_a_model(
    aws: AwsClients, platform: TrainingPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = platform.bearer("alice"), platform.bearer("bob")
    texts = b"a,b,label,name\n" + b"".join(
        f"{i},{i % 7},{i % 2},n{i % 3}\n".encode() for i in range(60)
    )
    constant = b"a,b,label\n" + b"".join(f"{i},{i % 5},1\n".encode() for i in range(60))
    good = classification_csv()  # before the app: the import of scikit-learn takes seconds
    async with training_app(monkeypatch, platform) as (_, api):
        data = await upload_dataset(api, alice, texts, "texts.csv")
        flat = await upload_dataset(api, alice, constant, "constant.csv")
        for dataset in (data, flat):
            assert (await dataset_settled(api, alice, dataset))["status"] == "registered"
        # Another owner's dataset is not there for bob; an unknown parameter is a 422.
        _problem(await submit(api, bob, "train", lightgbm_train(data)), 404)
        unknown = await submit(api, alice, "train", lightgbm_train(data, bogus=1))
        assert unknown.status_code == 422, unknown.text
        cases = {
            "missing target": ({**lightgbm_train(data), "target": "nope"}, "nope"),
            "non-numeric regression target": (
                {**lightgbm_train(data), "target": "name", "task": "regression"},
                "numeric",
            ),
            "constant target": (lightgbm_train(flat), "single value"),
        }
        submitted = {}
        for case, (payload, _) in cases.items():
            response = await submit(api, alice, "train", payload)
            assert response.status_code == 202, (case, response.text)
            submitted[case] = response.json()["id"]
        for case, (_, words) in cases.items():
            job = await job_ended(api, alice, submitted[case])
            assert job["state"] == "failed", (case, job)
            assert words in job["error"].lower(), (case, job["error"])
            assert job["attempts"] <= 1, "a user's error is not retried"
        # The worker goes on: a good job on the same worker succeeds, and its model is in
        # the registry (below).
        dataset = await _a_model_reaches_the_registry(api, aws, platform, alice, good)
        # A cancel kills the trainer of a running job within seconds.
        monkeypatch.setenv("LONGHAUL_TRAINING_STEP_PAUSE_S", "0.2")
        slow = await submit(api, alice, "train", lightgbm_train(dataset, rounds=500))
        await _cancel_kills_the_trainer(api, alice, slow.json()["id"])


def _trainers(job_id: str) -> list[int]:
    """The trainer processes running for `job_id` (found by their scratch folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"longhaul_training.training.trainer" in command and (
                f"train-{job_id[:8]}-".encode() in command
            ):
                found.append(int(entry.name))
    return found


async def _cancel_kills_the_trainer(
    api: httpx.AsyncClient, alice: dict[str, str], job_id: str
) -> None:
    deadline = time.monotonic() + 60
    while not (await api.get(f"/jobs/{job_id}", headers=alice)).json()["progress"]:
        assert time.monotonic() < deadline, "the trainer never reported a round"
        await asyncio.sleep(0.2)
    assert _trainers(job_id), "no trainer runs for the job"
    cancelled = await api.post(f"/jobs/{job_id}/cancel", headers=alice)
    assert cancelled.status_code == 202, cancelled.text
    deadline = time.monotonic() + 10  # the kit's cancel poll is 0.3 s here
    while _trainers(job_id):
        assert time.monotonic() < deadline, "the trainer outlived the cancel"
        await asyncio.sleep(0.1)
    assert (await job_ended(api, alice, job_id))["state"] == "cancelled"


async def _a_model_reaches_the_registry(
    api: httpx.AsyncClient,
    aws: AwsClients,
    platform: TrainingPlatform,
    alice: dict[str, str],
    data: bytes,
) -> str:
    """A trained model's series, card, downloads and predictions; bob sees none of it."""
    bob = platform.bearer("bob")
    dataset = await upload_dataset(api, alice, data, "clf.csv")
    assert (await dataset_settled(api, alice, dataset))["status"] == "registered"
    created = await submit(api, alice, "train", lightgbm_train(dataset, rounds=30, every=10))
    assert created.status_code == 202, created.text
    job = await job_ended(api, alice, created.json()["id"])
    assert job["state"] == "succeeded", job
    model_id = job["result"]["model_id"]
    # The metric series: a point per round, in order, with train and validation metrics.
    series = (await api.get(f"/jobs/{job['id']}/metrics", headers=alice)).json()["points"]
    assert [p["step"] for p in series] == sorted({p["step"] for p in series})
    assert len(series) >= 30
    assert all(p["valid"] for p in series)
    batches = await (await aws.get("dynamodb")).query(
        TableName=platform.names.table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": f"METRICS#{job['id']}"}},
        Select="COUNT",
    )
    assert batches["Count"] <= len(series) // 5, "the series is written in batches"
    _problem(await api.get(f"/jobs/{job['id']}/metrics", headers=bob), 404)
    # The registry: the card with the dataset's id and hash, and presigned downloads.
    model = (await api.get(f"/models/{model_id}", headers=alice)).json()
    assert model["card"]["dataset_id"] == dataset
    assert model["card"]["family"] == "lightgbm"
    assert {"card.json", "card.md"} <= set(model["files"])
    assert any(f.endswith(".skops") for f in model["files"])
    listed = (await api.get("/models", headers=alice)).json()["models"]
    assert [m["id"] for m in listed] == [model_id]
    urls = (await api.get(f"/models/{model_id}/download", headers=alice)).json()["urls"]
    async with httpx.AsyncClient() as http:
        card_md = await http.get(urls["card.md"])
    assert card_md.status_code == 200
    assert "lightgbm" in card_md.text.lower()
    for path in (f"/models/{model_id}", f"/models/{model_id}/download"):
        _problem(await api.get(path, headers=bob), 404)
    # Batch prediction: Parquet under the caller's prefix, one row per input row.
    _problem(await submit(api, bob, "predict", {"model": model_id, "dataset": dataset}), 404)
    predicted = await submit(api, alice, "predict", {"model": model_id, "dataset": dataset})
    done = await job_ended(api, alice, predicted.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["result"]["key"] == f"predictions/alice/{done['id']}.parquet"
    async with httpx.AsyncClient() as http:
        parquet = await http.get(done["result"]["url"])
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == 400
    assert "prediction" in table.column_names
    return dataset


def _bad_models(tmp_path: Path) -> dict[str, bytes]:
    """A pickle, and a skops file naming a type outside the allowlist."""
    import skops.io as sio

    forbidden = tmp_path / "evil.skops"
    sio.dump(NotAModel(), forbidden)
    return {"model.pkl": pickle.dumps({"weights": [1, 2, 3]}), "evil.skops": forbidden.read_bytes()}


async def _upload_models(
    api: httpx.AsyncClient, alice: dict[str, str], files: dict[str, bytes]
) -> dict[str, tuple[str, str]]:
    """The files uploaded as models and their imports submitted: file name to (model id,
    job id)."""
    jobs = {}
    for name, data in files.items():
        ticket = await api.post(
            "/models", json={"filename": name, "size": len(data)}, headers=alice
        )
        assert ticket.status_code == 201, ticket.text
        body = ticket.json()
        async with httpx.AsyncClient() as http:
            put = await http.put(body["url"], content=data, headers=body["headers"])
        assert put.status_code == 200
        response = await api.post("/jobs", json=body["then"], headers=alice)
        assert response.status_code == 202, response.text
        jobs[name] = (body["model_id"], response.json()["id"])
    return jobs


async def _models_refused(
    api: httpx.AsyncClient, alice: dict[str, str], jobs: dict[str, tuple[str, str]]
) -> None:
    """Each import failed with the reason, and the model's record says it was rejected."""
    for model_id, job_id in jobs.values():
        job = await job_ended(api, alice, job_id)
        assert job["state"] == "failed", job
        assert "refused" in job["error"], job["error"]
        record = (await api.get(f"/models/{model_id}", headers=alice)).json()
        assert record["status"] == "rejected"
        assert record["reason"]
    assert "pickle" in (await job_ended(api, alice, jobs["model.pkl"][1]))["error"].lower()
