"""Types every family shares: the data of one fit, a fit in progress, a loaded model.

A fit runs `steps` steps (LightGBM rounds, epochs, or 1 for one-shot models). After each
step it calls `on_step(steps_done, train_pred, valid_pred)`; the trainer emits metrics and
may checkpoint from there (`fit.save(dir)`) and answers True to stop, after which `run`
returns at once. `resume(data, dir)` on a fresh process gives a fit that continues exactly
as the saved one would have. Predictions are class probabilities (rows, classes) or values
(rows,) in the model's space (a scaled target for families with `scale_target`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Array", "Family", "Fit", "FitData", "OnStep", "Predictor", "full_proba"]

Array = npt.NDArray[Any]
OnStep = Callable[[int, Array, Array | None], bool]


@dataclass
class FitData:
    """One fit's inputs: matrices, coded targets, the family's resolved params, the seed."""

    task: str
    classes: int  # 0 for regression
    X: Array
    y: Array
    X_valid: Array | None
    y_valid: Array | None
    params: dict[str, Any]
    seed: int
    steps: int


class Fit(ABC):
    """A fit in progress."""

    steps_done: int = 0

    @abstractmethod
    def run(self, on_step: OnStep) -> None:
        """Runs the remaining steps, calling on_step after each; returns when it says stop."""

    @abstractmethod
    def predict(self, X: Array) -> Array:
        """Predictions of the model as it is now."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Writes the state `resume` needs into an empty directory."""

    @abstractmethod
    def export(self, directory: Path) -> list[str]:
        """Writes the finished model's files; answers their names."""


class Predictor(ABC):
    """A finished model loaded from its directory without unpickling anything."""

    @abstractmethod
    def predict(self, X: Array) -> Array:
        """Predictions in the model's space (see the module docstring)."""

    def weights(self) -> dict[str, Array]:
        """The model's learned numbers by name, where the family exposes them."""
        return {}


@dataclass(frozen=True)
class Family:
    """What the trainer and the loader need from a family."""

    name: str
    scale_target: bool
    start: Callable[[FitData], Fit]
    resume: Callable[[FitData, Path], Fit]
    load: Callable[[Path], Predictor]


def full_proba(classes_seen: Array, proba: Array, classes: int) -> Array:
    """Probabilities over all classes when an estimator saw only some of them."""
    if proba.shape[1] == classes:
        return proba
    out = np.zeros((proba.shape[0], classes))
    out[:, np.asarray(classes_seen, dtype=np.int64)] = proba
    return out
