"""What a handler gets besides its payload: progress, checkpoints, cancellation, a logger
bound to the job, and child processes for CPU-heavy work that die with the job."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Any, NoReturn

from longhaul.jobs.exceptions import JobCancelled, JobInterrupted, JobParked
from longhaul.jobs.queue import enqueue
from longhaul.jobs.store import JobStore, child_owner, parent_of
from longhaul.jobs.submit import JobResources
from longhaul.jobs.types import Job
from longhaul.observability import context as log_context

__all__ = ["JobContext", "Rlimits"]

PROGRESS_EVERY_S = 0.5  # at most this often to the table; the last one always
STDERR_TAIL_BYTES = 16 * 1024  # what run_process keeps of a child's stderr
MAX_RESULT_BYTES = 256 * 1024 * 1024  # run_in_child's default bound on a pickled result
CHILD_POLL_S = 0.05  # how often run_in_child looks at its child

_spawn = multiprocessing.get_context("spawn")


Rlimits = Mapping[int, int]
"""Resource limits for a child: `resource.RLIMIT_*` to the soft and hard limit it gets
(CPU seconds, bytes of address space, bytes a file may grow to). Limits only come down:
one above the current hard limit is left at that."""


def _apply_rlimits(rlimits: Rlimits | None) -> None:
    for which, value in (rlimits or {}).items():
        _soft, hard = resource.getrlimit(which)
        bound = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (bound, bound))


def _child_main(
    conn: Connection,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    max_result_bytes: int,
    rlimits: Rlimits | None = None,
) -> None:
    # A session of its own: killing its process group kills whatever fn starts too.
    os.setsid()
    try:
        _apply_rlimits(rlimits)
        reply = ForkingPickler.dumps(("ok", fn(*args)))
        if len(reply) > max_result_bytes:
            reply = ForkingPickler.dumps(("error", _too_large(len(reply), max_result_bytes)))
    except BaseException as exc:
        reply = ForkingPickler.dumps(("error", f"{type(exc).__name__}: {exc}"))
    conn.send_bytes(reply)
    conn.close()


def _too_large(size: int, bound: int) -> str:
    return (
        f"its result pickles to {size} bytes, over run_in_child's bound of {bound} bytes "
        "(max_result_bytes): write a large result to a file and return the path"
    )


def _receive(conn: Connection) -> tuple[str, Any]:
    """Read and unpickle the child's reply (in a thread: it may be large); closes `conn`."""
    with conn:
        reply: tuple[str, Any] = conn.recv()
        return reply


def _kill_group(pid: int) -> None:
    """SIGKILL the process group that `pid` leads: a child started in a session of its own,
    and whatever it started, unless that made a session of its own."""
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen: a reply nobody waits for any more."""
    if not future.cancelled():
        future.exception()


async def _settle(future: asyncio.Future[Any]) -> None:
    """Wait for work in a thread to end, even through a cancel: a thread cannot be stopped,
    and what it holds must not be killed or closed under it."""
    while not future.done():
        with suppress(asyncio.CancelledError):
            await asyncio.wait({future})


class JobContext:
    """The running job's side of the runtime."""

    def __init__(
        self,
        *,
        job_id: str,
        attempt: int,
        worker: str,
        store: JobStore,
        resume: Any,
        log: logging.Logger,
        owner: str = "",
        resources: JobResources | None = None,
    ) -> None:
        self.job_id = job_id
        self.owner = owner
        self.resources = resources
        self.attempt = attempt
        self.resume = resume  # the last checkpoint, or None on a first run
        self.log = log
        self._worker = worker
        self._store = store
        self._cancelled = asyncio.Event()
        self._stopping = asyncio.Event()
        self._children: set[asyncio.subprocess.Process | BaseProcess] = set()
        self._last_progress = 0.0

    # -- progress and checkpoints -------------------------------------------------------

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress in [0, 1]; throttled, the last report of a burst always written."""
        self.raise_if_cancelled()
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        await self._store.progress(self.job_id, self._worker, max(0.0, min(1.0, fraction)), message)

    async def checkpoint(self, state: Any) -> None:
        """Save `state` (JSON); a resumed attempt gets it back as `ctx.resume`.

        When the worker is shutting down this is where the handler stops: the state is
        saved first, then `JobInterrupted` unwinds it and another worker resumes from here.
        """
        self.raise_if_cancelled()
        await self._store.checkpoint(self.job_id, self._worker, state)
        self.resume = state
        if self._stopping.is_set():
            raise JobInterrupted(self.job_id)

    # -- child jobs ---------------------------------------------------------------------

    @property
    def parent_id(self) -> str | None:
        """The id of the job that spawned this one, if it is a child job."""
        return parent_of(self.owner)

    async def spawn(self, job_type: str, payload: dict[str, Any], *, key: str) -> str:
        """Submit a child job (any worker may run it) and return its id.

        `key` names the child among its siblings: spawning the same key again, as a resumed
        parent does, returns the first child instead of making a second. A child written
        but not enqueued (a crash in between) is enqueued by the reconciler.
        """
        if self.resources is None:
            raise RuntimeError("this context was built without resources; cannot spawn")
        job, created = await self._store.submit(
            owner=child_owner(self.job_id),
            job_type=job_type,
            payload=payload,
            idempotency_key=key,
            correlation_id=log_context.correlation_id(),
        )
        if created:
            await enqueue(self.resources.sqs, self.resources.queue_url, job.id)
            await self._store.mark_enqueued(job.id)
        return job.id

    async def jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The current state of the given jobs (consistent reads), in the same order."""
        return list(await asyncio.gather(*(self._store.get(job_id) for job_id in job_ids)))

    def park(self, delay_s: int, message: str | None = None) -> NoReturn:
        """Stop here and run again from the last checkpoint in `delay_s` seconds, freeing
        the worker's slot meanwhile: how a parent waits for its children."""
        raise JobParked(self.job_id, delay_s, message)

    # -- cancellation and shutdown ------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Whether the owner asked the job to stop."""
        return self._cancelled.is_set()

    @property
    def stopping(self) -> bool:
        """Whether the worker is shutting down and wants a checkpoint."""
        return self._stopping.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `JobCancelled` if the owner asked the job to stop."""
        if self._cancelled.is_set():
            raise JobCancelled(self.job_id)

    def cancel(self) -> None:
        """Runtime side: the owner cancelled; kill the children at once."""
        self._cancelled.set()
        self.kill_children()

    def stop(self) -> None:
        """Runtime side: the worker is shutting down; ask for a checkpoint."""
        self._stopping.set()

    def kill_children(self) -> None:
        """SIGKILL every child process this job started, with its process group."""
        for child in list(self._children):
            if child.pid is None:  # not started yet; run_in_child kills it once it is
                continue
            _kill_group(child.pid)
            if isinstance(child, BaseProcess):
                child.kill()  # a run_in_child child that has not made its session yet

    # -- child processes ----------------------------------------------------------------

    async def run_in_child(
        self,
        fn: Callable[..., Any],
        *args: Any,
        max_result_bytes: int = MAX_RESULT_BYTES,
        timeout_s: float | None = None,
        rlimits: Rlimits | None = None,
    ) -> Any:
        """Run `fn(*args)` (importable, picklable) in a fresh child process and return its
        result. The event loop stays free, also while the arguments go over and the result
        comes back. The child runs in a session of its own: cancel, shutdown, `timeout_s`
        (TimeoutError) and the end of the call kill it with everything it started that
        stayed in its process group. `rlimits` bound it (a child over its CPU time dies, and
        the call raises). A result that pickles to more than `max_result_bytes` is refused
        with an error."""
        self.raise_if_cancelled()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        parent, child_end = _spawn.Pipe(duplex=False)
        process = _spawn.Process(
            target=_child_main,
            args=(child_end, fn, args, max_result_bytes, rlimits),
            daemon=True,
        )
        loop = asyncio.get_running_loop()
        self._children.add(process)
        # start() pickles fn and args and writes them to the child: large ones block it until
        # the child has started and reads them. Off the loop, then.
        starting = loop.run_in_executor(None, process.start)
        receiving: asyncio.Future[tuple[str, Any]] | None = None
        try:
            await asyncio.shield(starting)
            child_end.close()
            pid = process.pid
            assert pid is not None
            exited = False
            while receiving is None or not receiving.done():
                self.raise_if_cancelled()
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the child process ran past its {timeout_s:g} s")
                if receiving is None and parent.poll():  # its reply, or EOF if it died
                    receiving = loop.run_in_executor(None, _receive, parent)
                elif receiving is None and exited:
                    raise RuntimeError(f"child process died with exit code {process.exitcode}")
                if not exited and not process.is_alive():
                    exited = True
                    # What it started must not outlive it, nor hold the pipe open.
                    _kill_group(pid)
                    continue  # a reply it sent before it exited is still there to read
                if receiving is None:
                    await asyncio.sleep(CHILD_POLL_S)
                else:
                    await asyncio.wait({receiving}, timeout=CHILD_POLL_S)
            self.raise_if_cancelled()
            try:
                status, value = receiving.result()
            except (EOFError, OSError):  # it died before its reply was whole
                await asyncio.to_thread(process.join, 5)
                raise RuntimeError(
                    f"child process died with exit code {process.exitcode}"
                ) from None
        finally:
            self._children.discard(process)
            await _settle(starting)  # a start under way would leave a child no one kills
            if process.pid is not None:
                _kill_group(process.pid)
                process.kill()
            child_end.close()
            if receiving is None:
                parent.close()
            else:  # the receiving thread closes it as it ends
                receiving.add_done_callback(_retrieve)
            if process.pid is not None:
                await asyncio.to_thread(process.join, 5)
        if status == "error":
            raise RuntimeError(f"child process failed: {value}")
        return value

    async def run_process(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        on_stdout_line: Callable[[str], Awaitable[None]] | None = None,
        rlimits: Rlimits | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> tuple[int, bytes]:
        """Run a command (ffmpeg, a trainer) in its own process group; return its exit code
        and the tail of its stderr. With `on_stdout_line`, each stdout line is handed to it as
        it comes (ffmpeg's `-progress pipe:1`). Cancel, shutdown or the timeout kill the
        whole group; the end of the call kills what the command left running in it.
        `rlimits` bound the command (over its CPU time or file size the kernel kills it: a
        negative exit code, the signal's number). `on_start` is told the command's pid once
        it runs (a trainer relays the worker's shutdown to it as SIGTERM)."""
        self.raise_if_cancelled()
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if on_stdout_line else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=(lambda: _apply_rlimits(rlimits)) if rlimits else None,
        )
        self._children.add(process)
        if on_start is not None:
            on_start(process.pid)

        async def drain_stderr() -> bytes:
            assert process.stderr is not None
            tail = b""
            while chunk := await process.stderr.read(65536):
                tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
            return tail

        async def follow_stdout() -> None:
            assert process.stdout is not None
            assert on_stdout_line is not None
            async for line in process.stdout:
                await on_stdout_line(line.decode(errors="replace").rstrip("\n"))

        async def run() -> bytes:
            readers: list[Awaitable[Any]] = [drain_stderr()]
            if on_stdout_line:
                readers.append(follow_stdout())
            stderr, *_ = await asyncio.gather(*readers)
            await process.wait()
            return bytes(stderr)

        try:
            stderr = await asyncio.wait_for(run(), timeout_s)
        finally:
            self._children.discard(process)
            _kill_group(process.pid)  # it as it runs, or what it left running as it ended
            if process.returncode is None:
                await process.wait()
        self.raise_if_cancelled()
        return int(process.returncode or 0), stderr
