"""The analytics service: its spec, settings, routes, event handlers and job types, and the
window closer every role runs beside them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from longhaul import Service
from longhaul.config import KitSettings, Role
from longhaul_analytics import events as _events  # noqa: F401  (registers the analytics facts)
from longhaul_analytics.analytics.closer import Closer
from longhaul_analytics.analytics.engine import engine_of
from longhaul_analytics.api.query import router as query_router
from longhaul_analytics.api.routes import router
from longhaul_analytics.config import AnalyticsSettings
from longhaul_analytics.spec import SPEC
from longhaul_analytics.worker.handlers import events
from longhaul_analytics.worker.jobs import jobs


@dataclass(frozen=True)
class AnalyticsService(Service):
    """The kit's service, whose every role also runs the window closer (docs/analytics.md
    "Closing windows"): windows close however few workers run, even none."""

    def app(self, role: Role, settings: KitSettings | None = None) -> FastAPI:
        app = super().app(role, settings)
        inner = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with inner(app):
                chosen = app.state.settings
                assert isinstance(chosen, AnalyticsSettings)
                stop = asyncio.Event()
                task = None
                if chosen.closer:
                    engine = await engine_of(app.state.aws, chosen)
                    closer = Closer(engine.store, chosen)
                    task = asyncio.create_task(closer.run(stop), name="closer")
                try:
                    yield
                finally:
                    stop.set()
                    if task is not None:
                        await asyncio.wait_for(task, 30)

        app.router.lifespan_context = lifespan
        return app


SERVICE = AnalyticsService(
    spec=SPEC,
    settings=AnalyticsSettings,
    routers=[router, query_router],
    events=events,
    jobs=jobs,
)
