"""The training service's settings: the kit's, plus its own under the TRAINING_ prefix."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings

__all__ = ["TrainingSettings"]


class TrainingSettings(KitSettings):
    """What the training service reads from its environment (TRAINING_*)."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINING_", extra="ignore", frozen=True, populate_by_name=True
    )
