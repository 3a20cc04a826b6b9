"""`make dev` is dependable: it refuses to start when a port it needs is taken, says it is
up only once every service answers, and a runner killed with -9 leaves no service behind
holding a port (each child gets SIGTERM when the runner dies). On the running platform,
`longhaul jobs` submits, watches, lists, reads, cancels and reads the logs of jobs with
the dev token fetched for it, and says in one line when the platform is not there."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from longhaul.local.discovery import discover
from longhaul.local.runner import CONSOLE_PORT, log_file
from tests.support.dev import LONGHAUL, Runner, answers
from tests.support.moto import free_port

# The dev runner binds the services' fixed ports: one at a time, under pytest-xdist too.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dev-runner")]

ROOT = Path(__file__).resolve().parents[2]
ECHO = "tests.support.echo.spec:SPEC"


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
        # As servers bind: a runner stopped just before leaves the port in TIME_WAIT.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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


@pytest.fixture(scope="module")
def dev() -> Iterator[Runner]:
    """One `longhaul dev` for this module's tests; the last test kills it with -9."""
    runner = Runner(free_port())
    try:
        runner.wait_for(lambda: runner.printed("press Ctrl-C to stop everything"), "banner", 120)
        yield runner
    finally:
        runner.stop()


def jobs(dev: Runner, *args: str) -> subprocess.CompletedProcess[str]:
    """`longhaul jobs ARGS` against the running platform (the dev token fetched by it)."""
    return subprocess.run(
        [*LONGHAUL, "jobs", "--spec", ECHO, *args, "--endpoint", dev.endpoint],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )


def test_jobs_cli_submits_watches_lists_gets_cancels_and_reads_logs(dev: Runner) -> None:
    done = jobs(
        dev,
        "submit",
        "echo",
        "work",
        "--set",
        "steps=3",
        "--set",
        "step_s=0.3",
        "--watch",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["state"] == "succeeded"
    assert any(e["kind"] == "progress" for e in events)  # live progress, from the stream
    listed = jobs(dev, "list", "--service", "echo", "--json")
    assert listed.returncode == 0, listed.stderr
    ours = [j for j in json.loads(listed.stdout) if j["type"] == "work"]
    assert ours
    assert ours[0]["state"] == "succeeded"
    assert json.loads(jobs(dev, "list", "--type", "fanout", "--json").stdout) == []
    got = jobs(dev, "get", ours[0]["id"], "--json")
    assert json.loads(got.stdout)["result"] == {"steps": 3}
    assert json.loads(got.stdout)["service"] == "echo"  # found without --service
    logs = jobs(dev, "logs", ours[0]["id"], "--json")
    assert logs.returncode == 0, logs.stderr
    lines = [json.loads(line) for line in logs.stdout.splitlines()]
    assert any(line.get("job_id") == ours[0]["id"] for line in lines)  # the worker's
    assert all(ours[0]["id"] in json.dumps(line) for line in lines)

    long = jobs(
        dev, "submit", "echo", "work", "--set", "steps=200", "--set", "step_s=0.5", "--json"
    )
    long_id = json.loads(long.stdout)["id"]
    assert jobs(dev, "cancel", long_id, "--json").returncode == 0
    watched = jobs(dev, "watch", long_id)
    assert watched.returncode == 2, watched.stdout + watched.stderr  # cancelled

    missing = jobs(dev, "get", "0" * 32)
    assert missing.returncode == 4
    assert "404" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_jobs_cli_says_in_one_line_that_the_platform_is_not_running() -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    for args in (["list"], ["watch", "x"]):
        done = subprocess.run(
            [*LONGHAUL, "jobs", *args, "--endpoint", nothing],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode == 3, (args, done.stderr)
        assert done.stderr.strip().count("\n") == 0, done.stderr
        assert "is not running" in done.stderr
        assert "make dev" in done.stderr


def test_a_runner_killed_with_9_leaves_no_service_running(dev: Runner) -> None:
    runner = dev
    specs = discover()
    # The banner comes only once every role answers its health check.
    for spec in specs:
        assert answers(f"http://127.0.0.1:{spec.port}/healthz"), spec.name
        assert answers(f"http://127.0.0.1:{spec.worker_port}/healthz"), spec.name
    assert log_file("media/api", ROOT / ".longhaul/logs").stat().st_size > 0
    assert answers(f"http://127.0.0.1:{CONSOLE_PORT}/healthz"), "console"
    children = children_of(runner.process.pid)
    # moto, each service's two roles (the test spec's too), and the console
    assert len(children) == 1 + 2 * (len(specs) + 1) + 1
    os.kill(runner.process.pid, signal.SIGKILL)
    runner.process.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in children if alive(pid)] == []
    assert not answers(f"http://127.0.0.1:{CONSOLE_PORT}/healthz"), "console"
    for spec in specs:
        assert not answers(f"http://127.0.0.1:{spec.port}/healthz"), spec.name
