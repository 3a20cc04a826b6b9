"""Training: a train job's wall time beside the same fit called directly in one process,
the cost of one checkpoint, and a sweep's speedup with 2 workers over 1 (a core each).

Every figure comes from one run on one moto server, the baseline measured beside it. Sizes
are tunable: BENCH_TRAINING_ROWS, BENCH_TRAINING_ROUNDS, BENCH_TRAINING_TRIALS.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from longhaul.aws.clients import AwsClients
from longhaul.jobs import JobState
from longhaul.jobs.queue import enqueue
from longhaul.local.platform import DUMMY_CREDENTIALS
from longhaul_training.storage import new_id, pack_dir
from tests.support.moto import MotoServer
from tests.support.training import (
    TrainingPlatform,
    TrainingWorker,
    classification_csv,
    provision_training,
    records_of,
    store_of,
    wait_for,
)

REGION = "us-east-1"
ROWS = int(os.environ.get("BENCH_TRAINING_ROWS", "10000"))
ROUNDS = int(os.environ.get("BENCH_TRAINING_ROUNDS", "200"))
TRIALS = int(os.environ.get("BENCH_TRAINING_TRIALS", "4"))
OWNER = "bench"


def _spec(rounds: int, every: int) -> dict[str, Any]:
    return {
        "target": "label",
        "task": "classification",
        "family": "lightgbm",
        "params": {"n_rounds": rounds, "num_leaves": 31, "threads": 1},
        "validation": {"holdout": 0.2},
        "seed": 1,
        "checkpoint_every": every,
    }


def direct_fit(data: Path, spec: dict[str, Any], workdir: Path) -> tuple[float, int]:
    """Seconds of the trainer's `run` called in this process, and its checkpoints."""
    from longhaul_training.training.spec import TrainSpec
    from longhaul_training.training.trainer import run

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    checkpoints = 0

    def emit(line: dict[str, Any]) -> None:
        nonlocal checkpoints
        checkpoints += line.get("kind") == "checkpoint"

    begun = time.monotonic()
    run(TrainSpec.model_validate(spec), data, "csv", workdir, emit, lambda: False)
    return time.monotonic() - begun, checkpoints


async def register(aws: AwsClients, platform: TrainingPlatform, data: Path) -> str:
    """Put the table into the bucket and its record into the table, as registration does."""
    from longhaul_training.training.datasets import DatasetLimits, inspect_dataset

    dataset_id = new_id(OWNER)
    key = f"datasets/{OWNER}/{dataset_id}/data.csv"
    s3 = await aws.get("s3")
    await s3.upload_file(str(data), platform.names.bucket, key)
    info = inspect_dataset(data, "csv", DatasetLimits())
    records = await records_of(aws, platform)
    await records.put_dataset(
        {
            "id": dataset_id,
            "owner": OWNER,
            "name": "data.csv",
            "key": key,
            "format": "csv",
            "status": "registered",
            "info": info.model_dump(mode="json"),
            "created_at": "2026-01-01T00:00:00",
        }
    )
    return dataset_id


async def job_wall(
    aws: AwsClients,
    platform: TrainingPlatform,
    logs: Path,
    job_type: str,
    payload: dict[str, Any],
    cpus: list[int | None],
    env: dict[str, str],
) -> float:
    """Wall seconds of one job, submit to succeeded, on a worker per entry of `cpus`."""
    store = await store_of(aws, platform)
    workers = [
        TrainingWorker(platform, logs, f"w{i}", cpu=cpu, env=env) for i, cpu in enumerate(cpus)
    ]
    try:
        await asyncio.sleep(4)  # the workers are up and long-polling
        sqs = await aws.get("sqs")
        url = (await sqs.get_queue_url(QueueName=platform.names.queue))["QueueUrl"]
        begun = time.monotonic()
        job, _ = await store.submit(owner=OWNER, job_type=job_type, payload=payload)
        await enqueue(sqs, url, job.id)
        done = await wait_for(store, job.id, JobState.SUCCEEDED, JobState.FAILED, timeout=1800)
        wall = time.monotonic() - begun
        if done.state is not JobState.SUCCEEDED:
            raise RuntimeError(f"the bench {job_type} failed: {done.error}")
        return wall
    finally:
        for worker in workers:
            worker.stop()


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: no pinning
        return []


async def run() -> dict[str, float]:
    os.environ.update(DUMMY_CREDENTIALS)
    os.environ["AWS_REGION"] = REGION
    moto = MotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
    folder = Path(tempfile.mkdtemp(prefix="longhaul-bench-training-"))
    aws = AwsClients(REGION)
    f: dict[str, float] = {}
    try:
        platform = await provision_training(aws, moto.endpoint)
        data = folder / "data.csv"
        data.write_bytes(classification_csv(rows=ROWS, features=20))
        dataset = await register(aws, platform, data)
        # 1. The job against the fit in one process (the job checkpoints every 10 rounds).
        f["direct_s"], _ = await asyncio.to_thread(
            direct_fit, data, _spec(ROUNDS, 10), folder / "direct"
        )
        f["job_s"] = await job_wall(
            aws,
            platform,
            folder,
            "train",
            {"dataset": dataset, **_spec(ROUNDS, 10)},
            [None],
            {"LONGHAUL_JOB_CONCURRENCY": "1"},
        )
        # 2. One checkpoint: the trainer's (every round against never), then the service's
        # (pack and upload the checkpoint folder).
        every, count = await asyncio.to_thread(direct_fit, data, _spec(ROUNDS, 1), folder / "every")
        never, _ = await asyncio.to_thread(
            direct_fit, data, _spec(ROUNDS, ROUNDS + 1), folder / "never"
        )
        f["checkpoints"] = count
        f["trainer_checkpoint_ms"] = 1000 * max(0.0, every - never) / max(1, count)
        s3 = await aws.get("s3")
        tar = folder / "checkpoint.tar"
        begun = time.monotonic()
        pack_dir(folder / "every" / "checkpoint", tar)
        await s3.upload_file(str(tar), platform.names.bucket, f"work/{uuid.uuid4().hex}/c.tar")
        f["upload_checkpoint_ms"] = 1000 * (time.monotonic() - begun)
        f["checkpoint_bytes"] = tar.stat().st_size
        # 3. A sweep of TRIALS trials, 2 at once: 1 worker against 2, each on a core.
        cores = _cores()
        pins: list[int | None] = [cores[0], cores[1]] if len(cores) >= 2 else [None, None]
        fixed = _spec(max(20, ROUNDS // 4), 10)
        fixed["params"] = {k: v for k, v in fixed["params"].items() if k != "num_leaves"}
        sweep = {
            "dataset": dataset,
            **fixed,
            "space": {"num_leaves": {"type": "int", "low": 8, "high": 64}},
            "strategy": "random",
            "budget": {"trials": TRIALS, "wall_s": 3600},
            "parallel": 2,
            "pruning": {"enabled": False},
        }
        env = {"LONGHAUL_JOB_CONCURRENCY": "2", "TRAINING_SWEEP_POLL_S": "1"}
        one = {"LONGHAUL_JOB_CONCURRENCY": "3", "TRAINING_SWEEP_POLL_S": "1"}
        f["sweep_1_worker_s"] = await job_wall(aws, platform, folder, "sweep", sweep, pins[:1], one)
        f["sweep_2_workers_s"] = await job_wall(aws, platform, folder, "sweep", sweep, pins, env)
        f["pinned"] = float(len(cores) >= 2)
    finally:
        await aws.close()
        moto.stop()
        shutil.rmtree(folder, ignore_errors=True)
    f["job_ratio"] = f["job_s"] / f["direct_s"]
    f["sweep_speedup"] = f["sweep_1_worker_s"] / f["sweep_2_workers_s"]
    return f


def main() -> dict[str, float]:
    f = asyncio.run(run())
    print(
        f"training (LightGBM, {ROWS} rows x 20 features, {ROUNDS} rounds, 1 thread): train job "
        f"{f['job_s']:.1f} s (submit to succeeded, checkpoint every 10 rounds) vs the same fit "
        f"called directly {f['direct_s']:.1f} s, ratio {f['job_ratio']:.3f}"
    )
    print(
        f"training checkpoint: {f['trainer_checkpoint_ms']:.1f} ms in the trainer "
        f"({int(f['checkpoints'])} checkpoints every round against none), "
        f"{f['upload_checkpoint_ms']:.1f} ms to pack and upload one "
        f"({int(f['checkpoint_bytes'])} bytes)"
    )
    pinned = "a core each" if f["pinned"] else "unpinned"
    print(
        f"training sweep ({TRIALS} trials, 2 at once, {pinned}): 1 worker "
        f"{f['sweep_1_worker_s']:.1f} s, 2 workers {f['sweep_2_workers_s']:.1f} s "
        f"(speedup {f['sweep_speedup']:.2f}x)"
    )
    return f


if __name__ == "__main__":
    main()
