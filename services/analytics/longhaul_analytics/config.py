"""The analytics service's settings: the kit's, plus its own under the ANALYTICS_ prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings

__all__ = ["AnalyticsSettings"]


class AnalyticsSettings(KitSettings):
    """What the analytics service reads from its environment (ANALYTICS_*)."""

    model_config = SettingsConfigDict(
        env_prefix="ANALYTICS_", extra="ignore", frozen=True, populate_by_name=True
    )

    # The lake (LAKE): docs/lake.md.
    lake_compact_after_s: int = Field(
        default=3600,
        ge=0,
        description="how long after an hour ends its flush files are compacted (late rows "
        "flushed later are compacted at a later pass)",
    )
    lake_schedule_every_s: int = Field(
        default=300, ge=1, le=900, description="the compaction scheduler's pass interval"
    )
    lake_schedule_on_start: bool = Field(
        default=True, description="the API submits the compaction scheduler (once) at start"
    )
    lake_min_file_bytes: int = Field(
        default=128 * 1024 * 1024, ge=1, description="a compacted file's size, or one per hour"
    )
    lake_compact_max_files: int = Field(
        default=20_000, ge=1, description="flush files one compaction round merges"
    )
    query_max_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    query_timeout_s: float = Field(default=10.0, gt=0, le=300)
    query_max_range_s: int = Field(
        default=31 * 86_400, ge=1, description="the longest start..end a query may load"
    )
    query_max_loaded_rows: int = Field(
        default=5_000_000, ge=1, description="events one query may load into DuckDB"
    )
    query_memory_mib: int = Field(default=512, ge=64, description="DuckDB's memory limit")
