"""`longhaul dev` (what `make dev` runs) as a user meets it: a real process tree, real HTTP,
a real token, and Ctrl-C that leaves nothing behind. The runner is shared: the tests that
leave it running (test_smoke) run on it first, and this one ends it (tests/e2e/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from longhaul_media.spec import SPEC as MEDIA
from tests.support.dev import LONGHAUL, ROOT, Runner
from tests.support.dev import answers as _answers
from tests.support.echo.spec import SPEC as ECHO


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.e2e
@pytest.mark.timeout(300)
@pytest.mark.xdist_group("dev-runner")  # the services' fixed ports: one runner at a time
def test_dev_runs_the_platform_and_ctrl_c_stops_everything(runner: Runner) -> None:
    runner.wait_for(lambda: runner.printed("press Ctrl-C to stop everything"), "the banner")
    api, worker = f"http://127.0.0.1:{ECHO.port}", f"http://127.0.0.1:{ECHO.worker_port}"
    for expected in (runner.endpoint, f"{api}/docs", f"{worker}/healthz", "make token"):
        assert runner.printed(expected), f"the banner names {expected}"
    runner.wait_for(lambda: _answers(f"{api}/readyz") and _answers(f"{worker}/readyz"), "readiness")

    token = subprocess.run(
        [*LONGHAUL, "token", "--endpoint", runner.endpoint],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    correlation = "e2e-" + uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": correlation}
    assert httpx.get(f"{api}/me", headers=headers).json()["username"] == "dev"
    posted = httpx.post(f"{api}/messages", json={"text": "over the bus"}, headers=headers)
    assert posted.status_code == 202

    def consumed() -> bool:  # the runner may have served other tests' events before
        return any(
            json.loads(line.split("|", 1)[1])["correlation_id"] == correlation
            for line in list(runner.lines)
            if line.lstrip().startswith("echo/worker |") and "echo received" in line
        )

    runner.wait_for(consumed, "the worker to log the event with the request's correlation id")
    assert any(line.lstrip().startswith("echo/api |") for line in runner.lines), "prefixed logs"

    # Services under services/ are picked up with no change anywhere: the media service
    # runs too, and its demo (what `make demo` runs) goes through the whole flow on it.
    media = f"http://127.0.0.1:{MEDIA.port}"
    assert runner.printed(f"{media}/docs")
    runner.wait_for(lambda: _answers(f"{media}/readyz"), "the media API")
    demo_argv = [sys.executable, "-m", "longhaul_media.demo", "--endpoint", runner.endpoint]
    demo = subprocess.run(
        [*demo_argv, "--size", "640x360", "--seconds", "3", "--timeout", "120"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "master.m3u8" in demo.stdout
    assert f"{media}/jobs/" in demo.stdout
    assert "/hls/master.m3u8" in demo.stdout

    runner.process.send_signal(signal.SIGINT)
    assert runner.process.wait(timeout=60) == 0
    assert runner.printed("stopped everything")
    assert not _answers(f"{api}/healthz")
    assert not _answers(f"{runner.endpoint}/moto-api/")
    assert (
        _processes_mentioning(
            str(runner.moto_port), "tests.support.echo --role", "longhaul_media --role"
        )
        == []
    )
