"""Shared fixtures: a real moto server over HTTP, provisioned per test, and in-memory
OpenTelemetry exporters installed once for the whole run; and the guard that no test
leaves a process behind, even when it fails: at the end of the session every process
descended from pytest that is still alive is listed, killed, and fails the run."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from longhaul.aws.clients import AwsClients
from longhaul.local.platform import DUMMY_CREDENTIALS, LocalAuth
from longhaul.local.provision import provision
from longhaul.observability.logging import configure_logging
from tests.support.echo.spec import SPEC as ECHO
from tests.support.moto import MotoServer
from tests.support.processes import Proc, descendants, gone, reap

REGION = "us-east-1"

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(SPANS))
trace.set_tracer_provider(_provider)
metrics.set_meter_provider(MeterProvider(metric_readers=[METRICS]))

os.environ.update(DUMMY_CREDENTIALS)
os.environ["AWS_REGION"] = REGION
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)

# -- fixed ports, one test at a time ----------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `--dist loadgroup` (make test), pytest-xdist runs the tests of one
    `xdist_group` on one worker by adding `@<group>` to their node ids as it collects them.
    Should a pytest or xdist release stop that taking effect (pytest 9.2 with xdist 3.8
    did), tests that bind the platform's fixed ports would run at the same time and fail
    at random: stop the run here instead, with the reason."""
    if not (hasattr(config, "workerinput") and config.getvalue("loadgroup")):
        return
    lost = [
        item.nodeid
        for item in items
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid.rpartition("]")[2]
    ]
    if lost:
        raise pytest.UsageError(
            f"--dist loadgroup did not group {len(lost)} test(s) marked xdist_group "
            f"(first: {lost[0]}); this pytest and pytest-xdist do not work together"
        )


# -- no process left behind -------------------------------------------------------------

PR_SET_CHILD_SUBREAPER = 36
# Helpers of pytest's own interpreter that end with it, started by tests that use
# multiprocessing in-process: not a test's process.
OWN_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
# pid -> the test during which it was first seen (what to read first when one is left).
_SEEN: dict[int, str] = {}


def _adopt_orphans() -> None:
    """Make pytest a child subreaper (Linux): a process whose parent dies (the dev runner's
    services after the runner is killed, a worker's ffmpeg after a kill -9) is re-parented
    to pytest instead of init, so the guard still finds it."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


_adopt_orphans()


def _left_behind() -> list[Proc]:
    """Descendants still running: zombies are reaped, pytest's own helpers skipped."""
    alive = []
    for proc in descendants():
        if proc.state == "Z":
            reap(proc.pid)
        elif not any(helper in proc.command() for helper in OWN_HELPERS):
            alive.append(proc)
    return alive


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """No test leaves a process behind, even when it fails: set up before and torn down
    after every other session fixture, this lists each process still running below pytest
    once everything else has been torn down, kills it (SIGKILL) and fails the run with an
    error at the last test's teardown (under pytest-xdist, each worker checks its own)."""
    yield
    if sys.platform != "linux":
        return
    left = _left_behind()
    if not left:
        return
    lines = [f"{len(left)} process(es) left behind by the tests, killed now:"]
    for proc in left:
        seen = _SEEN.get(proc.pid, "none (started after the last test)")
        lines.append(
            f"  pid {proc.pid} (parent {proc.ppid}), first seen after the test {seen}: "
            f"{proc.command()[:300]}"
        )
    for proc in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    gone([proc.pid for proc in left])
    pytest.fail("\n".join(lines), pytrace=False)


@pytest.fixture(autouse=True)
def _note_new_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Remember the test after which each process below pytest was first seen."""
    yield
    if sys.platform == "linux":
        for proc in descendants():
            _SEEN.setdefault(proc.pid, request.node.nodeid)


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One moto server for the session; tests isolate themselves by environment name."""
    server = MotoServer().start()
    previous = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    yield server
    server.stop()
    if previous is None:
        os.environ.pop("AWS_ENDPOINT_URL", None)
    else:
        os.environ["AWS_ENDPOINT_URL"] = previous


@pytest.fixture
async def aws(moto: MotoServer) -> AsyncIterator[AwsClients]:
    """aioboto3 clients pointed at moto, as a service's would be."""
    clients = AwsClients(REGION)
    yield clients
    await clients.close()


@dataclass
class Platform:
    """A freshly provisioned environment on the shared moto server."""

    env: str
    auth: LocalAuth
    endpoint: str


async def new_platform(aws: AwsClients, endpoint: str) -> Platform:
    """The echo service's resources provisioned in a new environment of their own."""
    env = "t" + uuid.uuid4().hex[:8]
    report = await provision(aws, [ECHO], env=env, region=REGION)
    assert report.auth is not None
    return Platform(env=env, auth=report.auth, endpoint=endpoint)


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> Platform:
    """The echo service's resources in a new environment of their own."""
    return await new_platform(aws, moto.endpoint)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test."""
    SPANS.clear()
    yield SPANS
    SPANS.clear()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """The process's in-memory metric reader."""
    return METRICS


class LogCapture:
    """The JSON lines the kit's formatter writes during a test."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        """Everything written, as written."""
        return self.stream.getvalue()

    @property
    def records(self) -> list[dict[str, object]]:
        """Each line, parsed."""
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def json_logs() -> Iterator[LogCapture]:
    """Every log line, as a service configured by the kit writes it (at DEBUG)."""
    capture = LogCapture()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handler = configure_logging("echo", "test", "DEBUG", stream=capture.stream)
    yield capture
    root.removeHandler(handler)
    for previous in handlers:
        root.addHandler(previous)
    root.setLevel(level)
