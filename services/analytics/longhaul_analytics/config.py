"""The analytics service's settings: the kit's, plus its own under the ANALYTICS_ prefix."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings

__all__ = ["AnalyticsSettings"]


class AnalyticsSettings(KitSettings):
    """What the analytics service reads from its environment (ANALYTICS_*)."""

    model_config = SettingsConfigDict(
        env_prefix="ANALYTICS_", extra="ignore", frozen=True, populate_by_name=True
    )

    # Event time (docs/analytics.md "Event time").
    allowed_lateness_s: float = Field(
        default=10.0, ge=0, le=86_400, description="watermark = newest event time - this"
    )
    retention_s: float = Field(
        default=3600.0,
        ge=0,
        le=30 * 86_400,
        description="how far behind its source's watermark an event may be and still revise "
        "its windows; older ones go to the late-events table",
    )
    idle_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="a source silent this long no longer holds windows open",
    )
    closer: bool = Field(
        default=True, description="run the window closer in this process (every role does)"
    )
    close_every_s: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="how often the closer looks for windows (an idle source's window closes "
        "within its idle timeout plus this plus a pass)",
    )
    session_gap_s: int = Field(default=300, ge=1, le=86_400)
    # Edge limits on client events.
    max_future_s: float = Field(default=300.0, ge=0, description="refused if later than now+this")
    max_age_s: float = Field(
        default=7 * 86_400.0, gt=0, description="refused if older than now-this"
    )
    max_groups: int = Field(
        default=1000, ge=1, description="distinct dimension values (groups) per metric"
    )
    max_metrics: int = Field(default=50, ge=1, description="declared metrics per owner")
    metrics_cache_s: float = Field(
        default=2.0, ge=0, le=300, description="how long a process reuses an owner's metrics"
    )
    stream_poll_s: float = Field(default=0.5, gt=0, le=30)
    stream_lifetime_s: float = Field(default=900.0, gt=0)
    platform_owner: str = Field(
        default="_platform",
        min_length=1,
        max_length=128,
        description="the owner of platform events whose data names none",
    )

    @model_validator(mode="after")
    def _bounds(self) -> AnalyticsSettings:
        if self.retention_s > self.max_age_s:
            raise ValueError("ANALYTICS_RETENTION_S must not exceed ANALYTICS_MAX_AGE_S")
        return self

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
