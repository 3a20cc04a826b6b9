"""The training service's payloads, results and API bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Imported here, not on first use: the import (pyarrow) takes a second that must not be
# spent on a running event loop.
from longhaul_training.training.spec import TrainSpec

__all__ = [
    "DatasetList",
    "DatasetTicket",
    "DatasetUpload",
    "ImportModelPayload",
    "MetricSeries",
    "ModelDownload",
    "ModelList",
    "ModelTicket",
    "ModelUpload",
    "PredictPayload",
    "RegisterDatasetPayload",
    "SweepPayload",
    "Ticket",
    "TrainPayload",
    "TrialPayload",
    "spec_fields",
]

ItemId = Annotated[str, Field(pattern=r"^[a-f0-9]{32}$", description="a dataset or model id")]
Scalar = bool | int | float | str
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
MODEL_SUFFIXES = (".skops", ".safetensors", ".onnx", ".pkl", ".pickle", ".joblib", ".bin")
MAXIMIZED = frozenset({"accuracy", "auc", "roc_auc", "f1", "r2", "balanced_accuracy"})


def dataset_format(name: str) -> Literal["csv", "parquet"] | None:
    """The format a dataset's file name says (by its extension), or None."""
    for suffix, fmt in FORMATS.items():
        if name.lower().endswith(suffix):
            return "csv" if fmt == "csv" else "parquet"
    return None


def maximized(metric: str) -> bool:
    """Whether a larger value of `metric` is better."""
    return metric.lower() in MAXIMIZED


class TrainFields(BaseModel):
    """What a training run is asked to do (the trainer's TrainSpec, less the dataset)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, max_length=256)
    task: Literal["classification", "regression"]
    family: Literal["lightgbm", "sgd", "mlp", "random_forest", "logistic", "ridge", "torch_mlp"]
    params: dict[str, Scalar] = Field(default_factory=dict)
    validation: dict[str, Any] = Field(default_factory=lambda: {"holdout": 0.2})
    metric: str | None = Field(default=None, max_length=64)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    checkpoint_every: int | None = Field(default=None, ge=1, le=100_000)


def spec_fields(fields: TrainFields, params: dict[str, Scalar] | None = None) -> dict[str, Any]:
    """The trainer's spec (TrainSpec's JSON) of `fields`, with `params` instead of its own."""
    spec = fields.model_dump(mode="json", include=set(TrainFields.model_fields), exclude_none=True)
    if params is not None:
        spec["params"] = params
    return spec


def checked_spec(spec: dict[str, Any]) -> Any:
    """The trainer's TrainSpec for `spec` (its own checks: params known to the family,
    the metric allowed for the task); a ValueError says what is wrong."""
    return TrainSpec.model_validate(spec)


class TrainPayload(TrainFields):
    """Train a model on one of the caller's registered datasets."""

    dataset: ItemId

    @model_validator(mode="after")
    def _valid_spec(self) -> TrainPayload:
        checked_spec(spec_fields(self))
        return self


class IntParam(BaseModel):
    """An integer searched between `low` and `high` (both included)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntParam:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


class FloatParam(BaseModel):
    """A number searched between `low` and `high`; a grid takes `points` of them."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    points: int = Field(default=5, ge=2, le=100, description="values a grid takes")

    @model_validator(mode="after")
    def _ordered(self) -> FloatParam:
        if self.low > self.high or (self.log and self.low <= 0):
            raise ValueError("low must not exceed high, and be positive on a log scale")
        return self


class ChoiceParam(BaseModel):
    """One of the listed values."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["choice"]
    choices: list[Scalar] = Field(min_length=1, max_length=100)


SearchParam = Annotated[IntParam | FloatParam | ChoiceParam, Field(discriminator="type")]


class Budget(BaseModel):
    """How much a sweep may spend: trials, and seconds of wall time from its start."""

    model_config = ConfigDict(extra="forbid")
    trials: int = Field(default=20, ge=1, le=1000)
    wall_s: float = Field(default=3600, gt=0, le=7 * 24 * 3600)


class Pruning(BaseModel):
    """The median rule: a trial whose validation metric at step k is worse than the median
    of the completed trials' at step k stops there."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    min_trials: int = Field(default=3, ge=1, description="completed trials before any pruning")
    warmup_steps: int = Field(default=5, ge=0, description="steps never pruned")


class SweepPayload(TrainFields):
    """Search `space` on one of the caller's registered datasets; `params` are fixed."""

    dataset: ItemId
    space: dict[str, SearchParam] = Field(min_length=1, max_length=32)
    strategy: Literal["grid", "random", "tpe"] = "tpe"
    budget: Budget = Field(default_factory=Budget)
    parallel: int = Field(default=4, ge=1, le=64)
    pruning: Pruning = Field(default_factory=Pruning)

    @model_validator(mode="after")
    def _valid_spec(self) -> SweepPayload:
        overlap = set(self.space) & set(self.params)
        if overlap:
            raise ValueError(f"params both fixed and searched: {sorted(overlap)}")
        sample: dict[str, Scalar] = {}
        for name, param in self.space.items():
            sample[name] = param.choices[0] if isinstance(param, ChoiceParam) else param.low
        checked_spec(spec_fields(self, {**self.params, **sample}))
        return self


class PrunePlan(BaseModel):
    """What a trial compares itself with: the median of the completed trials' validation
    metric per step, as its parent knew it when it spawned the trial."""

    metric: str
    maximize: bool
    warmup_steps: int
    medians: dict[int, float]


class TrialPayload(BaseModel):
    """One trial of a sweep (an internal job: spawned by the sweep)."""

    model_config = ConfigDict(extra="forbid")

    owner: str
    dataset: ItemId
    trial: int = Field(ge=0)
    spec: dict[str, Any]
    prune: PrunePlan | None = None


class PredictPayload(BaseModel):
    """Predict with one of the caller's models on one of their registered datasets."""

    model_config = ConfigDict(extra="forbid")

    model: ItemId
    dataset: ItemId


class RegisterDatasetPayload(BaseModel):
    """Read, validate and profile an uploaded dataset (internal: its upload starts it)."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=r"^datasets/[^/]{1,128}/[a-f0-9]{32}/[A-Za-z0-9._-]{1,128}$")


class ImportModelPayload(BaseModel):
    """Check a model file the caller uploaded (POST /models) and register it."""

    model_config = ConfigDict(extra="forbid")

    model: ItemId


class DatasetUpload(BaseModel):
    """A dataset the caller is about to upload."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"filename": "iris.csv", "size": 4096}]}
    )

    filename: str = Field(min_length=1, max_length=255, description="ends .csv or .parquet")
    size: int = Field(gt=0, description="bytes")


class Ticket(BaseModel):
    """Where to PUT a file: the presigned URL takes exactly the declared bytes."""

    key: str
    method: Literal["PUT"] = "PUT"
    url: str
    headers: dict[str, str]
    expires_in_s: int


class ModelUpload(BaseModel):
    """A model file the caller is about to upload (skops, safetensors or ONNX)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"filename": "model.onnx", "size": 4096}]}
    )

    filename: str = Field(min_length=1, max_length=255)
    size: int = Field(gt=0, description="bytes")


class DatasetTicket(Ticket):
    """Where to PUT the dataset; it is registered once it lands."""

    dataset_id: str


class ModelTicket(Ticket):
    """Where to PUT the model file, and the job to submit once it is there."""

    model_id: str
    then: dict[str, Any]


class DatasetList(BaseModel):
    """`GET /datasets`: the caller's datasets, newest first."""

    datasets: list[dict[str, Any]] = Field(
        description="each dataset's record: id, status (registered or rejected), profile"
    )


class ModelList(BaseModel):
    """`GET /models`: the caller's models, newest first, their cards left out."""

    models: list[dict[str, Any]] = Field(description="each model's record: id, status, name")


class ModelDownload(BaseModel):
    """`GET /models/{id}/download`: short-lived presigned GET URLs of the model's files."""

    model_id: str
    urls: dict[str, str] = Field(description="file name -> GET URL")
    expires_in_s: int


class MetricSeries(BaseModel):
    """`GET /jobs/{id}/metrics`: a training job's metric points, in step order."""

    job_id: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    points: list[dict[str, Any]] = Field(
        description="one per round, epoch or fold: `step` and the train and validation metrics"
    )
