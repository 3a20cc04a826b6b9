"""Dependencies of the analytics routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from longhaul_analytics.analytics.engine import engine_of
from longhaul_analytics.analytics.ingest import Engine
from longhaul_analytics.analytics.store import AnalyticsStore
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["AnalyticsSettingsDep", "EngineDep", "StoreDep"]


def _settings(request: Request) -> AnalyticsSettings:
    settings = request.app.state.settings
    assert isinstance(settings, AnalyticsSettings)
    return settings


async def _engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "analytics_engine", None)
    if engine is None:
        engine = await engine_of(request.app.state.aws, _settings(request))
        request.app.state.analytics_engine = engine
    return engine


async def _store(engine: Annotated[Engine, Depends(_engine)]) -> AnalyticsStore:
    return engine.store


AnalyticsSettingsDep = Annotated[AnalyticsSettings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
StoreDep = Annotated[AnalyticsStore, Depends(_store)]
