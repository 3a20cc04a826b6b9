"""The media service: its spec, settings, routes, upload handler and job types."""

from longhaul import Service
from longhaul_media import events as _events  # noqa: F401  (registers the media facts)
from longhaul_media.api.routes import router
from longhaul_media.config import MediaSettings
from longhaul_media.presets import preset_flags
from longhaul_media.spec import SPEC
from longhaul_media.worker.handlers import events
from longhaul_media.worker.jobs import jobs

SERVICE = Service(
    spec=SPEC,
    settings=MediaSettings,
    routers=[router],
    events=events,
    jobs=jobs,
    flags=preset_flags(),
)
