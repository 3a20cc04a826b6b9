"""`create_app`: the edge every service shares."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from longhaul.api import health
from longhaul.api.auth import JwtVerifier
from longhaul.api.middleware import RequestContextMiddleware
from longhaul.api.openapi import install_openapi
from longhaul.api.problems import install_problem_handlers
from longhaul.aws.clients import AwsClients, client_config
from longhaul.aws.secrets import Secrets, load_secrets
from longhaul.config import KitSettings, Role
from longhaul.events.consumer import EventRouter, SqsConsumer
from longhaul.events.publisher import EventPublisher
from longhaul.flags import Flags, FlagValue
from longhaul.jobs.admin import admin_routes
from longhaul.jobs.drain import METADATA_VARIABLE, DeploymentWatch
from longhaul.jobs.events import register_job_facts
from longhaul.jobs.protection import TaskProtection
from longhaul.jobs.queue import dlq_url_of, max_receives_of
from longhaul.jobs.registry import JobTypes
from longhaul.jobs.routes import document_jobs, job_routes
from longhaul.jobs.store import JobStore
from longhaul.jobs.submit import JobResources
from longhaul.jobs.worker import JobWorker, WorkerConfig
from longhaul.quotas import QuotaStore
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
    jobs: JobTypes | None = None,
    verifier: JwtVerifier | None = None,
    flags: Mapping[str, FlagValue] | None = None,
) -> FastAPI:
    """The service's FastAPI app for `role`: health, problem+json, correlation ids, auth,
    the job routes when the service runs jobs, and, for the worker role, the queue consumer
    (or the job worker) running beside the health endpoints. `flags` declares the service's
    feature flags and their defaults (longhaul.flags)."""
    serves_api = role in ("api", "all")
    consumes = role in ("worker", "all") and spec.queue is not None and (events or jobs) is not None
    if jobs is not None and (spec.queue is None or spec.table is None):
        raise ValueError(f"service {spec.name!r} runs jobs, so it must declare a queue and a table")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        aws = AwsClients(settings.region)
        probe = AwsClients(
            settings.region, config=client_config(connect_timeout=1, read_timeout=2, max_attempts=1)
        )
        app.state.aws = aws
        app.state.flags = Flags(
            aws, settings.flags_parameter, defaults=flags or {}, ttl_s=settings.flags_ttl_s
        )
        app.state.readiness = health.Readiness(
            health.readiness_checks(spec, settings, probe),
            timeout_s=settings.readiness_timeout_s,
            cache_s=settings.readiness_cache_s,
        )
        stop = asyncio.Event()
        background: asyncio.Task[None] | None = None
        stop_timeout = float(CONSUMER_STOP_TIMEOUT_S)
        try:
            app.state.secrets = (
                await load_secrets(aws, {s.name: settings.secret_ids[s.name] for s in spec.secrets})
                if spec.secrets
                else Secrets({})
            )
            app.state.publisher = EventPublisher(
                await aws.get("events"), bus_name=settings.bus_name, source=f"longhaul.{spec.name}"
            )
            if settings.queue_name:
                app.state.sqs = await aws.get("sqs")
                app.state.queue_url = (
                    await app.state.sqs.get_queue_url(QueueName=settings.queue_name)
                )["QueueUrl"]
            if jobs is not None:
                register_job_facts(spec.name)
                app.state.job_store = JobStore(
                    await aws.get("dynamodb"),
                    str(settings.table_name),
                    s3=await aws.get("s3") if settings.bucket_name else None,
                    bucket=settings.bucket_name,
                )
            if serves_api:
                app.state.verifier = verifier or _verifier(settings)
                if settings.table_name:
                    app.state.quotas = QuotaStore(
                        await aws.get("dynamodb"), settings.table_name, settings.quotas
                    )
            if consumes:
                runner = await _background(app, spec, settings, events, jobs, aws)
                background = asyncio.create_task(runner.run(stop), name="consumer")
                stop_timeout += settings.shutdown_deadline_s if jobs is not None else 0

                async def consumer_alive() -> None:
                    assert background is not None
                    if background.done() and not stop.is_set():
                        raise RuntimeError("the consumer stopped")

                app.state.readiness.checks["consumer"] = consumer_alive
            yield
        finally:
            stop.set()
            if background is not None:
                try:
                    await asyncio.wait_for(background, stop_timeout)
                except TimeoutError:
                    log.warning("consumer did not stop in time")
                except Exception:
                    log.exception("consumer failed")
            if hasattr(app.state, "deployment_watch"):
                await app.state.deployment_watch.close()
            if hasattr(app.state, "protection"):
                await app.state.protection.close()
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
        version=service_version(spec),
    )
    app.state.settings = settings
    app.state.spec = spec
    app.state.role = role
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    if serves_api:
        if jobs is not None:
            app.include_router(job_routes(spec.name, jobs))
            app.include_router(admin_routes())
        for router in routers:
            app.include_router(router)
        install_openapi(app, patches=(document_jobs(jobs),) if jobs is not None else ())
    return app


def service_version(spec: ServiceSpec) -> str:
    """The service's package version (the kit's for a service not installed as a
    package), the OpenAPI document's `info.version`."""
    for distribution in (f"longhaul-{spec.name}", "longhaul"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "0.0.0"


async def _background(
    app: FastAPI,
    spec: ServiceSpec,
    settings: KitSettings,
    events: EventRouter | None,
    jobs: JobTypes | None,
    aws: AwsClients,
) -> SqsConsumer | JobWorker:
    """The queue consumer of the worker role: the job worker when the service runs jobs
    (it passes event messages to the consumer), the plain event consumer otherwise."""
    assert spec.queue is not None
    router = events or EventRouter()
    consumer = SqsConsumer(
        app.state.sqs,
        app.state.queue_url,
        router,
        wait_s=settings.poll_wait_s,
        concurrency=settings.consumer_concurrency,
    )
    app.state.consumer = consumer
    if jobs is None:
        log.info("consuming", extra={"queue": settings.queue_name})
        return consumer
    resources = JobResources(
        service=spec.name,
        settings=settings,
        aws=aws,
        publisher=app.state.publisher,
        store=app.state.job_store,
        sqs=app.state.sqs,
        queue_url=app.state.queue_url,
        flags=app.state.flags,
    )
    router.resources = resources
    app.state.protection = TaskProtection(settings.ecs_agent_uri)
    app.state.job_worker = JobWorker(
        service=spec.name,
        types=jobs,
        store=app.state.job_store,
        sqs=app.state.sqs,
        queue_url=app.state.queue_url,
        dlq_url=await dlq_url_of(app.state.sqs, app.state.queue_url),
        publisher=app.state.publisher,
        events=consumer,
        protection=app.state.protection,
        config=WorkerConfig(
            visibility_s=settings.visibility_timeout_s or spec.queue.visibility_timeout_s,
            concurrency=settings.job_concurrency,
            poll_wait_s=settings.poll_wait_s,
            heartbeat_s=settings.heartbeat_s,
            cancel_poll_s=settings.cancel_poll_s,
            shutdown_deadline_s=settings.shutdown_deadline_s,
            reconcile_every_s=settings.reconcile_every_s,
            reconcile_after_s=settings.reconcile_after_s,
            retry_base_s=settings.retry_base_s,
            retry_max_s=settings.retry_max_s,
            max_takeovers=settings.max_takeovers,
            max_receives=await max_receives_of(app.state.sqs, app.state.queue_url),
            visibility_cap_s=settings.visibility_cap_s,
        ),
        resources=resources,
    )
    worker: JobWorker = app.state.job_worker
    # On ECS: drain once a new deployment replaces this task, so its protection lapses.
    app.state.deployment_watch = DeploymentWatch(
        os.environ.get(METADATA_VARIABLE), aws, worker.drain, every_s=settings.deployment_watch_s
    )
    app.state.deployment_watch.start()
    return worker


def _verifier(settings: KitSettings) -> JwtVerifier:
    assert settings.auth_issuer
    assert settings.auth_client_id
    assert settings.jwks_url
    return JwtVerifier(
        issuer=settings.auth_issuer, client_id=settings.auth_client_id, jwks_url=settings.jwks_url
    )
