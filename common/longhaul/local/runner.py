"""`make dev`: moto, the provisioner, every service's roles and the web console as child
processes, with their logs in one terminal (and each in .longhaul/logs/, where
`longhaul jobs logs` reads them), until Ctrl-C; then everything it started is stopped.

It refuses to start, with one line, when a port it needs is taken, says the platform is up
only once every service answers its health check, and stops everything, with a non-zero
status, when a service dies. With `reload`, it watches the services' and the kit's code
instead and restarts only what a change touches (longhaul.local.reloader); moto keeps
running, with its state, and a service that fails to start after a change is reported in
one line while the runner keeps watching. An error of the runner's own is one line too (its
traceback goes to .longhaul/logs/runner.log), and everything it started is stopped."""

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
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from longhaul.local import platform
from longhaul.local.provision import provision
from longhaul.local.reload import CONSOLE
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


@dataclass(eq=False)
class Child:
    """A process the runner started, with the tasks that read its output and await it."""

    name: str
    process: asyncio.subprocess.Process
    health: str | None = field(default=None)  # the URL that answers 200 once it is ready
    last_line: str = ""  # the last line it printed (why it exited, most often)
    pump: asyncio.Task[None] = field(init=False)
    exited: asyncio.Task[int] = field(init=False)

    @property
    def unit(self) -> str:
        """What restarts together: a service's roles (`media/api` -> `media`), the console."""
        return self.name.split("/", 1)[0]

    @property
    def said(self) -> str:
        """`: <its last line>`, the reason a child that exited gives most often."""
        return f": {self.last_line[-200:]}" if self.last_line else ""


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
        reload: bool = False,
    ) -> None:
        self.specs = specs
        self.reload = reload
        self.console_port = console_port
        self.env = env
        self.region = region
        self.host = host
        self.endpoint = f"http://{host}:{port}"
        self.port = port
        self.out = out
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.stopping = asyncio.Event()  # set by Ctrl-C or SIGTERM: everything stops
        self._base: dict[str, str] = {}  # the environment every child starts with
        self._auth: platform.LocalAuth | None = None

    def say(self, line: str) -> None:
        """A line of the runner's own, prefixed like every child's."""
        print(f"{'runner':>16} | {line}", file=self.out, flush=True)

    async def _pump(self, child: Child, stream: asyncio.StreamReader, mode: str) -> None:
        name = child.name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with log_file(name, self.log_dir).open(mode, encoding="utf-8") as log:
            while True:
                try:
                    line = await stream.readline()
                except ValueError:  # a line over the buffer limit: pass on what is buffered
                    line = await stream.read(PIPE_LIMIT)
                if not line:
                    return
                text = line.decode(errors="replace").rstrip()
                child.last_line = text.strip() or child.last_line
                print(f"{name:>16} | {text}", file=self.out, flush=True)
                print(text, file=log, flush=True)

    async def _start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        health: str | None = None,
        *,
        again: bool = False,
    ) -> Child:
        """Start child `name`; `again` (a restart) appends to its log instead of rewriting
        it, so `longhaul jobs logs` still finds the lines of jobs it ran before."""
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
        child = Child(name, process, health)
        child.pump = asyncio.create_task(self._pump(child, process.stdout, "a" if again else "w"))
        child.exited = asyncio.create_task(process.wait())
        self.children.append(child)
        return child

    async def _wait_for_moto(self, moto: Child, timeout_s: float = 30) -> None:
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
            loop.add_signal_handler(signum, self.stopping.set)
        base = {**os.environ, **platform.DUMMY_CREDENTIALS, "PYTHONUNBUFFERED": "1"}
        self._base = base
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
            self._auth = report.auth
            self.say(f"provisioned {len(report.actions)} resources ({len(report.created)} new)")
            for spec in self.specs:
                await self.start_service(spec)
            await self.start_console()
            await self.wait_until_ready()
            self._banner()
            if self.reload:
                from longhaul.local import reloader  # it imports this module's types

                return await reloader.serve(self)
            return await self._watch()
        except RuntimeError as exc:
            self.say(f"error: {exc}")
            return 1
        except Exception as exc:  # the runner's own failure: one line, not a traceback
            log = self._log_traceback()
            self.say(f"error: the runner failed: {exc!r} (traceback: {log}); stopping everything")
            return 1
        finally:
            await self.shutdown()

    async def start_service(self, spec: ServiceSpec, *, again: bool = False) -> list[Child]:
        """The service's api and worker, each with the environment compose gives it too."""
        assert self._auth is not None
        started = []
        for role in ("api", "worker"):
            variables = platform.role_environment(
                spec,
                role,
                env=self.env,
                region=self.region,
                endpoint=self.endpoint,
                auth=self._auth,
                host=self.host,
            )
            port = spec.port if role == "api" else spec.worker_port
            started.append(
                await self._start(
                    f"{spec.name}/{role}",
                    [sys.executable, "-m", spec.package, "--role", role],
                    {**self._base, **variables},
                    health=f"http://{self.host}:{port}/healthz",
                    again=again,
                )
            )
        return started

    async def start_console(self, *, again: bool = False) -> list[Child]:
        """The web console, forwarding /api/<service>/ to each service's API; under the dev
        runner only, it offers the dev user's token (docs/console.md)."""
        apis = {spec.name: f"http://{self.host}:{spec.port}" for spec in self.specs}
        base = self._base
        console = await self._start(
            CONSOLE,
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
            again=again,
        )
        return [console]

    async def wait_until_ready(
        self, children: list[Child] | None = None, timeout_s: float = READY_TIMEOUT_S
    ) -> None:
        """Return once every child (default: all) answers its health check; raise if one
        exits first or does not answer within `timeout_s` (a stop meanwhile returns at once)."""
        children = self.children if children is None else children
        waiting = [c for c in children if c.health is not None]
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1) as http:
            while waiting and not self.stopping.is_set():
                for child in list(waiting):
                    if child.process.returncode is not None:  # its last words first
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(child.pump), 1)
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
        stop = asyncio.create_task(self.stopping.wait())
        exits = {c.exited: c for c in self.children}
        done, _ = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if stop in done:
            return 0
        child = exits[next(t for t in done if t is not stop)]
        self.say(f"error: {child.name} exited with {child.process.returncode}; stopping")
        return 1

    def _log_traceback(self) -> Path:
        """Append the exception being handled, with its traceback, to the runner's log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = log_file("runner", self.log_dir)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} the runner failed\n")
            log.write(traceback.format_exc())
        return path

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
            await self.stop_children(group)
        if self.children:
            self.say("stopped everything")
        self.children.clear()

    async def stop_children(self, group: list[Child]) -> None:
        """SIGTERM each child's process group at once (a worker drains: it takes no new
        message and ends what it runs), wait for all of them, then SIGKILL what is left of
        each group; they stay in `children`, the caller decides."""
        for child in group:
            _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in group:
            try:
                await asyncio.wait_for(child.process.wait(), max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                self.say(f"{child.name} did not stop in {STOP_GRACE_S:.0f}s; killing it")
            _signal_group(child.process, signal.SIGKILL)  # stragglers of its group
            await child.process.wait()
            with contextlib.suppress(Exception):
                await child.pump


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


def _raise_if_exited(child: Child) -> None:
    if child.process.returncode is not None:
        raise RuntimeError(
            f"{child.name} exited with {child.process.returncode} before it was ready"
            f"{child.said} (its log: {log_file(child.name)})"
        )


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
