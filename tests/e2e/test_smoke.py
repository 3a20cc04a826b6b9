"""`longhaul smoke` with its local defaults passes against `longhaul dev` (what `make dev`
runs), through every check it makes after a deployment, and fails naming the check when the
token is not one the services accept. The runner is the one test_dev_runner's Ctrl-C test
then stops (tests/e2e/conftest.py): the platform starts once for both."""

from __future__ import annotations

import subprocess

import pytest

from longhaul.local.discovery import discover
from longhaul_media.spec import SPEC as MEDIA
from tests.support.dev import LONGHAUL, ROOT, Runner, answers
from tests.support.echo.spec import SPEC as ECHO

# The dev runner binds the services' fixed ports: one at a time, under pytest-xdist too.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240), pytest.mark.xdist_group("dev-runner")]


def smoke(runner: Runner, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*LONGHAUL, "smoke", "--endpoint", runner.endpoint, "--timeout", "60"]
    argv += ["--service", "tests.support.echo.spec:SPEC", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_smoke_passes_against_the_local_platform_and_names_what_fails(
    shared_runner: Runner,
) -> None:
    runner = shared_runner
    runner.wait_for(lambda: runner.printed("press Ctrl-C to stop everything"), "the banner")
    urls = [f"http://127.0.0.1:{p}/readyz" for s in (ECHO, MEDIA) for p in (s.port, s.worker_port)]
    runner.wait_for(lambda: all(answers(url) for url in urls), "every role's readiness")

    passed = smoke(runner)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    services = ["echo", *(s.name for s in discover())]  # every installed service, and echo
    for service in services:
        for check in ("GET /healthz", "GET /jobs without a token is refused", "GET /jobs as"):
            assert f"ok    {service:<12} {check}" in passed.stdout, passed.stdout
    assert "the upload's event starts a transcode" in passed.stdout
    assert f"smoke passed: {len(services)} service(s)" in passed.stdout

    refused = smoke(runner, "--token", "not-a-token", "--only", "echo")
    assert refused.returncode == 1
    assert "FAIL  echo         GET /jobs as the smoke user: GET /jobs answered 401" in (
        refused.stdout
    )
    assert "smoke FAILED for echo" in refused.stdout
