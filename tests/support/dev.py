"""`longhaul dev` (what `make dev` runs) as a test starts it: a real process tree, every line
it prints kept, and the wait for what a test needs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.processes import kill_tree

ROOT = Path(__file__).resolve().parents[2]
LONGHAUL = [sys.executable, "-m", "longhaul.local.cli"]


class Runner:
    """The dev runner's process and every line it printed."""

    def __init__(self, moto_port: int) -> None:
        self.moto_port = moto_port
        self.endpoint = f"http://127.0.0.1:{moto_port}"
        self.lines: list[str] = []
        env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
        self.process = subprocess.Popen(
            [
                *LONGHAUL,
                "dev",
                "--service",
                "tests.support.echo.spec:SPEC",
                "--port",
                str(moto_port),
            ],
            cwd=ROOT,
            env={**env, "LONGHAUL_POLL_WAIT_S": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(self.lines[-40:]))

    def printed(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        """Ctrl-C the runner if it still runs (it stops what it started), then collect its
        output to the end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
        self._collect()

    def kill(self) -> None:
        """Kill the runner and what it started (moto, every service's roles), found before
        the kill, if it still runs: nothing is left holding the services' ports."""
        if self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait()
        self._collect()

    def _collect(self) -> None:
        self.reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
