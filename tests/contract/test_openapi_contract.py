"""Every service's API against its own OpenAPI document, by property-based testing.

Schemathesis generates requests from the document each service serves (valid ones, and
invalid ones: wrong types, missing fields, values out of range) and sends them to the
service's API running in-process, its lifespan and clients live, against the real moto
server. Most carry a valid bearer token so that they reach the handlers (and their
DynamoDB, SQS and S3 calls); every fifth carries the token schemathesis made up, or none,
so the 401 is checked as well.

What this proves, for each response: the service did not fail (no 5xx), its status is one
the document lists for the operation, its content type is the one documented for that
status, and its body matches the documented schema (problem+json for every error, 422
included); and a request the document says is invalid is refused, never answered 2xx.

`LONGHAUL_API_CASES` sets the cases per service (default 1000): the test fails unless at
least that many were sent. The cases are the same every run unless `LONGHAUL_API_EXPLORE=1`
asks for new ones.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from longhaul.aws.clients import AwsClients
from longhaul.config import KitSettings, load_settings
from tests.support.app import echo_environment, forge
from tests.support.moto import MotoServer

pytestmark = pytest.mark.integration

CASES = int(os.environ.get("LONGHAUL_API_CASES", "1000"))
# The same cases every run by default; LONGHAUL_API_EXPLORE=1 draws new ones each run.
EXPLORE = os.environ.get("LONGHAUL_API_EXPLORE", "") not in ("", "0")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Routes whose documented behaviour is a failure: the echo service's /boom is its 500.
EXCLUDED = {("echo", "GET", "/boom")}
EXAMPLES = 5  # cases drawn from each of the document's examples
ON_KNOWN_JOBS = 20  # cases of each operation on a job, on jobs the run submitted
CALL_TIMEOUT_S = 10  # an event stream is cut here, keeping the events it sent


@dataclass
class Run:
    """What one service's run sent and what came back."""

    service: str
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)  # jobs the run submitted


@contextmanager
def serving(app: FastAPI) -> Iterator[Any]:
    """`app`'s document loaded by schemathesis, which starts the app's lifespan in its own
    event loop; the lifespan ends with the block."""
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        asgi.shutdown_lifespans()


def exercise(service: str, schema: Any, token: str) -> Run:
    """Send at least CASES generated requests over every operation, both generation
    modes, and check each response against the document."""
    run = Run(service)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if (service, result.ok().method.upper(), result.ok().path) not in EXCLUDED
    ]
    strategies = [
        (op, mode)
        for op in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    ]
    # The document's own examples first (they reach the handlers' success paths), then
    # generated cases: an operation with few distinct inputs (no parameters at all) ends
    # early, and the rest share what it left over.
    for operation in operations:
        for strategy in operation.get_strategies_from_examples():
            _examples(run, operation, strategy, GenerationMode.POSITIVE, token, EXAMPLES)()
    remaining = CASES - run.sent
    for index, (operation, mode) in enumerate(strategies):
        budget = math.ceil(remaining / (len(strategies) - index))
        before = run.sent
        # Unsatisfiable: nothing invalid to send, for an operation without inputs.
        with contextlib.suppress(Unsatisfiable):
            strategy = operation.as_strategy(generation_mode=mode)
            _examples(run, operation, strategy, mode, token, budget)()
        remaining = max(0, remaining - (run.sent - before))
    # Then the operations on a job again, on jobs the run submitted (a generated id names
    # none): their answers for a real job (an event stream of a queued job would run to the
    # timeout, so it is left out).
    for operation in operations:
        if "{job_id}" not in operation.path or operation.path.endswith("/events"):
            continue
        if run.job_ids:
            known = st.sampled_from(run.job_ids).flatmap(_on_job(operation))
            _examples(run, operation, known, GenerationMode.POSITIVE, token, ON_KNOWN_JOBS)()
    return run


def _on_job(operation: Any) -> Callable[[str], Any]:
    def cases(job_id: str) -> Any:
        return operation.as_strategy(path_parameters={"job_id": job_id})

    return cases


def _examples(
    run: Run, operation: Any, strategy: Any, mode: GenerationMode, token: str, budget: int
) -> Callable[[], None]:
    @settings(
        max_examples=budget,
        deadline=None,
        database=None,
        derandomize=not EXPLORE,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        run.sent += 1
        if run.sent % 5:  # else the token schemathesis made up, or none
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        headers = dict(case.headers or {})
        response = case.call(timeout=CALL_TIMEOUT_S)
        run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
        submitted = (operation.method.upper(), operation.path, response.status_code)
        if submitted == ("POST", "/jobs", 202):
            run.job_ids.append(response.json()["id"])
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as exc:  # schemathesis's FailureGroup: what each check found
            label = f"{operation.method.upper()} {operation.path} ({mode.value})"
            run.failures.append(f"{label} -> {response.status_code}: {exc}")

    return check


def assert_conforms(run: Run) -> None:
    print(f"{run.service}: {run.sent} cases, statuses {dict(sorted(run.statuses.items()))}")
    assert run.sent >= CASES, f"{run.service}: only {run.sent} cases were sent"
    assert not run.failures, f"{run.service}: {len(run.failures)} failures:\n" + "\n\n".join(
        run.failures[:10]
    )
    assert any(200 <= status < 300 for status in run.statuses), run.statuses
    assert 401 in run.statuses, run.statuses


@dataclass
class Served:
    """A service's API as the dev runner would configure it: its environment and auth."""

    service: Any  # the service's ServiceDefinition
    settings: type[KitSettings]
    environment: dict[str, str]
    auth: Any

    def app(self) -> FastAPI:
        """The API app, configured from the environment (set it first)."""
        app: FastAPI = self.service.app("api", load_settings(self.settings))
        return app


async def _echo(aws: AwsClients, endpoint: str) -> Served:
    from tests.conftest import new_platform
    from tests.support.echo.service import SERVICE

    platform = await new_platform(aws, endpoint)
    variables = echo_environment(platform.env, platform.endpoint, platform.auth)
    return Served(SERVICE, KitSettings, variables, platform.auth)


async def _media(aws: AwsClients, endpoint: str) -> Served:
    from longhaul_media.config import MediaSettings
    from longhaul_media.service import SERVICE
    from tests.support.media import provision_media

    media = await provision_media(aws, endpoint)
    return Served(SERVICE, MediaSettings, media.environment("api"), media.auth)


async def _training(aws: AwsClients, endpoint: str) -> Served:
    from longhaul_training.config import TrainingSettings
    from longhaul_training.service import SERVICE
    from tests.support.training import provision_training

    training = await provision_training(aws, endpoint)
    return Served(SERVICE, TrainingSettings, training.environment("api"), training.auth)


async def _analytics(aws: AwsClients, endpoint: str) -> Served:
    from longhaul_analytics.config import AnalyticsSettings
    from longhaul_analytics.service import SERVICE
    from tests.integration.analytics.engine_support import provision_analytics

    analytics = await provision_analytics(aws, endpoint)
    # The closer is left out (it closes windows, no route's answer depends on it) and an
    # aggregates stream ends after a second.
    variables = analytics.environment(
        "api", ANALYTICS_CLOSER="false", ANALYTICS_STREAM_LIFETIME_S="1"
    )
    return Served(SERVICE, AnalyticsSettings, variables, analytics.auth)


SERVICES: dict[str, Callable[[AwsClients, str], Awaitable[Served]]] = {
    "echo": _echo,
    "media": _media,
    "training": _training,
    "analytics": _analytics,
}


@pytest.mark.parametrize("service", list(SERVICES))
async def test_service_conforms_to_its_document(
    service: str, aws: AwsClients, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = await SERVICES[service](aws, moto.endpoint)
    for key, value in served.environment.items():
        monkeypatch.setenv(key, value)
    with serving(served.app()) as schema:
        run = exercise(service, schema, forge(served.auth, sub="alice"))
    assert_conforms(run)
