"""The analytics service's routes: client events, metrics, aggregates, late events and the
stream of window updates (the lake's SQL is LAKE's `api/query.py`)."""

from __future__ import annotations

from fastapi import APIRouter

from longhaul_analytics.api.aggregates import router as aggregates_router
from longhaul_analytics.api.events import router as events_router

__all__ = ["router"]

router = APIRouter()
router.include_router(events_router)
router.include_router(aggregates_router)
