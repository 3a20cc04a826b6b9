"""`JobContext.run_in_child`, driven directly: what a cancel, a shutdown's kill and the end
of the call leave running, and whether the event loop runs while a large result comes back.

The children run functions of tests.support.children: a spawned child imports them."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import select
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from longhaul.jobs import JobCancelled, JobContext
from longhaul.jobs.store import JobStore
from tests.support.children import (
    MARKS,
    MIB,
    TICKS,
    allocate,
    large_result,
    result_of,
    spin,
    start_grandchild,
)

LARGE_RESULT_MIB = 160


def _context() -> JobContext:
    # run_in_child, cancel and kill_children never touch the store.
    return JobContext(
        job_id="job-1",
        attempt=1,
        worker="worker-1",
        store=JobStore(None, "unused"),
        resume=None,
        log=logging.getLogger("test_job_context"),
    )


# -- what the child started ------------------------------------------------------------


@asynccontextmanager
async def _grandchild_of(call: asyncio.Task[Any], pid_file: Path) -> AsyncIterator[int]:
    """A pidfd of the grandchild the call's child reports; SIGKILLs it on the way out, so a
    failing test leaves nothing behind."""
    while not pid_file.exists():
        assert not call.done(), f"the call ended before its child reported: {call.result()!r}"
        await asyncio.sleep(0.02)
    _, grandchild = (int(pid) for pid in pid_file.read_text().split())
    pidfd = os.pidfd_open(grandchild)  # `sleep 600` is alive: the pid is still its own
    try:
        yield pidfd
    finally:
        with suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        os.close(pidfd)


def _exited(pidfd: int) -> bool:
    """Whether the process has exited. A pidfd turns readable at its exit, zombie or not; the
    grace covers the signal's delivery, which kill() does not wait for."""
    readable, _, _ = select.select([pidfd], [], [], 10)
    return bool(readable)


async def test_cancel_kills_the_run_in_child_grandchild(tmp_path: Path) -> None:
    ctx = _context()
    pid_file = tmp_path / "pids"
    call = asyncio.create_task(ctx.run_in_child(start_grandchild, str(pid_file), "wait"))
    async with _grandchild_of(call, pid_file) as grandchild:
        ctx.cancel()
        with pytest.raises(JobCancelled):
            await call
        assert _exited(grandchild), "the child's own subprocess outlived the cancel"


async def test_kill_children_kills_the_run_in_child_grandchild(tmp_path: Path) -> None:
    ctx = _context()
    pid_file = tmp_path / "pids"
    call = asyncio.create_task(ctx.run_in_child(start_grandchild, str(pid_file), "wait"))
    async with _grandchild_of(call, pid_file) as grandchild:
        ctx.kill_children()  # what shutdown and a lost lease do
        with pytest.raises(RuntimeError, match="died"):
            await call
        assert _exited(grandchild), "the child's own subprocess outlived kill_children"


@pytest.mark.parametrize("then", ["return", "die"])
async def test_run_in_child_end_kills_what_the_child_left_running(
    tmp_path: Path, then: str
) -> None:
    pid_file = tmp_path / "pids"
    call = asyncio.create_task(_context().run_in_child(start_grandchild, str(pid_file), then))
    async with _grandchild_of(call, pid_file) as grandchild:
        if then == "die":
            with pytest.raises(RuntimeError, match="exit code 3"):
                await call
        else:
            assert await call is None
        assert _exited(grandchild), f"a child that chose to {then} left its subprocess running"


# -- a large result ---------------------------------------------------------------------


async def test_event_loop_keeps_running_while_a_large_result_is_unpickled() -> None:
    TICKS[0] = 0
    MARKS.clear()

    async def tick() -> None:
        while True:
            TICKS[0] += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        result = await _context().run_in_child(large_result, LARGE_RESULT_MIB)
    finally:
        ticker.cancel()
        with suppress(asyncio.CancelledError):
            await ticker
    assert result[0] == "start"
    assert result[-1] == "end"
    assert [(len(chunk), chunk[0]) for chunk in result[1:-1]] == [
        (MIB, i % 256) for i in range(LARGE_RESULT_MIB)
    ]
    assert MARKS.keys() == {"start", "end"}, "the parent unpickled both marks"
    ticks = MARKS["end"] - MARKS["start"]
    assert ticks > 0, f"the event loop ran {ticks} times while {LARGE_RESULT_MIB} MiB unpickled"


async def test_run_in_child_refuses_a_result_over_its_bound() -> None:
    ctx = _context()
    assert await ctx.run_in_child(result_of, 1000, max_result_bytes=64 * 1024) == b"x" * 1000
    with pytest.raises(RuntimeError, match=r"over run_in_child's bound of 65536 bytes"):
        await ctx.run_in_child(result_of, 100 * 1024, max_result_bytes=64 * 1024)


# -- bounds ------------------------------------------------------------------------------


async def test_run_in_child_past_its_timeout_is_killed_and_raises() -> None:
    """A child stuck in a loop (a demuxer that never ends) is bounded by the call's timeout:
    TimeoutError, and the child is gone."""
    ctx = _context()
    before = time.monotonic()
    with pytest.raises(TimeoutError):
        await ctx.run_in_child(spin, 60.0, timeout_s=3)
    assert time.monotonic() - before < 30, "the call waited for the child's loop"
    assert not ctx._children, "the killed child is still tracked"


async def test_run_in_child_over_its_cpu_time_dies_and_the_call_raises() -> None:
    ctx = _context()
    with pytest.raises(RuntimeError, match="died"):
        await ctx.run_in_child(spin, 60.0, rlimits={resource.RLIMIT_CPU: 1})


async def test_run_in_child_over_its_address_space_fails_and_the_caller_lives() -> None:
    """A child asked to allocate past its address-space bound fails (MemoryError in the
    child, reported as its error) instead of taking the worker's memory."""
    ctx = _context()
    with pytest.raises(RuntimeError, match="MemoryError"):
        await ctx.run_in_child(allocate, 2 * 1024 * MIB, rlimits={resource.RLIMIT_AS: 1024 * MIB})
    assert await ctx.run_in_child(allocate, MIB, rlimits={resource.RLIMIT_AS: 1024 * MIB}) == MIB


async def test_run_process_over_its_file_size_is_killed_by_the_kernel(tmp_path: Path) -> None:
    """A command writing past its file-size bound (ffmpeg padding a gap with hours of
    silence) is stopped by SIGXFSZ; the file stays at the bound."""
    ctx = _context()
    out = tmp_path / "big"
    code, _ = await ctx.run_process(
        ["dd", "if=/dev/zero", f"of={out}", "bs=1M", "count=64"],
        rlimits={resource.RLIMIT_FSIZE: 4 * MIB},
    )
    assert code == -signal.SIGXFSZ
    assert out.stat().st_size == 4 * MIB


async def test_run_process_tells_on_start_the_pid_so_a_signal_can_be_relayed() -> None:
    """`on_start` gets the running command's pid: a trainer asked to stop through it (the
    worker relaying its shutdown as SIGTERM) runs its own handler and exits as it chooses."""
    ctx = _context()
    started: list[int] = []

    async def on_line(line: str) -> None:
        if line == "ready":
            os.kill(started[0], signal.SIGTERM)

    script = "trap 'echo stopping; exit 75' TERM; echo ready; while :; do sleep 0.05; done"
    lines: list[str] = []

    async def follow(line: str) -> None:
        lines.append(line)
        await on_line(line)

    code, _ = await ctx.run_process(
        ["bash", "-c", script], on_stdout_line=follow, on_start=started.append, timeout_s=60
    )
    assert code == 75
    assert lines == ["ready", "stopping"]
    assert len(started) == 1
    assert started[0] > 0
