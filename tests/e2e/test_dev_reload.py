"""`longhaul dev --reload` as a developer meets it: saving a service's code restarts only that
service's api and worker, while moto (and what it holds) and every other process keep
running; a broken save leaves the runner watching with one line that says why, and the next
save brings the service back; a role that dies takes its whole service down, said in one
line, until a save brings it back; a save to the runner's own code restarts nothing and
says to restart `make dev`; a change to the kit restarts every service and the console,
never moto; an error of the runner's own is one line, not a traceback, and stops
everything. Two copies of the echo test service and a copy of the kit, in a temporary
folder, are the code edited (the repository's own files are never touched); every port is
a free one, so this module runs beside the fixed-port dev runner tests."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from longhaul.local import platform
from longhaul.local.token import dev_token
from tests.support.dev import LONGHAUL, ROOT, Runner, answers
from tests.support.processes import descendants, gone

# One runner for the module's tests: on one xdist worker (its own group: the ports are free
# ones, so it need not wait for the fixed-port dev runner tests). Each test holds whatever
# ran before it on the runner; only the last, Ctrl-C, ends it.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("dev-reload")]

ECHO = ROOT / "tests/support/echo"
KIT = ROOT / "common/longhaul"
SERVICES = ("alpha", "beta")
VERSION_ROUTE = '''
@router.get("/version")
async def version() -> dict[str, int]:
    """Which save of the code answers."""
    return {{"version": {version}}}


SERVICE = Service('''


def _free_pair(taken: set[int]) -> int:
    """A port that is free with the one above it (a service's api and worker), below the
    ephemeral range: no client's connection takes it between this choice and the runner's
    bind, as one can take a port the kernel handed out as free."""
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    while True:
        port = random.randrange(20000, min(ephemeral, 32768) - 1)
        if {port, port + 1} & taken:
            continue
        try:
            for candidate in (port, port + 1):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        taken |= {port, port + 1}
        return port


def copy_echo(root: Path, name: str, port: int) -> Path:
    """The echo service as package `reload_<name>`, service `name`, on `port`."""
    package = root / f"reload_{name}"
    package.mkdir()
    for source in ECHO.glob("*.py"):
        text = source.read_text().replace("tests.support.echo", package.name)
        text = text.replace("echo", name).replace("port=18100", f"port={port}")
        (package / source.name).write_text(text)
    return package


class ReloadRunner(Runner):
    """`longhaul dev --reload` running only the copies, every port a free one."""

    def __init__(self, root: Path) -> None:
        taken: set[int] = set()
        self.moto_port = _free_pair(taken)
        self.console_port = _free_pair(taken)
        self.ports = {name: _free_pair(taken) for name in SERVICES}
        self.packages = {name: copy_echo(root, name, self.ports[name]) for name in SERVICES}
        # The kit, copied first on the path: the runner and every child import (and the
        # runner watches) the copy, which a test may edit.
        self.kit = root / "longhaul"
        shutil.copytree(KIT, self.kit, ignore=shutil.ignore_patterns("__pycache__"))
        self.endpoint = f"http://127.0.0.1:{self.moto_port}"
        self.effects = root / "effects"  # each job's side effects (tests/support/echo/jobs.py)
        self.effects.mkdir()
        self.lines: list[str] = []
        self.saves = 0
        self.saved: dict[str, int] = {}  # the version each service's last good save answers
        env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
        argv = [*LONGHAUL, "dev", "--reload", "--port", str(self.moto_port)]
        argv += ["--console-port", str(self.console_port)]
        for name in SERVICES:
            argv += ["--service", f"reload_{name}.spec:SPEC", "--only", name]
        self.process = subprocess.Popen(
            argv,
            cwd=root,
            env={
                **env,
                "PYTHONPATH": f"{root}:{ROOT}",
                "LONGHAUL_POLL_WAIT_S": "1",
                "ECHO_EFFECTS_DIR": str(self.effects),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def api(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def pids(self) -> dict[str, int]:
        """The runner's live children: `moto`, `console`, `alpha/api`, `beta/worker`..."""
        found = {}
        for proc in descendants(self.process.pid):
            command = proc.command()
            if proc.ppid != self.process.pid or proc.state == "Z":
                continue
            if "longhaul.local.emulator" in command:
                found["moto"] = proc.pid
            elif "longhaul.console" in command:
                found["console"] = proc.pid
            elif role := re.search(r"-m reload_(\w+) --role (\w+)", command):
                found[f"{role[1]}/{role[2]}"] = proc.pid
        return found

    def said(self, text: str) -> list[str]:
        """The runner's own lines (not its children's) that hold `text`."""
        return [
            line
            for line in list(self.lines)
            if line.lstrip().startswith("runner |") and text in line
        ]

    def count(self, text: str) -> int:
        return len(self.said(text))

    def save(self, name: str, *, broken: bool = False) -> int:
        """Save `name`'s service.py with a /version route answering a new version number
        (returned); `broken`: with a syntax error too."""
        self.saves += 1
        version = self.saves
        if not broken:
            self.saved[name] = version
        service = self.packages[name] / "service.py"
        original = (
            (ECHO / "service.py").read_text().replace("tests.support.echo", service.parent.name)
        )
        text = original.replace("echo", name).replace(
            "\n\nSERVICE = Service(", VERSION_ROUTE.format(version=version)
        )
        service.write_text(text + ("\ndef broken(:\n" if broken else ""))
        return version


def version(runner: ReloadRunner, name: str) -> int | None:
    try:
        answer = httpx.get(f"{runner.api(name)}/version", timeout=2)
    except httpx.HTTPError:
        return None
    return int(answer.json()["version"]) if answer.status_code == 200 else None


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReloadRunner]:
    runner = ReloadRunner(tmp_path_factory.mktemp("reload"))
    try:
        runner.wait_for(lambda: runner.printed("press Ctrl-C to stop everything"), "banner", 90)
        yield runner
    finally:
        runner.kill()


@pytest.fixture(scope="module")
def token(dev: ReloadRunner) -> str:
    """The dev user's access token (what `longhaul token` prints), fetched in-process."""

    async def fetch() -> str:
        aws = platform.local_clients(dev.endpoint, platform.DEFAULT_REGION)
        try:
            return await dev_token(aws, platform.DEFAULT_ENV)
        finally:
            await aws.close()

    return asyncio.run(fetch())


def test_saving_a_service_restarts_only_its_processes_and_keeps_moto_state(
    dev: ReloadRunner, token: str
) -> None:
    assert dev.printed("reload: watching")
    alpha = dev.api("alpha")
    headers = {"Authorization": f"Bearer {token}"}

    def submit(steps: int, step_s: float) -> str:
        body = {"type": "work", "payload": {"steps": steps, "step_s": step_s}}
        answer = httpx.post(f"{alpha}/jobs", json=body, headers=headers)
        assert answer.status_code == 202, answer.text
        return str(answer.json()["id"])

    def state(job_id: str) -> str:
        return str(httpx.get(f"{alpha}/jobs/{job_id}", headers=headers).json()["state"])

    running = submit(20, 0.25)  # still running when the change comes
    dev.wait_for(lambda: (dev.effects / f"{running}.steps").exists(), "the long job's first step")
    before = dev.pids()
    assert set(before) == {
        "moto",
        "console",
        "alpha/api",
        "alpha/worker",
        "beta/api",
        "beta/worker",
    }
    restarts = len(dev.said("restarting"))
    mark = len(dev.lines)
    saved = dev.save("alpha")
    dev.wait_for(lambda: dev.printed("alpha is up again"), "alpha to restart", 90)

    assert version(dev, "alpha") == saved  # the new code answers
    after = dev.pids()
    for replaced in ("alpha/api", "alpha/worker"):
        assert after[replaced] != before[replaced], replaced
    for kept in ("moto", "console", "beta/api", "beta/worker"):
        assert after[kept] == before[kept], kept
    gone([before["alpha/api"], before["alpha/worker"]])
    assert not any(Path(f"/proc/{before[role]}").exists() for role in ("alpha/api", "alpha/worker"))
    dev.wait_for(lambda: answers(f"{dev.api('beta')}/healthz"), "beta, never restarted, to answer")
    [restart] = dev.said("restarting")[restarts:]  # one save, one restart, of alpha only
    assert restart.endswith("restarting alpha: reload_alpha/service.py changed")
    # Gracefully: the old worker drained on SIGTERM (the running job checkpointed and was
    # handed back), nothing had to be killed, and the new worker resumed the job.
    assert not dev.printed("did not stop in")
    released = "job released for another worker to resume"
    assert any("alpha/worker |" in line and released in line for line in dev.lines[mark:])
    dev.wait_for(lambda: state(running) == "succeeded", "the job to finish on the new worker")
    lines = (dev.effects / f"{running}.jsonl").read_text().splitlines()
    effects = [json.loads(line) for line in lines]
    starts = [effect for effect in effects if effect["kind"] == "start"]
    assert starts[0]["pid"] == before["alpha/worker"]
    assert starts[-1]["pid"] == after["alpha/worker"]
    # moto kept its state: the new worker resumed the job from the checkpoint the old one
    # saved there, and the new API reads the job.
    assert starts[-1]["resume"] > 0
    assert [e["step"] for e in effects if e["kind"] == "step"] == list(range(20))  # none again
    # The worker's log still holds the old worker's lines (a restart appends to it).
    log = (dev.packages["alpha"].parent / ".longhaul/logs/alpha-worker.log").read_text()
    assert released in log
    assert running in log


def test_a_broken_save_leaves_the_runner_watching_and_the_next_save_brings_it_back(
    dev: ReloadRunner,
) -> None:
    errors, ups = dev.count("error:"), dev.count("alpha is up again")
    before = dev.pids()

    dev.save("alpha", broken=True)
    dev.wait_for(lambda: dev.count("error:") > errors, "the runner to report the broken save", 90)
    [reported] = dev.said("error:")[errors:]
    assert "error: alpha is down: alpha/" in reported
    assert "SyntaxError" in reported
    assert "watching for the next change" in reported
    assert dev.process.poll() is None  # the platform is still up
    assert dev.count("alpha is up again") == ups  # never said to be up while it is down
    assert not answers(f"{dev.api('alpha')}/healthz")
    now = dev.pids()
    assert "alpha/api" not in now
    assert "alpha/worker" not in now
    assert {role: now[role] for role in ("moto", "beta/api", "beta/worker")} == {
        role: before[role] for role in ("moto", "beta/api", "beta/worker")
    }
    dev.wait_for(lambda: answers(f"{dev.api('beta')}/healthz"), "beta, never restarted, to answer")

    fixed = dev.save("alpha")
    dev.wait_for(lambda: dev.count("alpha is up again") > ups, "alpha to come back", 90)
    assert version(dev, "alpha") == fixed
    assert dev.pids()["moto"] == before["moto"]
    assert dev.count("error:") == errors + 1


def test_a_role_that_dies_takes_its_whole_service_down_until_a_save(dev: ReloadRunner) -> None:
    errors, ups = dev.count("error:"), dev.count("alpha is up again")
    before = dev.pids()
    os.kill(before["alpha/api"], signal.SIGKILL)
    dev.wait_for(lambda: dev.count("error:") > errors, "the runner to report the exit", 60)
    [reported] = dev.said("error:")[errors:]
    assert "error: alpha/api exited with -9" in reported
    assert reported.endswith("alpha is down (alpha/worker stopped too) until a change restarts it")
    gone([before["alpha/worker"]])  # never half up: the worker is stopped too
    now = dev.pids()
    assert "alpha/api" not in now
    assert "alpha/worker" not in now
    assert {unit: now[unit] for unit in ("moto", "console", "beta/api", "beta/worker")} == {
        unit: before[unit] for unit in ("moto", "console", "beta/api", "beta/worker")
    }
    assert dev.process.poll() is None

    fixed = dev.save("alpha")
    dev.wait_for(lambda: dev.count("alpha is up again") > ups, "alpha to come back", 90)
    assert version(dev, "alpha") == fixed
    assert dev.count("error:") == errors + 1


def test_a_save_to_the_runners_own_code_restarts_nothing(dev: ReloadRunner) -> None:
    said, before, restarts = len(dev.said("changed:")), dev.pids(), dev.count("restarting")
    with (dev.kit / "local/runner.py").open("a") as module:
        module.write("\n# saved again\n")
    dev.wait_for(lambda: len(dev.said("changed:")) > said, "the runner to say it keeps its code")
    [line] = dev.said("changed:")[said:]
    assert line.endswith(
        "longhaul/local/runner.py changed: the dev runner keeps running the code it started "
        "with, and restarts nothing for it; restart `make dev` to run the change"
    )
    # An emulator save, which also restarts nothing, is said after any restart the first
    # save would have started: by its line, the runner's save has restarted nothing.
    with (dev.kit / "local/emulator/__init__.py").open("a") as module:
        module.write("\n# saved again\n")
    dev.wait_for(lambda: dev.printed("moto keeps running, with its state"), "the emulator line")
    assert dev.count("restarting") == restarts
    assert dev.pids() == before


def test_a_kit_change_restarts_every_service_and_the_console_but_not_moto(
    dev: ReloadRunner,
) -> None:
    ups = {unit: dev.count(f"{unit} is up again") for unit in ("alpha", "beta", "console")}
    before = dev.pids()
    with (dev.kit / "flags.py").open("a") as module:
        module.write("\n# saved again\n")
    dev.wait_for(
        lambda: all(dev.count(f"{unit} is up again") > n for unit, n in ups.items()),
        "every service and the console back",
        90,
    )
    assert dev.said("restarting")[-1].endswith(
        "restarting alpha, beta, console: longhaul/flags.py changed"
    )
    after = dev.pids()
    assert after["moto"] == before["moto"]
    for unit in ("alpha/api", "alpha/worker", "beta/api", "beta/worker", "console"):
        assert after[unit] != before[unit], unit
    assert version(dev, "alpha") == dev.saved.get("alpha")  # the code saved last
    assert answers(f"http://127.0.0.1:{dev.console_port}/healthz")


def test_a_console_change_restarts_only_the_console(dev: ReloadRunner) -> None:
    ups, before = dev.count("console is up again"), dev.pids()
    with (dev.kit / "console/app.py").open("a") as module:
        module.write("\n# saved again\n")
    (dev.kit / "console/static/console.css").write_text("/* read from disk */\n")  # nothing
    dev.wait_for(lambda: dev.count("console is up again") > ups, "the console back", 90)
    assert dev.said("restarting")[-1].endswith(
        "restarting console: longhaul/console/app.py changed"
    )
    after = dev.pids()
    assert after["console"] != before["console"]
    assert {unit: pid for unit, pid in after.items() if unit != "console"} == {
        unit: pid for unit, pid in before.items() if unit != "console"
    }


def test_ctrl_c_stops_everything_it_restarted_too(dev: ReloadRunner) -> None:
    started = list(dev.pids().values())
    dev.process.send_signal(signal.SIGINT)
    assert dev.process.wait(timeout=60) == 0
    assert dev.printed("stopped everything")
    gone(started)
    assert [pid for pid in started if Path(f"/proc/{pid}").exists()] == []
    assert not answers(f"{dev.endpoint}/moto-api/")


async def test_an_error_of_the_runners_own_is_one_line_and_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a RuntimeError the runner expects: a bug of its own, here in provisioning once
    moto runs. It prints one line naming the log with the traceback, stops moto, returns 1."""
    from longhaul.local import runner as runner_module

    async def broken(*_: object, **__: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(runner_module, "provision", broken)
    taken: set[int] = set()
    port = _free_pair(taken)
    out = tmp_path / "out.txt"
    with out.open("w") as printed:
        dev = runner_module.DevRunner(
            [],
            port=port,
            console_port=_free_pair(taken),
            out=printed,
            log_dir=tmp_path / "logs",
        )
        status = await dev.run()
    lines = out.read_text().splitlines()
    runner_lines = [line for line in lines if line.lstrip().startswith("runner |")]
    assert status == 1
    [error] = [line for line in runner_lines if "error:" in line]
    log = tmp_path / "logs/runner.log"
    assert error.endswith(
        f"error: the runner failed: KeyError('a bug') (traceback: {log}); stopping everything"
    )
    assert runner_lines[-1].endswith("stopped everything")
    assert not any("Traceback" in line for line in lines)
    assert "Traceback" in log.read_text()
    assert "KeyError: 'a bug'" in log.read_text()
    assert dev.children == []
    assert "moto" in out.read_text()  # it had started moto: this was a stop, not a refusal
    moto = f"longhaul.local.emulator -H 127.0.0.1 -p {port}"
    assert not [proc for proc in descendants() if moto in proc.command()]
