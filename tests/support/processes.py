"""Processes below a given one, read from /proc (Linux): what the suite uses to find and
kill what a test left running."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Proc", "descendants", "gone", "kill_tree", "reap"]


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it."""

    pid: int
    ppid: int
    state: str  # R, S, D, T... or Z: a zombie (exited, not yet reaped)

    def command(self) -> str:
        """Its command line, or "" once it is gone."""
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return ""
        return cmdline.replace(b"\0", b" ").decode(errors="replace").strip()


def _stat(pid: int) -> Proc | None:
    """`pid` as /proc shows it, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return Proc(pid, int(fields[1]), fields[0])


def _children(pid: int) -> list[int]:
    """`pid`'s children, from each of its threads' /proc children list (a few small reads,
    not a scan of every process on the machine)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _all_children() -> dict[int, list[int]]:
    """Each process's children, from a scan of every process (kernels without the lists)."""
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (proc := _stat(int(entry.name))) is not None:
            found.setdefault(proc.ppid, []).append(proc.pid)
    return found


def descendants(root: int | None = None) -> list[Proc]:
    """Every process below `root` (default: this one), children first."""
    me = os.getpid()
    if Path(f"/proc/{me}/task/{me}/children").exists():
        children = _children
    else:
        table = _all_children()
        children = lambda pid: table.get(pid, [])  # noqa: E731
    found: list[Proc] = []
    frontier = [me if root is None else root]
    while frontier:
        below = [proc for pid in frontier for child in children(pid) if (proc := _stat(child))]
        found += below
        frontier = [proc.pid for proc in below]
    return found


def reap(pid: int) -> bool:
    """Collect `pid`'s exit if it is a child of pytest that has ended (True: it had)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # not pytest's child, or already collected
        return False


def kill_tree(pid: int) -> list[Proc]:
    """SIGKILL `pid` and every process below it, found before the kill (after it, the
    orphans belong to whoever adopts them); wait up to 5 s for them to go, collecting
    those that are pytest's children. Returns what was below `pid`."""
    below = descendants(pid)
    for target in [pid, *(proc.pid for proc in below)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)
    gone([proc.pid for proc in below])
    return below


def gone(pids: list[int], timeout_s: float = 5) -> None:
    """Wait until each of `pids` has ended, collecting those that are this one's children."""
    deadline = time.monotonic() + timeout_s
    waiting = set(pids)
    while waiting and time.monotonic() < deadline:
        waiting = {pid for pid in waiting if Path(f"/proc/{pid}").exists() and not reap(pid)}
        if waiting:
            time.sleep(0.05)
