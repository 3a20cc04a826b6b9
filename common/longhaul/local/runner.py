"""`make dev`: moto, the provisioner and every service's roles as child processes, with
their logs in one terminal, until Ctrl-C; then everything it started is stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import TextIO

import httpx

from longhaul.local import platform
from longhaul.local.provision import provision
from longhaul.spec import ServiceSpec

__all__ = ["DevRunner"]

STOP_GRACE_S = 15.0
PIPE_LIMIT = 1024 * 1024  # longest log line read whole


@dataclass
class _Child:
    name: str
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]


class DevRunner:
    """Runs the local platform in the foreground."""

    def __init__(
        self,
        specs: list[ServiceSpec],
        *,
        env: str = platform.DEFAULT_ENV,
        region: str = platform.DEFAULT_REGION,
        port: int = platform.MOTO_PORT,
        host: str = "127.0.0.1",
        out: TextIO = sys.stdout,
    ) -> None:
        self.specs = specs
        self.env = env
        self.region = region
        self.host = host
        self.endpoint = f"http://{host}:{port}"
        self.port = port
        self.out = out
        self.children: list[_Child] = []
        self._stop = asyncio.Event()

    def say(self, line: str) -> None:
        """A line of the runner's own, prefixed like every child's."""
        print(f"{'runner':>16} | {line}", file=self.out, flush=True)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line over the buffer limit: pass on what is buffered
                line = await stream.read(PIPE_LIMIT)
            if not line:
                return
            text = line.decode(errors="replace").rstrip()
            print(f"{name:>16} | {text}", file=self.out, flush=True)

    async def _start(self, name: str, argv: list[str], env: dict[str, str]) -> _Child:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=PIPE_LIMIT,
            start_new_session=True,  # its own process group, so its children stop with it
        )
        assert process.stdout is not None
        child = _Child(name, process, asyncio.create_task(self._pump(name, process.stdout)))
        self.children.append(child)
        return child

    async def _wait_for_moto(self, moto: _Child, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1) as http:
            while time.monotonic() < deadline:
                if moto.process.returncode is not None:
                    raise RuntimeError(
                        f"moto exited with {moto.process.returncode}; is port {self.port} free?"
                    )
                try:
                    if (await http.get(f"{self.endpoint}/moto-api/")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"moto did not answer on {self.endpoint} within {timeout_s:.0f}s")

    async def run(self) -> int:
        """Start everything, wait for Ctrl-C or SIGTERM, stop everything; the exit status."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop.set)
        base = {**os.environ, **platform.DUMMY_CREDENTIALS, "PYTHONUNBUFFERED": "1"}
        try:
            _require_free_port(self.host, self.port)
            # moto, inside the emulator that makes it atomic (docs/local-platform.md)
            emulator = ["-m", "longhaul.local.emulator", "-H", self.host, "-p", str(self.port)]
            moto = await self._start(
                "moto", [sys.executable, *emulator], {**base, **platform.MOTO_ENV}
            )
            await self._wait_for_moto(moto)
            aws = platform.local_clients(self.endpoint, self.region)
            try:
                report = await provision(aws, self.specs, env=self.env, region=self.region)
            finally:
                await aws.close()
            assert report.auth is not None
            self.say(f"provisioned {len(report.actions)} resources ({len(report.created)} new)")
            for spec in self.specs:
                for role in ("api", "worker"):
                    variables = platform.role_environment(
                        spec,
                        role,
                        env=self.env,
                        region=self.region,
                        endpoint=self.endpoint,
                        auth=report.auth,
                        host=self.host,
                    )
                    await self._start(
                        f"{spec.name}/{role}",
                        [sys.executable, "-m", spec.package, "--role", role],
                        {**base, **variables},
                    )
            self._banner()
            await self._stop.wait()
            return 0
        except RuntimeError as exc:
            self.say(f"error: {exc}")
            return 1
        finally:
            await self.shutdown()

    def _banner(self) -> None:
        self.say("the local platform is up")
        self.say(f"  AWS endpoint  {self.endpoint}   (AWS_ENDPOINT_URL)")
        if not self.specs:
            self.say("  no services yet: add one under services/ and run `make dev` again")
        for spec in self.specs:
            self.say(f"  {spec.name:<12}  api http://{self.host}:{spec.port}/docs")
            self.say(f"  {'':<12}  worker http://{self.host}:{spec.worker_port}/healthz")
        self.say("  token         make token   (or: .venv/bin/longhaul token)")
        self.say("  reset state   make reset")
        self.say("press Ctrl-C to stop everything")

    async def shutdown(self) -> None:
        """SIGTERM each process group, services before moto; SIGKILL what outlives the grace."""
        services = [c for c in self.children if c.name != "moto"]
        for group in (services, [c for c in self.children if c.name == "moto"]):
            for child in group:
                _signal_group(child.process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for child in group:
                try:
                    await asyncio.wait_for(
                        child.process.wait(), max(0.1, deadline - time.monotonic())
                    )
                except TimeoutError:
                    self.say(f"{child.name} did not stop in {STOP_GRACE_S:.0f}s; killing it")
                _signal_group(child.process, signal.SIGKILL)  # stragglers of its group
                await child.process.wait()
                with contextlib.suppress(Exception):
                    await child.pump
        if self.children:
            self.say("stopped everything")
        self.children.clear()


def _require_free_port(host: str, port: int) -> None:
    """Fail before starting moto if something else already answers on its port."""
    with socket.socket() as sock:
        if sock.connect_ex((host, port)) == 0:
            raise RuntimeError(f"port {port} is in use (another moto or LocalStack?)")


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
