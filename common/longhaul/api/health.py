"""Liveness and readiness: /healthz says the process answers, /readyz that its table,
queue, bucket and bus answer too."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from longhaul.api.problems import problem_response
from longhaul.aws.clients import AwsClients
from longhaul.config import KitSettings
from longhaul.spec import ServiceSpec

__all__ = ["readiness_checks", "router"]

Check = Callable[[], Awaitable[Any]]

router = APIRouter(tags=["health"])


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


@router.get("/readyz", summary="Readiness: the service's own resources answer")
async def readyz(request: Request) -> JSONResponse:
    """200 when every check passes in time, 503 problem+json naming the failures."""
    checks: dict[str, Check] = request.app.state.readiness_checks
    timeout = request.app.state.settings.readiness_timeout_s

    async def run(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            return "timeout"
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return "ok"

    results = dict(
        zip(checks, await asyncio.gather(*(run(c) for c in checks.values())), strict=True)
    )
    if all(result == "ok" for result in results.values()):
        return JSONResponse({"status": "ready", "checks": results})
    failing = sorted(name for name, result in results.items() if result != "ok")
    return problem_response(503, f"not ready: {', '.join(failing)}", checks=results)
