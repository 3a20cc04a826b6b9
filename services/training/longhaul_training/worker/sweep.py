"""The sweep job and its trials.

A `sweep` asks its strategy for trial parameters in the parent (worker/search.py), spawns
each trial as a `sweep-trial` child job (key `trial-<n>`: a resumed parent gets the same
child back), at most `parallel` at once, and parks while they run. Each check records the
trials that ended (their value and curve), tells the strategy, and spawns more until the
budget (trials, wall time) is spent; then it promotes the best trial's model into the
owner's registry. A trial is an ordinary job: leases, checkpoints and takeovers make a
trial whose worker died resume on another, never run twice at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from longhaul.jobs import Job, JobCancelled, JobContext, JobResources, JobState, NonRetryable
from longhaul.jobs.store import child_owner
from longhaul_training.models import (
    ChoiceParam,
    PrunePlan,
    SweepPayload,
    TrialPayload,
    maximized,
    spec_fields,
)
from longhaul_training.storage import (
    delete_prefix,
    model_prefix,
    new_id,
    owned_by,
    scratch,
    work_prefix,
)
from longhaul_training.worker._utils import (
    records_of,
    registered_dataset,
    resources_of,
    settings_of,
    without_paths,
)
from longhaul_training.worker.runner import MetricsRecorder, run_trainer
from longhaul_training.worker.search import ask, medians
from longhaul_training.worker.train import (
    check_spec,
    fetch_dataset,
    fill_card,
    register_model,
    upload_model,
)

__all__ = ["admit_sweep", "sweep", "sweep_ended", "sweep_trial", "trial_ended"]

DEFAULT_METRIC = {"classification": "logloss", "regression": "rmse"}
CURVE_POINTS = 1000  # a trial's curve kept in its result (its steps beyond are dropped)


def admit_sweep(payload: SweepPayload, owner: str) -> bool:
    """Whether the dataset is one `owner` may name."""
    return owned_by(payload.dataset, owner)


def metric_of(payload: SweepPayload) -> str:
    """The metric the sweep optimizes."""
    return payload.metric or DEFAULT_METRIC[payload.task]


def metric_value(metrics: dict[str, Any], metric: str) -> float | None:
    """`metric`'s value in a trainer's final metrics (flat, under "valid", or with a
    confidence interval as {"value": ...})."""
    for holder in (metrics, metrics.get("valid") if isinstance(metrics.get("valid"), dict) else {}):
        value = holder.get(metric) if isinstance(holder, dict) else None
        if isinstance(value, dict):
            value = value.get("value", value.get("mean"))
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


async def sweep(payload: SweepPayload, ctx: JobContext) -> dict[str, Any]:
    """One check of the sweep: record ended trials, spawn new ones, park or finish."""
    if not admit_sweep(payload, ctx.owner):
        raise NonRetryable(f"no dataset {payload.dataset} (not uploaded yet, or not yours)")
    resources = resources_of(ctx)
    settings = settings_of(resources)
    metric = metric_of(payload)
    maximize = maximized(metric)
    state: dict[str, Any] = dict(ctx.resume or {})
    if not state:
        records = await records_of(resources)
        record = await registered_dataset(records, ctx.owner, payload.dataset)
        sample = {
            k: (p.choices[0] if isinstance(p, ChoiceParam) else p.low)
            for k, p in payload.space.items()
        }
        check_spec(spec_fields(payload, {**payload.params, **sample}), record["info"])
        state = {"started_at": time.time(), "trials": []}
        await ctx.checkpoint(state)
    trials: list[dict[str, Any]] = state["trials"]
    children = {j.id: j for j in await ctx.jobs([t["child"] for t in trials if t.get("child")])}
    curves: list[dict[int, float]] = []
    for trial in trials:
        child = children.get(trial.get("child") or "")
        if child is None:
            continue
        if child.state is JobState.SUCCEEDED and child.result is not None:
            result = child.result
            trial["status"] = "pruned" if result.get("pruned") else "done"
            trial["value"] = None if result.get("pruned") else result.get("value")
            if not result.get("pruned"):
                curves.append({int(k): float(v) for k, v in (result.get("curve") or {}).items()})
        elif child.state is JobState.FAILED:
            trial["status"], trial["value"] = "failed", None
            trial["reason"] = without_paths(child.error or "no reason", settings)
        elif child.state is JobState.CANCELLED:
            trial["status"], trial["value"] = "cancelled", None
    over_time = time.time() - float(state["started_at"]) > payload.budget.wall_s
    live = [t for t in trials if t["status"] in ("asked", "running")]
    if over_time:
        for trial in live:  # the wall-time budget is spent: stop what still runs
            if trial.get("child"):
                await resources.store.cancel(trial["child"], child_owner(ctx.job_id))
    else:
        told = [t for t in trials if t["status"] == "done"]
        while len(live) < payload.parallel and len(trials) < payload.budget.trials:
            params = await asyncio.to_thread(
                ask, payload.strategy, payload.space, payload.seed, len(trials), told, maximize
            )
            if params is None:  # the grid is exhausted
                break
            trial = {"n": len(trials), "params": params, "status": "asked"}
            trials.append(trial)
            live.append(trial)
        if any(t["status"] == "asked" for t in trials):
            # What was asked is saved before it is spawned: a resumed parent spawns exactly
            # these (the same keys and payloads), whatever ended since.
            await ctx.checkpoint(state)
            plan = _prune_plan(payload, metric, maximize, curves)
            for trial in trials:
                if trial["status"] == "asked":
                    trial["child"] = await ctx.spawn(
                        "sweep-trial",
                        TrialPayload(
                            owner=ctx.owner,
                            dataset=payload.dataset,
                            trial=trial["n"],
                            spec=spec_fields(payload, {**payload.params, **trial["params"]}),
                            prune=plan,
                        ).model_dump(mode="json"),
                        key=f"trial-{trial['n']}",
                    )
                    trial["status"] = "running"
    live = [t for t in trials if t["status"] in ("asked", "running")]
    if live:
        done = sum(1 for t in trials if t["status"] not in ("asked", "running"))
        message = f"{done} of {payload.budget.trials} trials ended, {len(live)} running"
        await ctx.progress(0.95 * done / payload.budget.trials, message)
        await ctx.checkpoint(state)
        ctx.park(settings.sweep_poll_s, message)
    return await _promote(payload, ctx, resources, state, metric, maximize)


def _prune_plan(
    payload: SweepPayload, metric: str, maximize: bool, curves: list[dict[int, float]]
) -> PrunePlan | None:
    if not payload.pruning.enabled:
        return None
    bar = medians(curves, payload.pruning.min_trials)
    if not bar:
        return None
    return PrunePlan(
        metric=metric, maximize=maximize, warmup_steps=payload.pruning.warmup_steps, medians=bar
    )


async def _promote(
    payload: SweepPayload,
    ctx: JobContext,
    resources: JobResources,
    state: dict[str, Any],
    metric: str,
    maximize: bool,
) -> dict[str, Any]:
    """Copy the best trial's model into the registry, marked the sweep's best."""
    trials = state["trials"]
    scored = [t for t in trials if t["status"] == "done" and t.get("value") is not None]
    summary = [{k: t.get(k) for k in ("n", "params", "status", "value", "reason")} for t in trials]
    if not scored:
        raise NonRetryable(f"no trial of the sweep completed ({len(trials)} tried)")
    best = (max if maximize else min)(scored, key=lambda t: float(t["value"]))
    [child] = await ctx.jobs([best["child"]])
    result = child.result or {}
    s3 = await resources.aws.get("s3")
    bucket = str(resources.settings.bucket_name)
    model_id = new_id(ctx.owner, seed=ctx.job_id)
    prefix = model_prefix(ctx.owner, model_id)
    source = _trial_prefix(ctx.job_id, int(best["n"]))
    files: list[str] = list(result.get("files") or [])
    await asyncio.gather(
        *(
            s3.copy_object(
                Bucket=bucket,
                Key=prefix + name,
                CopySource={"Bucket": bucket, "Key": source + name},
            )
            for name in files
        )
    )
    records = await records_of(resources)
    await register_model(
        records,
        resources,
        owner=ctx.owner,
        model_id=model_id,
        job_id=ctx.job_id,
        dataset_id=payload.dataset,
        spec=spec_fields(payload, {**payload.params, **best["params"]}),
        card=result.get("card"),
        files=files,
        metrics=result.get("metrics") or {},
        extra={"sweep_id": ctx.job_id, "trial": best["n"], "best": True, "params": best["params"]},
    )
    return {
        "model_id": model_id,
        "metric": metric,
        "best_trial": best["n"],
        "best_value": best["value"],
        "best_params": best["params"],
        "trials": summary,
        "completed": len(scored),
        "pruned": sum(1 for t in trials if t["status"] == "pruned"),
    }


def _trial_prefix(sweep_id: str, n: int) -> str:
    return f"{work_prefix(sweep_id)}trials/{n}/"


async def sweep_trial(payload: TrialPayload, ctx: JobContext) -> dict[str, Any]:
    """Train one trial (resumable like any training), pruned early by the median rule;
    its model goes to the sweep's work prefix for the parent to promote."""
    if ctx.parent_id is None:
        raise NonRetryable("a trial runs only as a sweep's child job")
    [parent] = await ctx.jobs([ctx.parent_id])
    if parent.terminal:
        # Started between its sweep's end and that end cancelling its unfinished children:
        # cancelled like them, not a failure (no DLQ message, no failure alarm).
        ctx.log.info(
            "its sweep already ended: trial cancelled", extra={"parent_state": parent.state.value}
        )
        raise JobCancelled(ctx.job_id)
    resources = resources_of(ctx)
    settings = settings_of(resources)
    records = await records_of(resources)
    record = await registered_dataset(records, payload.owner, payload.dataset)
    metric = payload.spec.get("metric") or DEFAULT_METRIC[payload.spec["task"]]
    s3 = await resources.aws.get("s3")
    bucket = str(settings.bucket_name)
    recorder = MetricsRecorder(
        records, ctx.job_id, settings.metrics_batch_points, settings.metrics_batch_s
    )
    with scratch(settings.scratch_dir, f"trial-{ctx.job_id[:8]}-") as tmp:
        data, fmt = await fetch_dataset(s3, bucket, record, tmp)
        try:
            outcome = await run_trainer(
                ctx,
                settings,
                s3,
                bucket,
                spec=payload.spec,
                data=data,
                fmt=fmt,
                tmp=tmp,
                checkpoint_key=work_prefix(ctx.job_id) + "checkpoint.tar",
                recorder=recorder,
                prune=payload.prune,
                curve_metric=metric,
            )
        except (NonRetryable, RuntimeError) as exc:
            raise type(exc)(without_paths(str(exc), settings)) from None
        curve = {str(k): v for k, v in sorted(outcome.curve.items())[:CURVE_POINTS]}
        if outcome.pruned_at is not None:
            return {
                "trial": payload.trial,
                "pruned": True,
                "step": outcome.pruned_at,
                "value": outcome.pruned_value,
                "curve": curve,
            }
        assert outcome.model_dir is not None
        card = fill_card(outcome.model_dir, payload.dataset)
        files = await upload_model(
            s3, bucket, outcome.model_dir, _trial_prefix(ctx.parent_id, payload.trial)
        )
    value = metric_value(outcome.metrics, metric)
    if value is None and outcome.curve:
        value = outcome.curve[max(outcome.curve)]
    return {
        "trial": payload.trial,
        "pruned": False,
        "value": value,
        "metrics": outcome.metrics,
        "curve": curve,
        "files": files,
        "card": card,
    }


async def trial_ended(job: Job, resources: JobResources | None) -> None:
    """A trial's checkpoint goes once it ends (idempotent)."""
    if resources is not None and resources.settings.bucket_name:
        s3 = await resources.aws.get("s3")
        await delete_prefix(s3, resources.settings.bucket_name, work_prefix(job.id))


async def sweep_ended(job: Job, resources: JobResources | None) -> None:
    """A sweep's trial models go once it ends (the best was copied to the registry)."""
    await trial_ended(job, resources)
