"""`create_app`: the edge every service shares."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from longhaul.api import health
from longhaul.api.auth import JwtVerifier
from longhaul.api.middleware import RequestContextMiddleware
from longhaul.api.problems import install_problem_handlers
from longhaul.aws.clients import AwsClients, client_config
from longhaul.aws.secrets import Secrets, load_secrets
from longhaul.config import KitSettings, Role
from longhaul.events.consumer import EventRouter, SqsConsumer
from longhaul.events.publisher import EventPublisher
from longhaul.spec import ServiceSpec

__all__ = ["create_app"]

log = logging.getLogger(__name__)

CONSUMER_STOP_TIMEOUT_S = 30


def create_app(
    spec: ServiceSpec,
    settings: KitSettings,
    *,
    role: Role = "all",
    routers: Sequence[APIRouter] = (),
    events: EventRouter | None = None,
    verifier: JwtVerifier | None = None,
) -> FastAPI:
    """The service's FastAPI app for `role`: health, problem+json, correlation ids, auth,
    and, for the worker role, the queue consumer running beside the health endpoints."""
    serves_api = role in ("api", "all")
    consumes = role in ("worker", "all") and events is not None and spec.queue is not None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        aws = AwsClients(settings.region)
        probe = AwsClients(
            settings.region, config=client_config(connect_timeout=1, read_timeout=2, max_attempts=1)
        )
        app.state.aws = aws
        app.state.readiness_checks = health.readiness_checks(spec, settings, probe)
        stop = asyncio.Event()
        consumer_task: asyncio.Task[None] | None = None
        try:
            app.state.secrets = (
                await load_secrets(aws, {s.name: settings.secret_ids[s.name] for s in spec.secrets})
                if spec.secrets
                else Secrets({})
            )
            app.state.publisher = EventPublisher(
                await aws.get("events"), bus_name=settings.bus_name, source=f"longhaul.{spec.name}"
            )
            if serves_api:
                app.state.verifier = verifier or _verifier(settings)
            if consumes:
                consumer_task = await _start_consumer(app, settings, events, aws, stop)
            yield
        finally:
            stop.set()
            if consumer_task is not None:
                try:
                    await asyncio.wait_for(consumer_task, CONSUMER_STOP_TIMEOUT_S)
                except TimeoutError:
                    log.warning("consumer did not stop in time")
                except Exception:
                    log.exception("consumer failed")
            if serves_api and hasattr(app.state, "verifier"):
                await app.state.verifier.close()
            await probe.close()
            await aws.close()

    app = FastAPI(
        title=f"longhaul-{spec.name}",
        lifespan=lifespan,
        openapi_url="/openapi.json" if serves_api else None,
        docs_url="/docs" if serves_api else None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.spec = spec
    app.state.role = role
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    if serves_api:
        for router in routers:
            app.include_router(router)
    return app


async def _start_consumer(
    app: FastAPI,
    settings: KitSettings,
    events: EventRouter | None,
    aws: AwsClients,
    stop: asyncio.Event,
) -> asyncio.Task[None]:
    """Run the queue consumer beside the app; readiness fails if it ever stops on its own."""
    assert events is not None
    assert settings.queue_name
    sqs = await aws.get("sqs")
    queue_url = (await sqs.get_queue_url(QueueName=settings.queue_name))["QueueUrl"]
    app.state.consumer = SqsConsumer(
        sqs,
        queue_url,
        events,
        wait_s=settings.poll_wait_s,
        concurrency=settings.consumer_concurrency,
    )
    task = asyncio.create_task(app.state.consumer.run(stop), name="consumer")

    async def consumer_alive() -> None:
        if task.done() and not stop.is_set():
            raise RuntimeError("the consumer stopped")

    app.state.readiness_checks["consumer"] = consumer_alive
    log.info("consuming", extra={"queue": settings.queue_name, "events": events.event_keys})
    return task


def _verifier(settings: KitSettings) -> JwtVerifier:
    assert settings.auth_issuer
    assert settings.auth_client_id
    assert settings.jwks_url
    return JwtVerifier(
        issuer=settings.auth_issuer, client_id=settings.auth_client_id, jwks_url=settings.jwks_url
    )
