"""The echo service's test job: it sleeps or burns CPU in a child, checkpoints after each
step, fails on demand, and records its side effects in $ECHO_EFFECTS_DIR/<job>.jsonl."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from longhaul.jobs import Job, JobContext, JobTypes, NonRetryable

jobs = JobTypes()


class WorkPayload(BaseModel):
    """What the test job does."""

    steps: int = Field(default=3, ge=1, le=1000)
    step_s: float = Field(default=0.2, ge=0, le=60)
    cpu_s: float = Field(default=0, ge=0, le=600, description="CPU burnt in a child per step")
    fail_first: int = Field(default=0, ge=0, description="fail this many attempts")
    fail_always: bool = False
    non_retryable: bool = False
    fail_while: str | None = Field(default=None, description="fail while this file exists")
    crash: bool = Field(default=False, description="SIGKILL the worker running it")
    result_kb: int = Field(default=0, ge=0, le=1024, description="pad the result to this size")
    result_tiny: bool = Field(default=False, description="return 1e-300, which AWS cannot store")


class Effects:
    """Side effects of one job, appended as JSON lines (O_APPEND: whole lines, any process)."""

    def __init__(self, job_id: str) -> None:
        root = os.environ.get("ECHO_EFFECTS_DIR")
        self.path = Path(root) / f"{job_id}.jsonl" if root else None
        self.steps = Path(root) / f"{job_id}.steps" if root else None

    def record(self, kind: str, **fields: Any) -> None:
        if self.path is None:
            return
        # `m` is CLOCK_MONOTONIC, one clock for every process on the machine: the run log's
        # order does not depend on the wall clock.
        record = {"kind": kind, "pid": os.getpid(), "t": time.time(), "m": time.monotonic()}
        line = json.dumps({**record, **fields}) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def once(self, name: str, kind: str, **fields: Any) -> None:
        """An effect made idempotent the way a real handler must (a run resumed after a kill
        may repeat the work since the last checkpoint): recorded as `kind` the first time,
        as `<kind>_again` after that."""
        if self.steps is None:
            return
        self.steps.mkdir(exist_ok=True)
        try:
            os.close(os.open(self.steps / name, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            self.record(kind, **fields)
        except FileExistsError:
            self.record(f"{kind}_again", **fields)

    def step(self, number: int) -> None:
        """A step's effect: once per step."""
        self.once(str(number), "step", step=number)


def burn(seconds: float) -> int:
    """Spin a CPU for `seconds` (runs in a child process)."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += 1
    return count


async def work_ended(job: Job, resources: Any) -> None:
    """The work job's end hook: recorded, so tests see that it ran (at least once)."""
    Effects(job.id).record("on_end", state=job.state.value)


@jobs.handler("work", payload=WorkPayload, max_attempts=3, on_end=work_ended)
async def work(payload: WorkPayload, ctx: JobContext) -> dict[str, Any]:
    """Run `steps` steps, checkpointing after each one."""
    effects = Effects(ctx.job_id)
    step = int((ctx.resume or {}).get("next", 0))
    effects.record("start", attempt=ctx.attempt, resume=step)
    if payload.crash:
        os.kill(os.getpid(), signal.SIGKILL)
    if payload.non_retryable:
        raise NonRetryable("asked to fail for good")
    blocked = payload.fail_while is not None and Path(payload.fail_while).exists()
    if payload.fail_always or blocked or ctx.attempt <= payload.fail_first:
        effects.record("fail", attempt=ctx.attempt)
        raise RuntimeError(f"asked to fail (attempt {ctx.attempt})")
    while step < payload.steps:
        if payload.cpu_s:
            await ctx.run_in_child(burn, payload.cpu_s)
        else:
            await asyncio.sleep(payload.step_s)
        effects.step(step)
        step += 1
        await ctx.checkpoint({"next": step})
        await ctx.progress(step / payload.steps, f"step {step} of {payload.steps}")
    effects.once("done", "done")
    if payload.result_tiny:
        return {"steps": payload.steps, "metrics": {"loss": 1e-300}}
    if payload.result_kb:
        return {"steps": payload.steps, "padding": "x" * payload.result_kb * 1024}
    return {"steps": payload.steps}


class FanoutPayload(BaseModel):
    """Spawn children, then check on them at least `min_checks` times, parking in between."""

    children: int = Field(default=3, ge=0, le=50)
    min_checks: int = Field(default=1, ge=1, le=1000)
    child_s: float = Field(default=0, ge=0, le=60, description="how long each child works")
    park_s: int = Field(default=0, ge=0, le=900, description="the wait between checks")


@jobs.handler("fanout", payload=FanoutPayload, max_attempts=3)
async def fanout(payload: FanoutPayload, ctx: JobContext) -> dict[str, object]:
    """A parent job: its children are `work` jobs any worker runs."""
    state = dict(ctx.resume or {})
    if "children" not in state:
        state["children"] = [
            await ctx.spawn("work", {"steps": 1, "step_s": payload.child_s}, key=f"child-{i}")
            for i in range(payload.children)
        ]
        state["checks"] = 0
    state["checks"] += 1
    await ctx.checkpoint(state)
    children = await ctx.jobs(state["children"])
    if state["checks"] < payload.min_checks or not all(c.terminal for c in children):
        ctx.park(payload.park_s, f"check {state['checks']}")
    return {"checks": state["checks"], "children": [c.state.value for c in children]}
