"""`longhaul dev --reload`'s loop: watch the code the platform runs and restart only the
units a change touches (the decision is longhaul.local.reload's `plan`).

A unit (a service's api and worker, or the console) runs whole or not at all: one that
fails to start after a change, or whose process exits on its own, is stopped whole and
reported in one line while the runner keeps watching; only moto exiting (its state gone)
ends everything. The runner (longhaul.local.runner) starts and stops the processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import Change, awatch

from longhaul.local.reload import CONSOLE, Reload, describe, plan, watch_roots

if TYPE_CHECKING:
    from longhaul.local.runner import Child, DevRunner

__all__ = ["RELOAD_MOST_MS", "RELOAD_QUIET_MS", "changed_paths", "collect_changes", "serve"]

# A burst of saves is one change once the files are quiet this long (at most 2 s).
RELOAD_QUIET_MS = 400
RELOAD_MOST_MS = 2000


def changed_paths(batch: Iterable[tuple[Change, str]]) -> set[Path]:
    """The paths of a batch of watchfiles' changes, whatever the change: a file added,
    modified or deleted each counts (a deleted module changes what the service runs)."""
    return {Path(path) for _, path in batch}


async def collect_changes(
    folders: list[Path], changes: asyncio.Queue[set[Path]], stop: asyncio.Event
) -> None:
    """Queue each burst of changed paths under `folders` (a burst ends once the files are
    quiet for RELOAD_QUIET_MS), until `stop` is set."""
    async for batch in awatch(
        *folders, stop_event=stop, step=RELOAD_QUIET_MS, debounce=RELOAD_MOST_MS
    ):
        changes.put_nowait(changed_paths(batch))


async def serve(runner: DevRunner) -> int:
    """Until Ctrl-C or SIGTERM (0): restart what each change touches. A child that exits on
    its own takes its unit down whole until a change restarts it; only moto exiting (its
    state gone) ends everything (1)."""
    roots = watch_roots(runner.specs)
    changes: asyncio.Queue[set[Path]] = asyncio.Queue()
    watcher = asyncio.create_task(collect_changes(roots.folders(), changes, runner.stopping))
    folders = describe(roots.folders(), Path.cwd(), most=len(roots.folders()))
    runner.say(f"reload: watching {folders}; a change restarts only what runs it")
    try:
        while True:
            stop = asyncio.create_task(runner.stopping.wait())
            change = asyncio.create_task(changes.get())
            exits = {c.exited: c for c in runner.children}
            waits = {stop, change, *exits, *(() if watcher.done() else (watcher,))}
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            change.cancel()
            if runner.stopping.is_set():
                return 0
            if watcher in done:
                failure = watcher.exception()
                runner.say(f"error: watching for changes failed ({failure!r}); reload is off")
            for task in done & exits.keys():
                child = exits[task]
                if child not in runner.children:  # its unit was stopped with a sibling's exit
                    continue
                if child.name == "moto":
                    runner.say(f"error: moto exited with {child.process.returncode}; stopping")
                    return 1
                await _take_down(runner, child)
            if change in done and not change.cancelled():
                changed = change.result()
                while not changes.empty():
                    changed |= changes.get_nowait()
                await _apply(runner, plan(changed, roots))
    finally:
        runner.stopping.set()  # ends the watcher
        with contextlib.suppress(Exception):
            await watcher


async def _take_down(runner: DevRunner, child: Child) -> None:
    """`child` exited on its own: stop the rest of its unit (a unit runs whole or not at
    all) and say so in one line."""
    siblings = [c for c in runner.children if c.unit == child.unit and c is not child]
    await runner.stop_children(siblings)
    for stopped in (child, *siblings):
        runner.children.remove(stopped)
    also = f" ({', '.join(c.name for c in siblings)} stopped too)" if siblings else ""
    runner.say(
        f"error: {child.name} exited with {child.process.returncode}{child.said}; "
        f"{child.unit} is down{also} until a change restarts it"
    )


async def _apply(runner: DevRunner, change: Reload) -> None:
    """Restart the units `change` names: stop all of them (gracefully: SIGTERM, the
    worker's drain), start them again, and say of each whether it is up or down."""
    here = Path.cwd()
    if change.emulator:
        runner.say(
            f"{describe(change.emulator, here)} changed: moto keeps running, with its "
            "state, the emulator it started with; restart `make dev` to run the change"
        )
    if change.runner:
        runner.say(
            f"{describe(change.runner, here)} changed: the dev runner keeps running the code "
            "it started with, and restarts nothing for it; restart `make dev` to run the change"
        )
    if not change.units:
        return
    units = ", ".join(change.units)
    runner.say(f"restarting {units}: {describe(change.because, here)} changed")
    old = [c for c in runner.children if c.unit in change.units]
    await runner.stop_children(old)
    for child in old:
        runner.children.remove(child)
    if runner.stopping.is_set():
        return
    started = {unit: await _start_unit(runner, unit) for unit in change.units}
    outcomes = await asyncio.gather(
        *(runner.wait_until_ready(children) for children in started.values()),
        return_exceptions=True,
    )
    for (unit, children), outcome in zip(started.items(), outcomes, strict=True):
        if isinstance(outcome, RuntimeError):
            await runner.stop_children(children)  # a unit runs whole or not at all
            for child in children:
                runner.children.remove(child)
            runner.say(f"error: {unit} is down: {outcome}; watching for the next change")
        elif isinstance(outcome, BaseException):
            raise outcome  # the runner's own failure: run() reports it and stops everything
        elif not runner.stopping.is_set():
            runner.say(f"{unit} is up again")


async def _start_unit(runner: DevRunner, unit: str) -> list[Child]:
    """Start a unit's children again, appending to their logs."""
    if unit == CONSOLE:
        return await runner.start_console(again=True)
    spec = next(spec for spec in runner.specs if spec.name == unit)
    return await runner.start_service(spec, again=True)
