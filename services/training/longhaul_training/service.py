"""The training service: its spec, settings, routes, event handlers and job types."""

from longhaul import Service
from longhaul_training import events as _events  # noqa: F401  (registers the training facts)
from longhaul_training.api.routes import router
from longhaul_training.config import TrainingSettings
from longhaul_training.spec import SPEC
from longhaul_training.worker.handlers import events
from longhaul_training.worker.jobs import jobs

SERVICE = Service(
    spec=SPEC,
    settings=TrainingSettings,
    routers=[router],
    events=events,
    jobs=jobs,
)
