"""What `JobContext.run_in_child` runs in the tests: importable without the kit, so that a
spawned child starts in a moment."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024


def start_grandchild(pid_file: str, then: str) -> None:
    """Start `sleep 600`, write "<own pid> <its pid>" to `pid_file`, then wait, return or die."""
    grandchild = subprocess.Popen(["sleep", "600"])
    Path(pid_file + ".tmp").write_text(f"{os.getpid()} {grandchild.pid}")
    os.replace(pid_file + ".tmp", pid_file)  # a reader never sees half a file
    if then == "die":
        os._exit(3)
    if then == "wait":
        time.sleep(600)


def result_of(size: int) -> bytes:
    """`size` bytes."""
    return b"x" * size


TICKS = [0]  # bumped by a task on the parent's event loop
MARKS: dict[str, int] = {}  # the tick count when the parent unpickled each mark


def _mark(name: str) -> str:
    MARKS[name] = TICKS[0]
    return name


def _chunk(data: bytes) -> bytes:
    return data


class _Mark:
    """Pickles as a call of `_mark`: unpickling it in the parent records the tick count."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return _mark, (self.name,)


class _Chunk:
    """1 MiB that unpickles through a Python call, as rich results do (objects with Python
    constructors); pure C unpickling never lets another thread take the GIL."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Callable[[bytes], bytes], tuple[bytes]]:
        return _chunk, (self.data,)


def large_result(mib: int) -> list[object]:
    """`mib` chunks of 1 MiB (chunk i filled with i % 256) between a start and an end mark."""
    chunks = [_Chunk(bytes([i % 256]) * MIB) for i in range(mib)]
    return [_Mark("start"), *chunks, _Mark("end")]


def spin(seconds: float) -> str:
    """Burn CPU for `seconds` of wall time (a demuxer stuck in a loop)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


def allocate(size: int) -> int:
    """Allocate and touch `size` bytes (a decompression bomb's frames)."""
    return len(bytearray(size))
