"""One run's hold on its job: the local lease, the fence around the handler, and the
keepalive that renews the lease, keeps the message invisible and watches for a cancel.

The lease in the table is the truth; the local lease is this process's conservative copy of
it (measured from before each write that set it). A run stops itself `lease_margin_s`
before the local lease ends, whatever its calls to AWS are doing: every keepalive call is
bounded by the time left, and the handler is fenced, so once the lease may have lapsed it
is never resumed (a process stopped by SIGSTOP and continued later, or an event loop
blocked past the lease, throws `LeaseLost` into the handler at its next await instead of
running it beside the job's next owner).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from longhaul.jobs.context import JobContext
from longhaul.jobs.exceptions import LeaseLost
from longhaul.jobs.store import JobStore
from longhaul.jobs.worker.config import WorkerConfig
from longhaul.jobs.worker.messages import Messages, receive_count

__all__ = ["Run", "fenced", "keepalive", "start_fenced", "stop_run"]

log = logging.getLogger(__name__)

VISIBILITY_CAP_ERROR = "InvalidParameterValue"


@dataclass
class Run:
    """One run of one job in this process."""

    job_id: str
    message: dict[str, Any]
    lease: str  # this run's own lease token: fences even another run of this process
    lease_until: float  # monotonic: when the lease in the table may end, at the earliest
    margin_s: float
    received_at: float  # monotonic: when its message was received (SQS's visibility cap)
    receipt: str | None = None  # None once the run has handed its message on (see detach)
    ctx: JobContext | None = None
    task: asyncio.Task[Any] | None = None
    # Why the handler task was cancelled: cancel, shutdown, timeout, lease (taken by another
    # run), lapse (about to run out before a heartbeat renewed it).
    reason: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alive(self) -> bool:
        """Whether the lease certainly still holds (with the margin to spare)."""
        return time.monotonic() < self.lease_until - self.margin_s


class _Fence:
    """Drives a handler coroutine step by step, as a task would, and refuses to resume it
    once its run's lease may have lapsed: `LeaseLost` is thrown in instead."""

    def __init__(self, coro: Coroutine[Any, Any, Any], run: Run) -> None:
        self._coro = coro
        self._run = run

    def __await__(self) -> Generator[Any, None, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            if error is None and not self._run.alive:
                error = LeaseLost(self._run.job_id)
            try:
                yielded = self._coro.throw(error) if error is not None else self._coro.send(value)
            except StopIteration as stop:
                return stop.value
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # a cancel: hand it to the handler
                value, error = None, exc


async def fenced(coro: Coroutine[Any, Any, Any], run: Run) -> Any:
    """`coro`, fenced by `run`'s lease."""
    return await _Fence(coro, run)


def start_fenced(coro: Coroutine[Any, Any, Any], run: Run) -> asyncio.Task[Any]:
    """A task running `coro` fenced by `run`'s lease. A task cancelled before its first step
    (a lease that lapses, a shutdown, a cancel while it starts) never starts `coro`: it is
    closed then, so no handler coroutine is left un-awaited."""
    task = asyncio.create_task(fenced(coro, run))

    def close_if_never_started(_: asyncio.Task[Any]) -> None:
        if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
            coro.close()

    task.add_done_callback(close_if_never_started)
    return task


def stop_run(run: Run, reason: str) -> None:
    """Cancel the run's handler and kill its processes."""
    run.reason = run.reason or reason
    if run.ctx is not None:
        run.ctx.kill_children()
    if run.task is not None:
        run.task.cancel()


async def keepalive(run: Run, *, store: JobStore, messages: Messages, config: WorkerConfig) -> None:
    """Renew the lease, then the message's invisibility (best effort: the lease, not the
    message, fences the job), and watch for a cancel request, until the run ends. If the
    lease cannot be renewed in time, stop the run before it lapses."""
    interval = config.heartbeat_interval_s
    next_beat = time.monotonic() + interval
    while True:
        left = run.lease_until - run.margin_s - time.monotonic()
        if left <= 0:
            log.error("lease about to expire without a heartbeat; stopping the run")
            stop_run(run, "lapse")
            return
        await asyncio.sleep(min(config.cancel_poll_s, left))
        left = run.lease_until - run.margin_s - time.monotonic()
        if left <= 0:
            continue
        cancel, beat = False, False
        try:
            async with asyncio.timeout(left):  # a hung call must not outlive the lease
                if time.monotonic() >= next_beat:
                    beat_at = time.monotonic()
                    cancel = await store.heartbeat(run.job_id, run.lease, config.visibility_s)
                    run.lease_until = beat_at + config.visibility_s
                    next_beat = beat_at + interval
                    beat = True
                else:
                    cancel = await store.cancel_requested(run.job_id)
        except LeaseLost:
            log.warning("lease taken by another worker; stopping the run")
            stop_run(run, "lease")
            return
        except Exception as exc:  # TimeoutError included: the loop's head decides
            log.warning("heartbeat failed; trying again shortly: %s", exc)
            next_beat = time.monotonic()  # at the next tick, not a whole interval later
            continue
        if beat:
            await _extend_message(run, store=store, messages=messages, config=config)
        if cancel and run.ctx is not None and not run.ctx.cancelled:
            run.reason = "cancel"
            run.ctx.cancel()  # kills child processes at once
            if run.task is not None:
                run.task.cancel()


async def _extend_message(
    run: Run, *, store: JobStore, messages: Messages, config: WorkerConfig
) -> None:
    """Keep the run's message invisible for another lease; near SQS's 12-hour cap on a
    message's visibility, hand the job a fresh message instead (see `detach`)."""
    if run.receipt is None:
        return
    age = time.monotonic() - run.received_at
    if age + config.visibility_s * 2 >= config.visibility_cap_s:
        await detach(run, store=store, messages=messages, config=config)
        return
    try:
        async with asyncio.timeout(max(0.1, config.heartbeat_interval_s / 2)):
            await messages.hide(run.receipt, config.visibility_s)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == VISIBILITY_CAP_ERROR:
            await detach(run, store=store, messages=messages, config=config)
        else:
            log.warning("could not extend the message's visibility: %s", exc)
    except Exception as exc:  # a timeout, a dropped connection: the next beat tries again
        log.warning("could not extend the message's visibility: %s", exc)


async def detach(run: Run, *, store: JobStore, messages: Messages, config: WorkerConfig) -> None:
    """Give the running job a fresh message in place of the run's own, which can not be
    kept invisible any longer (SQS's cap) or has been received too often: the new message
    is recorded as the run's (so its receiver waits on the lease instead of dropping it as a
    duplicate), then the old one is deleted. The job keeps exactly one message, which comes
    back to take over if this worker dies."""
    if run.receipt is None:
        return
    try:
        new = await messages.send(run.job_id, delay_s=config.visibility_s)
        await store.adopt_message(run.job_id, run.lease, new)
        await messages.delete(run.receipt)
    except LeaseLost:
        return  # the keepalive's next beat stops the run
    except Exception as exc:
        log.warning("could not hand the job a fresh message: %s", exc)
        return
    log.info(
        "the job's message was replaced by a fresh one (%s receives)", receive_count(run.message)
    )
    run.receipt = None
