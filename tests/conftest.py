"""Shared fixtures: a real moto server over HTTP, provisioned per test, and in-memory
OpenTelemetry exporters installed once for the whole run."""

from __future__ import annotations

import io
import json
import logging
import os
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


@pytest.fixture
async def platform(aws: AwsClients, moto: MotoServer) -> Platform:
    """The echo service's resources in a new environment of their own."""
    env = "t" + uuid.uuid4().hex[:8]
    report = await provision(aws, [ECHO], env=env, region=REGION)
    assert report.auth is not None
    return Platform(env=env, auth=report.auth, endpoint=moto.endpoint)


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
