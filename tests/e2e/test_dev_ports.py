"""`make dev` is dependable: it refuses to start when a port it needs is taken, says it is
up only once every service answers, and a runner killed with -9 leaves no service behind
holding a port (each child gets SIGTERM when the runner dies)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from longhaul.local.discovery import discover
from longhaul.local.runner import log_file
from tests.support.dev import Runner, answers
from tests.support.moto import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_taken_service_port_stops_dev_before_it_starts_anything() -> None:
    spec = next(s for s in discover() if s.name == "training")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", spec.port))
        holder.listen()
        runner = Runner(free_port())
        try:
            assert runner.process.wait(timeout=60) == 1
        finally:
            if runner.process.poll() is None:
                runner.process.kill()
        runner.reader.join(timeout=10)
        assert runner.process.stdout is not None
        runner.process.stdout.close()
    errors = [line for line in runner.lines if "error:" in line]
    assert len(errors) == 1, runner.lines
    assert f"port {spec.port} (training api) is taken" in errors[0]
    assert not any("the local platform is up" in line for line in runner.lines)
    assert not answers(f"{runner.endpoint}/moto-api/")  # moto was never started


def test_a_runner_killed_with_9_leaves_no_service_running(runner: Runner) -> None:
    runner.wait_for(lambda: runner.printed("press Ctrl-C to stop everything"), "the banner", 120)
    specs = discover()
    # The banner comes only once every role answers its health check.
    for spec in specs:
        assert answers(f"http://127.0.0.1:{spec.port}/healthz"), spec.name
        assert answers(f"http://127.0.0.1:{spec.worker_port}/healthz"), spec.name
    assert log_file("media/api", ROOT / ".longhaul/logs").stat().st_size > 0
    children = children_of(runner.process.pid)
    assert len(children) == 1 + 2 * (len(specs) + 1)  # moto, and each service's two roles
    os.kill(runner.process.pid, signal.SIGKILL)
    runner.process.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in children if alive(pid)] == []
    for spec in specs:
        assert not answers(f"http://127.0.0.1:{spec.port}/healthz"), spec.name
