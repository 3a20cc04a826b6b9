"""Running the trainer as the job's child process: its dataset and last checkpoint in, its
JSON lines followed (metrics to the job's progress and series, checkpoints to the bucket
and the job's row), the worker's shutdown relayed to it as SIGTERM, its model out.

The trainer is a process of its own, not a thread nor a `run_in_child` call: its CPU work
never holds the event loop (heartbeats, cancel polls, health), it is killed with its whole
process group on cancel, and it owns its checkpoint format (docs/training.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longhaul.jobs import JobContext, JobInterrupted, NonRetryable
from longhaul_training.config import TrainingSettings
from longhaul_training.models import PrunePlan
from longhaul_training.storage import Records, download, pack_dir, unpack_dir, upload

__all__ = ["EX_TEMPFAIL", "MetricsRecorder", "TrainerOutcome", "run_trainer"]

EX_TEMPFAIL = 75  # the trainer's exit after a checkpoint asked for by SIGTERM
EX_USAGE = 2  # the trainer's exit for a user error (bad data, bad params)
STOP_POLL_S = 0.1
TRAINING_SHARE = 0.95  # progress when the trainer is done; the upload does the rest


class MetricsRecorder:
    """A job's metric points, written to the table in batches: `batch_points` points, or
    `batch_s` seconds after the first unsaved one, and whatever is left at `flush()`."""

    def __init__(self, records: Records, job_id: str, batch_points: int, batch_s: float) -> None:
        self._records = records
        self._job_id = job_id
        self._batch_points = batch_points
        self._batch_s = batch_s
        self._pending: list[dict[str, Any]] = []
        self._since = 0.0
        self.writes = 0

    async def add(self, point: dict[str, Any]) -> None:
        """Keep `point`; write the batch once it is full or old enough."""
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append(point)
        full = len(self._pending) >= self._batch_points
        if full or time.monotonic() - self._since >= self._batch_s:
            await self.flush()

    async def flush(self) -> None:
        """Write what is pending."""
        if self._pending:
            batch, self._pending = self._pending, []
            await self._records.put_metrics(self._job_id, batch, time.time_ns())
            self.writes += 1


@dataclass
class TrainerOutcome:
    """How a trainer run ended: done with metrics and a model folder, or pruned."""

    metrics: dict[str, Any] = field(default_factory=dict)
    model_dir: Path | None = None
    pruned_at: int | None = None
    pruned_value: float | None = None
    curve: dict[int, float] = field(default_factory=dict)  # the pruning metric per step


def trainer_argv(spec: Path, data: Path, fmt: str, workdir: Path) -> list[str]:
    """The trainer's command line (docs/training.md)."""
    return [
        *(sys.executable, "-m", "longhaul_training.training.trainer"),
        *("--spec", str(spec), "--data", str(data), "--format", fmt, "--workdir", str(workdir)),
    ]


def _valid_metric(point: dict[str, Any], metric: str) -> float | None:
    value = (point.get("valid") or {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _worse(value: float, median: float, maximize: bool) -> bool:
    return value < median if maximize else value > median


async def run_trainer(
    ctx: JobContext,
    settings: TrainingSettings,
    s3: Any,
    bucket: str,
    *,
    spec: dict[str, Any],
    data: Path,
    fmt: str,
    tmp: Path,
    checkpoint_key: str,
    recorder: MetricsRecorder,
    prune: PrunePlan | None = None,
    curve_metric: str | None = None,
) -> TrainerOutcome:
    """Run the trainer to its end from the job's last checkpoint (if any); on the way,
    upload every checkpoint it completes and record it as the job's. Raises JobInterrupted
    once a shutdown's checkpoint is saved, NonRetryable for a user error, RuntimeError for
    anything else (retried)."""
    workdir = tmp / "work"
    workdir.mkdir()
    state: dict[str, Any] = dict(ctx.resume or {})
    if state.get("step") is not None:
        archive = await download(s3, bucket, checkpoint_key, tmp / "checkpoint.tar")
        await asyncio.to_thread(unpack_dir, archive, workdir / "checkpoint")
        archive.unlink()
        ctx.log.info("resuming the trainer", extra={"from_step": state["step"]})
    spec_path = tmp / "spec.json"
    spec_path.write_text(json.dumps(spec))
    outcome = TrainerOutcome()
    error: list[str] = []
    pid: list[int] = []
    relayed = False
    packs = 0

    async def on_checkpoint(step: int) -> None:
        nonlocal packs
        packs += 1
        archive = tmp / f"checkpoint-{packs}.tar"
        whole = await asyncio.to_thread(pack_dir, workdir / "checkpoint", archive)
        if not whole:  # replaced while read: the next checkpoint stands in for it
            ctx.log.info("a checkpoint changed while it was packed; skipped", extra={"step": step})
            archive.unlink(missing_ok=True)
            return
        await upload(s3, bucket, checkpoint_key, archive, "application/x-tar")
        archive.unlink()
        await recorder.flush()
        # Saved in the row; raises JobInterrupted here when the worker is shutting down.
        await ctx.checkpoint({**state, "step": step})

    async def on_line(line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return  # not one of the trainer's lines (a library's print)
        if not isinstance(message, dict):
            return
        kind = message.get("kind")
        if kind == "metrics":
            await _on_metrics(message)
        elif kind == "checkpoint":
            await on_checkpoint(int(message.get("step", 0)))
        elif kind == "done":
            outcome.metrics = dict(message.get("metrics") or {})
        elif kind == "error":
            error.append(str(message.get("reason") or "the trainer refused the input"))

    async def _on_metrics(point: dict[str, Any]) -> None:
        await recorder.add({k: v for k, v in point.items() if k != "kind"})
        step, of = int(point.get("step", 0)), max(1, int(point.get("of", 1) or 1))
        if curve_metric is not None:
            value = _valid_metric(point, curve_metric)
            if value is not None:
                outcome.curve[step] = value
        valid = ", ".join(
            f"{k} {v:.4g}"
            for k, v in (point.get("valid") or {}).items()
            if isinstance(v, int | float)
        )
        await ctx.progress(
            TRAINING_SHARE * min(1.0, step / of), f"step {step} of {of}: valid {valid}"
        )
        if prune is not None and outcome.pruned_at is None and step > prune.warmup_steps:
            value = _valid_metric(point, prune.metric)
            median = prune.medians.get(step)
            if value is not None and median is not None and _worse(value, median, prune.maximize):
                outcome.pruned_at, outcome.pruned_value = step, value
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid[0], signal.SIGKILL)

    async def relay_stop() -> None:
        nonlocal relayed
        while not relayed:
            if ctx.stopping and pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid[0], signal.SIGTERM)
                relayed = True
                ctx.log.info("asked the trainer to checkpoint and stop")
            await asyncio.sleep(STOP_POLL_S)

    watcher = asyncio.create_task(relay_stop())
    try:
        code, stderr = await ctx.run_process(
            trainer_argv(spec_path, data, fmt, workdir),
            timeout_s=settings.trainer_timeout_s,
            on_stdout_line=on_line,
            on_start=pid.append,
            rlimits={resource.RLIMIT_AS: settings.child_memory_bytes},
        )
    except TimeoutError:
        raise NonRetryable(
            f"training ran past its time limit of {settings.trainer_timeout_s:.0f} s"
        ) from None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    await recorder.flush()
    if outcome.pruned_at is not None:
        return outcome
    if code == 0 and (workdir / "model").is_dir():
        outcome.model_dir = workdir / "model"
        return outcome
    if code == EX_USAGE or error:
        raise NonRetryable(error[-1] if error else _tail(stderr))
    if code == EX_TEMPFAIL and relayed:
        raise JobInterrupted(ctx.job_id)  # stopped without a new checkpoint: the last stands
    raise RuntimeError(f"the trainer exited with code {code}: {_tail(stderr)}")


def _tail(stderr: bytes) -> str:
    text = stderr.decode(errors="replace").strip()
    return text[-500:] or "no message"
