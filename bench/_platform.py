"""A moto server provisioned with the echo service, and process helpers, for benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from longhaul.aws.clients import AwsClients
from longhaul.local.platform import DUMMY_CREDENTIALS, LocalAuth
from longhaul.local.provision import provision
from tests.support.app import echo_environment
from tests.support.echo.spec import SPEC as ECHO
from tests.support.moto import MotoServer, free_port

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"


class Platform:
    """moto with the echo service provisioned in a fresh environment."""

    def __init__(self) -> None:
        os.environ.update(DUMMY_CREDENTIALS)
        self.moto = MotoServer().start()
        os.environ["AWS_ENDPOINT_URL"] = self.moto.endpoint
        self.env = "b" + uuid.uuid4().hex[:8]
        self.auth: LocalAuth | None = None

    async def provision(self) -> AwsClients:
        aws = AwsClients(REGION)
        report = await provision(aws, [ECHO], env=self.env, region=REGION)
        self.auth = report.auth
        return aws

    def environment(self, role: str, **extra: str) -> dict[str, str]:
        assert self.auth is not None
        return {
            **os.environ,
            **echo_environment(self.env, self.moto.endpoint, self.auth, role),
            **extra,
        }

    def close(self) -> None:
        self.moto.stop()


def serve(
    argv: list[str], env: dict[str, str], port: int, *, cpu: int | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process (pinned to one CPU when asked) and wait for its /healthz."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None and _has_taskset() else []
    process = subprocess.Popen(
        [*pin, *argv], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{argv} did not start")


def _has_taskset() -> bool:
    return subprocess.run(["which", "taskset"], capture_output=True).returncode == 0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) process `pid` has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def echo_argv(role: str, port: int) -> list[str]:
    return [sys.executable, "-m", "tests.support.echo", "--role", role, "--port", str(port)]


__all__ = ["ECHO", "Platform", "echo_argv", "free_port", "percentile", "serve"]
