"""What a train job asks for (`TrainSpec`), validated before any data is read.

A `TrainSpec` is a pydantic model: building one from a job payload raises pydantic's
`ValidationError` (a 422 for the API) for an unknown family or parameter name, a value out of
bounds, a family that does not do the task (ridge only regresses, logistic only classifies),
a metric the task does not have, or a validation that is not exactly one of holdout/folds.
`FAMILY_PARAMS` lists each family's parameters with their bounds and defaults;
`spec.resolved_params()` answers the params with every default filled in.

`spec.check_against(info)` then checks it against a registered dataset's `DatasetInfo` and
raises `DatasetRejected` for: a missing target column, a non-numeric target for regression,
a constant target, a classification target with too many classes, the auc metric on more
than two classes, no feature column, or too few rows for the validation asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from pydantic import BaseModel, Field, model_validator

from longhaul_training.training.datasets import MAX_CLASSES, DatasetInfo, DatasetRejected

__all__ = [
    "FAMILIES",
    "FAMILY_PARAMS",
    "ITERATIVE_FAMILIES",
    "METRICS",
    "Family",
    "Param",
    "Task",
    "TrainSpec",
    "Validation",
]

Task = Literal["classification", "regression"]
Family = Literal["lightgbm", "sgd", "mlp", "random_forest", "logistic", "ridge", "torch_mlp"]
FAMILIES: tuple[str, ...] = (
    "lightgbm",
    "sgd",
    "mlp",
    "random_forest",
    "logistic",
    "ridge",
    "torch_mlp",
)
ITERATIVE_FAMILIES = frozenset({"lightgbm", "sgd", "mlp", "torch_mlp"})
"""Families trained in rounds or epochs; the others fit once per fold."""

METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("logloss", "accuracy", "auc"),
    "regression": ("rmse", "mae", "r2"),
}
"""The metrics of each task, the default (the one optimized) first."""

MIN_ROWS_PER_PART = 5
"""Each side of a holdout split, and each fold, needs at least this many rows."""

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Param:
    """One parameter of a family: its type, default, inclusive bounds or allowed choices."""

    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        """The value, converted to the parameter's type; ValueError with the reason if not."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or (self.kind is int and isinstance(value, bool)):
            raise ValueError(f"param {name!r} must be {self.kind.__name__}, got {value!r}")
        if self.choices and value not in self.choices:
            raise ValueError(f"param {name!r} must be one of {list(self.choices)}, got {value!r}")
        number = cast(float, value) if self.kind in (int, float) else 0.0
        if self.low is not None and number < self.low:
            raise ValueError(f"param {name!r} must be at least {self.low}, got {value!r}")
        if self.high is not None and number > self.high:
            raise ValueError(f"param {name!r} must be at most {self.high}, got {value!r}")
        return value


_THREADS = Param(int, 1, 1, 64)
FAMILY_PARAMS: dict[str, dict[str, Param]] = {
    # No row or feature subsampling: LightGBM's samplers keep random state that a saved
    # booster does not hold, so a resumed run would not end with the same model.
    "lightgbm": {
        "n_rounds": Param(int, 100, 1, 10_000),
        "learning_rate": Param(float, 0.1, 1e-4, 1.0),
        "num_leaves": Param(int, 31, 2, 4096),
        "max_depth": Param(int, -1, -1, 64),
        "min_data_in_leaf": Param(int, 20, 1, 1_000_000),
        "lambda_l1": Param(float, 0.0, 0.0, 1e6),
        "lambda_l2": Param(float, 0.0, 0.0, 1e6),
        "min_gain_to_split": Param(float, 0.0, 0.0, 1e6),
        "max_bin": Param(int, 255, 3, 1024),
        "threads": _THREADS,
    },
    "sgd": {
        "epochs": Param(int, 20, 1, 10_000),
        "alpha": Param(float, 1e-4, 0.0, 1e3),
        "penalty": Param(str, "l2", choices=("l2", "l1", "elasticnet")),
        "l1_ratio": Param(float, 0.15, 0.0, 1.0),
        "learning_rate": Param(
            str, "invscaling", choices=("optimal", "constant", "invscaling", "adaptive")
        ),
        "eta0": Param(float, 0.01, 1e-8, 10.0),
    },
    "mlp": {
        "epochs": Param(int, 20, 1, 10_000),
        "hidden_units": Param(int, 64, 1, 4096),
        "layers": Param(int, 1, 1, 8),
        "activation": Param(str, "relu", choices=("relu", "tanh", "logistic")),
        "alpha": Param(float, 1e-4, 0.0, 1e3),
        "learning_rate": Param(float, 1e-3, 1e-6, 1.0),
        "batch_size": Param(int, 64, 1, 65_536),
    },
    "random_forest": {
        "n_estimators": Param(int, 100, 1, 5_000),
        "max_depth": Param(int, 0, 0, 256),  # 0: unbounded
        "min_samples_leaf": Param(int, 1, 1, 1_000_000),
        "max_features": Param(str, "sqrt", choices=("sqrt", "log2", "all")),
        "threads": _THREADS,
    },
    "logistic": {
        "C": Param(float, 1.0, 1e-6, 1e6),
        "max_iter": Param(int, 200, 1, 100_000),
    },
    "ridge": {
        "alpha": Param(float, 1.0, 0.0, 1e9),
    },
    "torch_mlp": {
        "epochs": Param(int, 20, 1, 10_000),
        "hidden_units": Param(int, 64, 1, 8192),
        "layers": Param(int, 2, 1, 16),
        "dropout": Param(float, 0.0, 0.0, 0.9),
        "learning_rate": Param(float, 1e-3, 1e-6, 1.0),
        "weight_decay": Param(float, 0.0, 0.0, 1.0),
        "batch_size": Param(int, 64, 1, 65_536),
        "threads": _THREADS,
    },
}

_TASKS: dict[str, tuple[str, ...]] = {
    "logistic": ("classification",),
    "ridge": ("regression",),
}


class Validation(BaseModel):
    """How the model is validated: a holdout fraction or k folds, exactly one."""

    holdout: float | None = Field(default=None, ge=0.05, le=0.5)
    folds: int | None = Field(default=None, ge=2, le=10)

    @model_validator(mode="after")
    def _exactly_one(self) -> Validation:
        if (self.holdout is None) == (self.folds is None):
            raise ValueError("validation needs exactly one of holdout (0.05..0.5) or folds (2..10)")
        return self


class TrainSpec(BaseModel):
    """A train job's recipe. `checkpoint_every` defaults to 10 rounds for lightgbm, 1 epoch else."""

    target: str = Field(min_length=1)
    task: Task
    family: Family
    params: dict[str, Scalar] = Field(default_factory=dict)
    validation: Validation
    metric: str | None = None
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    checkpoint_every: int = Field(default=10, ge=1, le=100_000)

    @model_validator(mode="before")
    @classmethod
    def _default_checkpoint_every(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("checkpoint_every") is None:
            data = {**data, "checkpoint_every": 10 if data.get("family") == "lightgbm" else 1}
        return data

    @model_validator(mode="after")
    def _check(self) -> TrainSpec:
        if self.task not in _TASKS.get(self.family, ("classification", "regression")):
            raise ValueError(f"the {self.family} family does not do {self.task}")
        known = FAMILY_PARAMS[self.family]
        unknown = sorted(set(self.params) - set(known))
        if unknown:
            raise ValueError(f"unknown params for {self.family}: {unknown}; known: {sorted(known)}")
        for name, value in self.params.items():
            self.params[name] = known[name].check(name, value)
        if self.metric is None:
            self.metric = METRICS[self.task][0]
        elif self.metric not in METRICS[self.task]:
            raise ValueError(
                f"metric {self.metric!r} is not one of {list(METRICS[self.task])} for {self.task}"
            )
        return self

    @property
    def primary_metric(self) -> str:
        """The metric reported first (the spec's, or the task's default)."""
        return self.metric or METRICS[self.task][0]

    def resolved_params(self) -> dict[str, Any]:
        """The family's params with every default filled in."""
        known = FAMILY_PARAMS[self.family]
        return {name: self.params.get(name, p.default) for name, p in known.items()}

    def steps_per_fit(self) -> int:
        """Rounds (lightgbm), epochs (incremental and torch) or 1 (one-shot) in one fit."""
        params = self.resolved_params()
        if self.family == "lightgbm":
            return int(params["n_rounds"])
        if self.family in ITERATIVE_FAMILIES:
            return int(params["epochs"])
        return 1

    def check_against(self, info: DatasetInfo) -> None:
        """Raises DatasetRejected when this spec cannot train on the dataset described."""
        columns = info.columns_by_name
        target = columns.get(self.target)
        if target is None:
            raise DatasetRejected(f"the dataset has no column named {self.target!r}")
        if len(columns) < 2:
            raise DatasetRejected("the dataset has no column besides the target to learn from")
        if self.task == "regression" and target.type not in ("integer", "float"):
            raise DatasetRejected(
                f"the target {self.target!r} holds {target.type} values; "
                "regression needs a numeric target"
            )
        if (target.distinct or 0) < 2:
            raise DatasetRejected(
                f"the target {self.target!r} holds a single value; there is nothing to learn"
            )
        if self.task == "classification":
            if target.type == "float" or (target.distinct or 0) > MAX_CLASSES:
                raise DatasetRejected(
                    f"the target {self.target!r} has {target.distinct} distinct values; "
                    f"classification takes at most {MAX_CLASSES} classes (integers, strings "
                    "or booleans)"
                )
            if self.primary_metric == "auc" and (target.distinct or 0) != 2:
                raise DatasetRejected("the auc metric needs a target with exactly two classes")
        rows = info.rows - target.missing
        if self.validation.holdout is not None:
            valid = round(rows * self.validation.holdout)
            enough = min(valid, rows - valid) >= MIN_ROWS_PER_PART
        else:
            enough = rows >= MIN_ROWS_PER_PART * (self.validation.folds or 2)
        if not enough:
            raise DatasetRejected(
                f"the dataset has {rows} rows with a target; too few for this validation "
                f"(each part needs at least {MIN_ROWS_PER_PART} rows)"
            )
