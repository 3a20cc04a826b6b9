"""The training service's settings: the kit's, plus its own under the TRAINING_ prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from longhaul.config import KitSettings

__all__ = ["GIB", "MIB", "TrainingSettings"]

GIB = 1024**3
MIB = 1024**2


class TrainingSettings(KitSettings):
    """What the training service reads from its environment (TRAINING_*)."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINING_", extra="ignore", frozen=True, populate_by_name=True
    )

    # What a dataset may hold (docs/training.md "Limits"): checked on the declared size at
    # upload, and on the file itself when it is registered.
    max_dataset_bytes: int = Field(default=GIB, ge=1)
    max_rows: int = Field(default=10_000_000, ge=1)
    max_columns: int = Field(default=1_000, ge=1)
    max_cell_chars: int = Field(default=10_000, ge=1)
    max_model_bytes: int = Field(default=2 * GIB, ge=1, description="a model a user uploads")
    upload_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    download_url_ttl_s: int = Field(default=900, ge=60, le=12 * 3600)
    trainer_timeout_s: float = Field(default=24 * 3600, gt=0, description="one trainer run")
    inspect_timeout_s: float = Field(default=1800, gt=0, description="reading one dataset")
    predict_timeout_s: float = Field(default=3600, gt=0)
    child_memory_bytes: int = Field(
        default=14 * GIB, ge=256 * MIB, description="address space of a trainer or a reader"
    )
    # Live metrics go to the table in batches: this many points, or this many seconds after
    # the first unsaved one, whichever comes first (and at every checkpoint and the end).
    metrics_batch_points: int = Field(default=50, ge=1, le=500)
    metrics_batch_s: float = Field(default=5.0, gt=0)
    sweep_poll_s: int = Field(default=5, ge=1, le=60, description="how often a sweep checks")
    scratch_dir: str | None = Field(default=None, description="temp files; default: $TMPDIR")
