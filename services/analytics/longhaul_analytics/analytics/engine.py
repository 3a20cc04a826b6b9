"""Building the engine's parts from a running app's AWS clients and settings."""

from __future__ import annotations

from collections.abc import Sequence

from longhaul.aws.clients import AwsClients
from longhaul_analytics.analytics.flush import flush_records
from longhaul_analytics.analytics.ingest import Engine
from longhaul_analytics.analytics.model import Record
from longhaul_analytics.analytics.store import AnalyticsStore
from longhaul_analytics.config import AnalyticsSettings

__all__ = ["engine_of"]


async def engine_of(aws: AwsClients, settings: AnalyticsSettings) -> Engine:
    """An engine over the service's table that flushes to the service's bucket."""
    assert settings.table_name, "the analytics service needs its table"
    assert settings.bucket_name, "the analytics service needs its bucket"
    s3 = await aws.get("s3")
    bucket = settings.bucket_name

    async def flush(records: Sequence[Record]) -> None:
        await flush_records(s3, bucket, records)

    # the ingest's requests are built by the store's code: no client-side parameter check
    store = AnalyticsStore(await aws.get("dynamodb", validated=False), settings.table_name)
    return Engine(store, settings, flush)
