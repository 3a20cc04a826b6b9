"""The analytics service's settings: the kit's, plus its own under the ANALYTICS_ prefix."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings

__all__ = ["AnalyticsSettings"]


class AnalyticsSettings(KitSettings):
    """What the analytics service reads from its environment (ANALYTICS_*)."""

    model_config = SettingsConfigDict(
        env_prefix="ANALYTICS_", extra="ignore", frozen=True, populate_by_name=True
    )
