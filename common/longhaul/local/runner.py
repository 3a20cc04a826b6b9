"""`make dev`: moto, the provisioner, every service's roles and the web console as child
processes, with their logs in one terminal (and each in .longhaul/logs/, where
`longhaul jobs logs` reads them), until Ctrl-C; then everything it started is stopped.

It refuses to start, with one line, when a port it needs is taken, says the platform is up
only once every service answers its health check, and stops everything, with a non-zero
status, when a service dies."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from longhaul.local import platform
from longhaul.local.provision import provision
from longhaul.spec import ServiceSpec

__all__ = ["CONSOLE_PORT", "LOG_DIR", "DevRunner", "PortTaken", "log_file", "required_ports"]

STOP_GRACE_S = 15.0
READY_TIMEOUT_S = 90.0
PIPE_LIMIT = 1024 * 1024  # longest log line read whole
LOG_DIR = Path(".longhaul/logs")
PR_SET_PDEATHSIG = 1  # linux/prctl.h
CONSOLE_PORT = 8100  # the web console (docs/console.md), below the services' 8110, 8120, ...


class PortTaken(RuntimeError):
    """A port the platform needs is held by another process."""


def log_file(name: str, root: Path = LOG_DIR) -> Path:
    """Where the runner writes child `name`'s output (`media/worker` -> media-worker.log)."""
    return root / f"{name.replace('/', '-')}.log"


def required_ports(
    specs: list[ServiceSpec], moto_port: int, console_port: int = CONSOLE_PORT
) -> list[tuple[int, str]]:
    """Every port `make dev` listens on, with what listens there."""
    ports = [(moto_port, "moto"), (console_port, "console")]
    for spec in specs:
        ports += [(spec.port, f"{spec.name} api"), (spec.worker_port, f"{spec.name} worker")]
    return ports


@dataclass
class _Child:
    name: str
    process: asyncio.subprocess.Process
    pump: asyncio.Task[None]
    health: str | None = field(default=None)  # the URL that answers 200 once it is ready


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
        log_dir: Path = LOG_DIR,
        console_port: int = CONSOLE_PORT,
    ) -> None:
        self.specs = specs
        self.console_port = console_port
        self.env = env
        self.region = region
        self.host = host
        self.endpoint = f"http://{host}:{port}"
        self.port = port
        self.out = out
        self.log_dir = log_dir
        self.children: list[_Child] = []
        self._stop = asyncio.Event()

    def say(self, line: str) -> None:
        """A line of the runner's own, prefixed like every child's."""
        print(f"{'runner':>16} | {line}", file=self.out, flush=True)

    async def _pump(self, name: str, stream: asyncio.StreamReader) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with log_file(name, self.log_dir).open("w", encoding="utf-8") as log:
            while True:
                try:
                    line = await stream.readline()
                except ValueError:  # a line over the buffer limit: pass on what is buffered
                    line = await stream.read(PIPE_LIMIT)
                if not line:
                    return
                text = line.decode(errors="replace").rstrip()
                print(f"{name:>16} | {text}", file=self.out, flush=True)
                print(text, file=log, flush=True)

    async def _start(
        self, name: str, argv: list[str], env: dict[str, str], health: str | None = None
    ) -> _Child:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=PIPE_LIMIT,
            start_new_session=True,  # its own process group, so its children stop with it
            preexec_fn=_die_with_parent,
        )
        assert process.stdout is not None
        pump = asyncio.create_task(self._pump(name, process.stdout))
        child = _Child(name, process, pump, health)
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
            _require_free_ports(self.host, required_ports(self.specs, self.port, self.console_port))
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
                    port = spec.port if role == "api" else spec.worker_port
                    await self._start(
                        f"{spec.name}/{role}",
                        [sys.executable, "-m", spec.package, "--role", role],
                        {**base, **variables},
                        health=f"http://{self.host}:{port}/healthz",
                    )
            await self._start_console(base)
            await self._wait_until_ready()
            self._banner()
            return await self._watch()
        except RuntimeError as exc:
            self.say(f"error: {exc}")
            return 1
        finally:
            await self.shutdown()

    async def _start_console(self, base: dict[str, str]) -> None:
        """The web console, forwarding /api/<service>/ to each service's API; under the dev
        runner only, it offers the dev user's token (docs/console.md)."""
        apis = {spec.name: f"http://{self.host}:{spec.port}" for spec in self.specs}
        await self._start(
            "console",
            [sys.executable, "-m", "longhaul.console", "--host", self.host],
            {
                **base,
                "LONGHAUL_PORT": str(self.console_port),
                "LONGHAUL_CONSOLE_SERVICES": json.dumps(apis),
                "LONGHAUL_CONSOLE_DEV_TOKEN": "1",
                "LONGHAUL_CONSOLE_MEDIA_ORIGINS": self.endpoint,  # moto's S3 (the HLS player)
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_REGION": self.region,
                "LONGHAUL_ENV": self.env,
            },
            health=f"http://{self.host}:{self.console_port}/healthz",
        )

    async def _wait_until_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Return once every service answers its health check; raise if one exits first
        or does not answer within `timeout_s` (a stop meanwhile returns at once)."""
        waiting = [c for c in self.children if c.health is not None]
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1) as http:
            while waiting and not self._stop.is_set():
                for child in list(waiting):
                    _raise_if_exited(child)
                    assert child.health is not None
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(child.health)).status_code == 200:
                            waiting.remove(child)
                if waiting and time.monotonic() > deadline:
                    names = ", ".join(c.name for c in waiting)
                    raise RuntimeError(f"{names} did not become healthy in {timeout_s:.0f}s")
                await asyncio.sleep(0.2)

    async def _watch(self) -> int:
        """Wait for Ctrl-C or SIGTERM (0), or for a child to exit on its own (1)."""
        stop = asyncio.create_task(self._stop.wait())
        exits = {asyncio.create_task(c.process.wait()): c for c in self.children}
        done, _ = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stop, *exits):
            task.cancel()
        if stop in done:
            return 0
        child = exits[next(t for t in done if t is not stop)]
        self.say(f"error: {child.name} exited with {child.process.returncode}; stopping")
        return 1

    def _banner(self) -> None:
        self.say("the local platform is up")
        self.say(f"  AWS endpoint  {self.endpoint}   (AWS_ENDPOINT_URL)")
        self.say(f"  console       http://{self.host}:{self.console_port}/   (your jobs, live)")
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


def _require_free_ports(host: str, ports: list[tuple[int, str]]) -> None:
    """Fail before starting anything if a port the platform needs is taken: bound the way
    uvicorn and moto bind (SO_REUSEADDR, so a closed socket's TIME_WAIT is no obstacle)."""
    for port, user in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                raise PortTaken(
                    f"port {port} ({user}) is taken by another process; stop it "
                    f"(`ss -ltnp 'sport = :{port}'` shows which) and run `make dev` again"
                ) from None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the runner dies, however it dies (a runner
    killed with -9 leaves no service behind holding its ports)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _raise_if_exited(child: _Child) -> None:
    if child.process.returncode is not None:
        raise RuntimeError(
            f"{child.name} exited with {child.process.returncode} before it was ready "
            f"(its log: {log_file(child.name)})"
        )


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
