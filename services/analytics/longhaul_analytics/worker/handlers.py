"""Every platform event (the rule takes every `longhaul.*` source) is counted like a client
event: its type is the name, its data the properties, its owner the data's `owner`."""

from __future__ import annotations

import logging
from typing import Any

from longhaul.events import BatchResult, Delivery, Envelope, EventRouter
from longhaul.jobs import JobResources
from longhaul_analytics.analytics.engine import engine_of
from longhaul_analytics.analytics.ingest import Engine
from longhaul_analytics.analytics.model import Record, digest, to_ms
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["events", "record_of"]

log = logging.getLogger(__name__)

# up to 500 messages a call (gathered over receives for at most 0.5 s): an ingest's cost is
# mostly per call, not per event (docs/analytics.md "Throughput")
events = EventRouter(gather=500, gather_wait_s=0.5)

_engines: dict[int, Engine] = {}  # one per worker's resources (one per process)


def record_of(envelope: Envelope, platform_owner: str) -> Record:
    """The engine's record of a platform event. Its owner is the `owner` its data names
    (and its properties are the rest of its data); one that names none (or not as a
    string) is counted under `platform_owner`, with all its data."""
    properties = dict(envelope.data)
    owner = properties.get("owner")
    if isinstance(owner, str) and 1 <= len(owner) <= 128:
        del properties["owner"]
    else:
        owner = platform_owner
    time_ms = to_ms(envelope.time)
    return Record(
        owner=owner,
        id=envelope.id,
        name=envelope.type,
        time_ms=time_ms,
        properties=properties,
        source=envelope.source,
        received_ms=time_ms,  # the same on every delivery, so a redelivered flush is the same file
        digest=digest(envelope.type, time_ms, properties),
    )


async def _engine(resources: JobResources) -> Engine:
    engine = _engines.get(id(resources))
    if engine is None:
        settings = resources.settings
        assert isinstance(settings, AnalyticsSettings)
        engine = await engine_of(resources.aws, settings)
        _engines[id(resources)] = engine
    return engine


@events.on_every()
async def on_platform_events(deliveries: list[Delivery[Any]]) -> BatchResult:
    """Count the gathered events together; a failure redelivers them all (each event
    counts once however often it comes). A refused event is logged with its reason."""
    resources: JobResources = deliveries[0].resources
    engine = await _engine(resources)
    owner = engine.settings.platform_owner
    result = await engine.ingest([record_of(d.envelope, owner) for d in deliveries])
    for rejection in result.rejected:
        log.warning(
            "platform event refused: %s",
            rejection.reason,
            extra={"event_id": rejection.id, "reason": rejection.reason},
        )
    return BatchResult()
