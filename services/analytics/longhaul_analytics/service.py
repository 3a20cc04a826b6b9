"""The analytics service: its spec, settings, routes, event handlers and job types."""

from longhaul import Service
from longhaul_analytics import events as _events  # noqa: F401  (registers the analytics facts)
from longhaul_analytics.api.query import router as query_router
from longhaul_analytics.api.routes import router
from longhaul_analytics.config import AnalyticsSettings
from longhaul_analytics.spec import SPEC
from longhaul_analytics.worker.handlers import events
from longhaul_analytics.worker.jobs import jobs

SERVICE = Service(
    spec=SPEC,
    settings=AnalyticsSettings,
    routers=[router, query_router],
    events=events,
    jobs=jobs,
)
