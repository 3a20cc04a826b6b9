"""Liveness and readiness: /healthz says the process answers, /readyz that its table,
queue, bucket and bus answer too.

/readyz is reachable by anyone who reaches the service, so its AWS calls must not follow
the request rate: the checks run at most once per `LONGHAUL_READINESS_CACHE_S`, one run at
a time, and every request in between gets the last run's answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from longhaul.api.problems import problem_response
from longhaul.aws.clients import AwsClients
from longhaul.config import KitSettings
from longhaul.spec import ServiceSpec

__all__ = ["Readiness", "readiness_checks", "router"]

Check = Callable[[], Awaitable[Any]]

router = APIRouter(tags=["health"])

READY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"const": "ready"},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def readiness_checks(spec: ServiceSpec, settings: KitSettings, aws: AwsClients) -> dict[str, Check]:
    """One cheap read per declared resource, by name."""
    reads: dict[str, tuple[str, str, dict[str, str]]] = {
        "bus": ("events", "describe_event_bus", {"Name": settings.bus_name})
    }
    if spec.table and settings.table_name:
        reads["table"] = ("dynamodb", "describe_table", {"TableName": settings.table_name})
    if spec.queue and settings.queue_name:
        reads["queue"] = ("sqs", "get_queue_url", {"QueueName": settings.queue_name})
    if spec.bucket and settings.bucket_name:
        reads["bucket"] = ("s3", "head_bucket", {"Bucket": settings.bucket_name})

    def check(service: str, operation: str, arguments: dict[str, str]) -> Check:
        async def read() -> Any:
            return await getattr(await aws.get(service), operation)(**arguments)

        return read

    return {name: check(*read) for name, read in reads.items()}


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """Always 200 while the event loop runs."""
    return {"status": "ok"}


class Readiness:
    """The readiness checks, run at most once per `cache_s` (and one run at a time)."""

    def __init__(self, checks: dict[str, Check], *, timeout_s: float, cache_s: float) -> None:
        self.checks = checks
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._lock = asyncio.Lock()
        self._results: dict[str, str] = {}
        self._ran_at: float | None = None

    async def results(self) -> dict[str, str]:
        """Each check's outcome ("ok", "timeout" or the error's type) from a run at most
        `cache_s` old; a request that finds a run going waits for it."""
        async with self._lock:
            fresh = self._ran_at is not None and time.monotonic() - self._ran_at < self._cache_s
            if not fresh:
                outcomes = await asyncio.gather(*(self._run(c) for c in self.checks.values()))
                self._results = dict(zip(self.checks, outcomes, strict=True))
                self._ran_at = time.monotonic()
            return dict(self._results)

    async def _run(self, check: Check) -> str:
        try:
            await asyncio.wait_for(check(), self._timeout_s)
        except TimeoutError:
            return "timeout"
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return "ok"


@router.get(
    "/readyz",
    summary="Readiness: the service's own resources answer",
    responses={
        200: {
            "description": "Every check passed",
            "content": {"application/json": {"schema": READY_SCHEMA}},
        },
        503: {"description": "Not ready: the problem's `checks` name each check's outcome"},
    },
)
async def readyz(request: Request) -> JSONResponse:
    """200 when every check passed in its last run, 503 problem+json naming the failures."""
    readiness: Readiness = request.app.state.readiness
    results = await readiness.results()
    if all(result == "ok" for result in results.values()):
        return JSONResponse({"status": "ready", "checks": results})
    failing = sorted(name for name, result in results.items() if result != "ok")
    return problem_response(503, f"not ready: {', '.join(failing)}", checks=results)
