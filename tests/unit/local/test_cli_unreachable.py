"""Every local command says in one line, with status 3, that the platform is not running
when nothing answers at its endpoint: never a traceback (make token, make demo, make reset,
provision, flags, dlq, jobs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.moto import free_port

ROOT = Path(__file__).resolve().parents[3]
LONGHAUL = [sys.executable, "-m", "longhaul.local.cli"]

# One command per way of reaching the platform: the local clients (token; provision and
# demo go the same way), plain HTTP (reset), the service clients (dlq), the jobs API.
COMMANDS = [
    [*LONGHAUL, "token"],
    [*LONGHAUL, "reset"],
    [*LONGHAUL, "dlq", "list", "media"],
    [*LONGHAUL, "jobs", "list"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[2:4]))
def test_a_command_without_the_platform_says_so_in_one_line(argv: list[str]) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [*argv, "--endpoint", endpoint], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "not running" in lines[0]
    assert "make dev" in lines[0]
