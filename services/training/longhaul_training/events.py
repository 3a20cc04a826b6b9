"""The training service's facts."""

from pydantic import Field

from longhaul.events import Event, event
from longhaul.jobs.events import register_job_facts


@event("training.dataset.registered", 1)
class DatasetRegistered(Event):
    """A dataset was read, validated and profiled: jobs may name it."""

    dataset_id: str
    owner: str
    name: str
    format: str
    rows: int = Field(ge=0)
    columns: int = Field(ge=0)
    sha256: str
    bytes: int = Field(ge=0)


@event("training.dataset.rejected", 1)
class DatasetRejected(Event):
    """An uploaded dataset could not be used, for the reason given."""

    dataset_id: str
    owner: str
    name: str
    reason: str


@event("training.model.created", 1)
class ModelCreated(Event):
    """A model is in the owner's registry: its files and card are in the bucket."""

    model_id: str
    owner: str
    job_id: str
    dataset_id: str | None
    family: str
    task: str
    metrics: dict[str, float]
    sweep_id: str | None = None


JOB_FACTS = register_job_facts("training")
