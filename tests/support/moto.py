"""The local AWS emulator (moto inside longhaul.local.emulator) in a child process, on a
free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from longhaul.local.platform import MOTO_ENV
from tests.support.faults import Faults


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """Start, stop and restart the emulator on one port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.faults = Faults(self.endpoint)

    def start(self, timeout_s: float = 30) -> MotoServer:
        """Start the emulator and wait until it answers."""
        emulator = ["-m", "longhaul.local.emulator", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(
            [sys.executable, *emulator],
            env={**os.environ, **MOTO_ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):  # noqa: S310
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the emulator did not start")

    def stop(self) -> None:
        """Kill the emulator (moto's state and the fault rules go with it)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


# A table keyed by string PK and SK, on demand: `create_table(TableName=..., **PK_SK_TABLE)`.
PK_SK_TABLE: dict[str, Any] = {
    "KeySchema": [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ],
    "AttributeDefinitions": [
        {"AttributeName": "PK", "AttributeType": "S"},
        {"AttributeName": "SK", "AttributeType": "S"},
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
