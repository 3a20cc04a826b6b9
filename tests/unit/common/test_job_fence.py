"""The fence around a handler: once a run's lease may have lapsed, the handler is never
resumed; `LeaseLost` is thrown in at its next await instead."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from longhaul.jobs import LeaseLost
from longhaul.jobs.worker.keepalive import Run, fenced, start_fenced


def _run(lease_s: float) -> Run:
    return Run(
        job_id="job",
        message={},
        lease="lease",
        lease_until=time.monotonic() + lease_s,
        margin_s=0.0,
        received_at=time.monotonic(),
    )


async def test_a_handler_resumed_after_its_lease_lapsed_gets_lease_lost_not_its_next_line() -> None:
    run = _run(0.2)
    lines: list[str] = []

    async def handler() -> str:
        lines.append("start")
        # A blocked loop (or a SIGSTOP) outlives the lease while the handler waits here.
        time.sleep(0.3)  # noqa: ASYNC251 (the point: the loop itself stalls)
        await asyncio.sleep(0)
        lines.append("after the lease")
        return "done"

    with pytest.raises(LeaseLost):
        await fenced(handler(), run)
    assert lines == ["start"]


async def test_a_handler_within_its_lease_runs_to_its_result_and_sees_its_exceptions() -> None:
    run = _run(30)

    async def handler() -> int:
        total = 0
        for step in range(5):
            await asyncio.sleep(0.01)
            total += step
        try:
            await asyncio.sleep(0)
            raise ValueError("its own")
        except ValueError:
            total += 100
        return total

    assert await fenced(handler(), run) == 110


async def test_a_renewed_lease_keeps_the_handler_running_past_the_first_deadline() -> None:
    run = _run(0.1)

    async def renew() -> None:
        for _ in range(6):
            await asyncio.sleep(0.05)
            run.lease_until = time.monotonic() + 0.1

    async def handler() -> str:
        await asyncio.sleep(0.25)
        return "done"

    renewing = asyncio.create_task(renew())
    assert await fenced(handler(), run) == "done"
    await renewing


async def test_cancelling_a_fenced_handler_reaches_the_handler() -> None:
    run = _run(30)
    cleaned: list[str] = []

    async def handler() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("finally")

    task = asyncio.create_task(fenced(handler(), run))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally"]


async def test_a_run_cancelled_before_it_starts_leaves_no_handler_unawaited() -> None:
    """A lease that lapses (or a shutdown) while the run's task has not taken its first
    step: the handler never starts, and its coroutine is closed rather than left for the
    garbage collector to warn about ("coroutine ... was never awaited", an error here)."""
    run = _run(30)
    started: list[str] = []

    async def handler() -> None:
        started.append("started")

    coro = handler()
    task = start_fenced(coro, run)
    task.cancel()  # before the loop ran it once
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the done callbacks run
    assert started == []
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED


async def test_a_started_run_runs_its_handler_to_its_result() -> None:
    async def handler() -> int:
        await asyncio.sleep(0)
        return 7

    assert await start_fenced(handler(), _run(30)) == 7
