"""A sweep over real worker processes killed -9 while it runs: every trial ends, none is
spawned twice, and the best model is promoted into the registry."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.store import child_owner
from tests.support.moto import MotoServer
from tests.support.training import (
    TrainingWorker,
    classification_csv,
    dataset_settled,
    provision_training,
    records_of,
    store_of,
    submit,
    training_app,
    upload_dataset,
    wait_for,
)

TRIALS = int(os.environ.get("TRAINING_E2E_SWEEP_TRIALS", "8"))  # the soak: 50
KILLS = int(os.environ.get("TRAINING_E2E_SWEEP_KILLS", "2"))

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(max(150, 20 * TRIALS))]


@pytest.fixture
def training_workers() -> Iterator[list[TrainingWorker]]:
    """Training worker processes a test starts; killed at its end, whatever happened."""
    started: list[TrainingWorker] = []
    yield started
    for worker in started:
        worker.stop()


async def test_workers_killed_during_a_sweep_leave_no_trial_unfinished_nor_doubled(
    aws: AwsClients,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    training_workers: list[TrainingWorker],
) -> None:
    platform = await provision_training(aws, moto.endpoint)
    store = await store_of(aws, platform)
    alice = platform.bearer("alice")
    training_workers += [TrainingWorker(platform, tmp_path, n) for n in ("a", "b")]
    async with training_app(monkeypatch, platform, role="api") as (_, api):
        dataset = await upload_dataset(api, alice, classification_csv(rows=600))
        assert (await dataset_settled(api, alice, dataset))["status"] == "registered"
        response = await submit(
            api,
            alice,
            "sweep",
            {
                "dataset": dataset,
                "target": "label",
                "task": "classification",
                "family": "lightgbm",
                "params": {"n_rounds": 30},
                "validation": {"holdout": 0.25},
                "seed": 3,
                "checkpoint_every": 5,
                "space": {
                    "num_leaves": {"type": "int", "low": 4, "high": 32},
                    "learning_rate": {"type": "float", "low": 0.03, "high": 0.3, "log": True},
                },
                "strategy": "tpe",
                "budget": {"trials": TRIALS, "wall_s": 600},
                "parallel": 4,
                "pruning": {"min_trials": 2, "warmup_steps": 5},
            },
        )
        assert response.status_code == 202, response.text
        sweep_id = response.json()["id"]

    rng = random.Random(11)
    for round_ in range(KILLS):
        await asyncio.sleep(rng.uniform(2, 4))
        if (await store.get(sweep_id)).terminal:
            break
        victim = training_workers[rng.randrange(len(training_workers))]
        victim.kill9()
        training_workers.remove(victim)
        training_workers.append(TrainingWorker(platform, tmp_path, f"r{round_}"))
    sweep = await wait_for(
        store, sweep_id, JobState.SUCCEEDED, JobState.FAILED, timeout=max(120, 15 * TRIALS)
    )
    assert sweep.state is JobState.SUCCEEDED, sweep
    trials = (await store.page(child_owner(sweep_id), limit=1000)).jobs
    assert sorted(t.payload["trial"] for t in trials) == list(range(TRIALS)), "a trial twice"
    assert all(t.state is JobState.SUCCEEDED for t in trials), [t.error for t in trials]
    assert sum(t.takeovers for t in [sweep, *trials]) >= 1 or KILLS == 0, "no kill hit a run"
    result = sweep.result or {}
    assert len(result["trials"]) == TRIALS
    assert result["completed"] + result["pruned"] == TRIALS
    model = await (await records_of(aws, platform)).model("alice", result["model_id"])
    assert model is not None
    assert model["best"]
    assert model["sweep_id"] == sweep_id
    assert model["params"] == result["best_params"]
