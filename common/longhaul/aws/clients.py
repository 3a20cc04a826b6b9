"""AWS clients: aioboto3 with standard retries, one client per service per process, traced.

Services reach AWS only through these clients. `AWS_ENDPOINT_URL` (botocore's own
variable) points them at moto locally; nothing else in a service knows where it runs.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
from botocore.config import Config
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from longhaul.observability.tracing import tracer

__all__ = ["AwsClients", "client_config"]

_SPAN_KEY = "longhaul_span"


def client_config(
    *, connect_timeout: float = 3, read_timeout: float = 60, max_attempts: int = 5
) -> Config:
    """botocore's standard retry mode (backoff with jitter on throttling and 5xx)."""
    return Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        tcp_keepalive=True,
    )


def _start_span(model: Any, context: dict[str, Any], **_: Any) -> None:
    service = model.service_model.service_id.hyphenize()
    span = tracer().start_span(
        f"{service}.{model.name}",
        kind=SpanKind.CLIENT,
        attributes={"rpc.system": "aws-api", "rpc.service": service, "rpc.method": model.name},
    )
    context[_SPAN_KEY] = span


def _end_span(http_response: Any, context: dict[str, Any], **_: Any) -> None:
    span: trace.Span | None = context.pop(_SPAN_KEY, None)
    if span is None:
        return
    status = getattr(http_response, "status_code", 0)
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _fail_span(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    span: trace.Span | None = context.pop(_SPAN_KEY, None)
    if span is None:
        return
    span.record_exception(exception)
    span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
    span.end()


def _trace(client: Any) -> Any:
    events = client.meta.events
    events.register("before-call.*.*", _start_span)
    events.register("after-call.*.*", _end_span)
    events.register("after-call-error.*.*", _fail_span)
    return client


class AwsClients:
    """Long-lived aioboto3 clients, created on first use and closed together."""

    def __init__(
        self,
        region: str,
        *,
        config: Config | None = None,
        endpoint_url: str | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        """`endpoint_url` and `credentials` are for local tools only; services take both
        from the environment (`AWS_ENDPOINT_URL`, the task role), as botocore does."""
        self._session = aioboto3.Session(region_name=region, **(credentials or {}))
        self._config = config or client_config()
        self._endpoint_url = endpoint_url
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def get(self, service: str, *, validated: bool = True) -> Any:
        """The client for `service` ("sqs", "events", "dynamodb", "s3", ...).

        `validated=False` gives a second client that skips botocore's client-side check of
        each request's parameters against the API model (the service still checks them):
        for a hot path whose requests are built by code, where that check costs more CPU
        than the rest of the call (a BatchWriteItem of 25 items: about a third)."""
        key = service if validated else f"{service}:unvalidated"
        if (client := self._clients.get(key)) is not None:
            return client
        async with self._lock:
            if key not in self._clients:
                config = self._config
                if service == "s3":  # presigned URLs signed with SigV4, as S3 requires now
                    config = config.merge(Config(signature_version="s3v4"))
                if not validated:
                    config = config.merge(Config(parameter_validation=False))
                created = self._session.client(
                    service, config=config, endpoint_url=self._endpoint_url
                )
                self._clients[key] = _trace(await self._stack.enter_async_context(created))
            return self._clients[key]

    async def close(self) -> None:
        """Close every client this object created."""
        self._clients.clear()
        await self._stack.aclose()
