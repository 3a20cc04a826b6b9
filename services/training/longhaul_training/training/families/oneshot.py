"""scikit-learn one-shot families: random_forest, logistic, ridge; one fit per fold.

A fit is a single step (`fit`), so these checkpoint between folds (the trainer's state holds
each finished fold's out-of-fold predictions) and once after the holdout fit. Determinism:
`random_state` from the spec seed (the forest's trees each draw from it, whatever
`n_jobs`, which the `threads` param fixes). The checkpoint after a fit is the estimator
(`estimator.skops`). The finished model is `model.skops` and `model.onnx` (skl2onnx; input
"X" float32 of the encoded features; classifiers answer "label" and "probabilities").
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from longhaul_training.training.families.base import Array, Family, Fit, FitData, OnStep
from longhaul_training.training.families.incremental import _predict, load_sklearn

__all__ = ["export_onnx", "families"]

log = logging.getLogger(__name__)


def _estimator(name: str, data: FitData) -> Any:
    p = data.params
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        common = {
            "n_estimators": p["n_estimators"],
            "max_depth": p["max_depth"] or None,
            "min_samples_leaf": p["min_samples_leaf"],
            "max_features": None if p["max_features"] == "all" else p["max_features"],
            "n_jobs": p["threads"],
            "random_state": data.seed,
        }
        if data.task == "classification":
            return RandomForestClassifier(**common)
        return RandomForestRegressor(**common)
    if name == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=data.seed)
    from sklearn.linear_model import Ridge

    return Ridge(alpha=p["alpha"])


class OneShotFit(Fit):
    """A fit of one estimator in one step."""

    def __init__(self, name: str, data: FitData, estimator: Any, steps_done: int) -> None:
        self.name, self.data, self.estimator = name, data, estimator
        self.steps_done = steps_done

    def run(self, on_step: OnStep) -> None:
        if self.steps_done >= 1:
            return
        from sklearn.exceptions import ConvergenceWarning

        data = self.data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.estimator.fit(data.X, data.y)
        self.steps_done = 1
        valid = None if data.X_valid is None else self.predict(data.X_valid)
        on_step(1, self.predict(data.X), valid)

    def predict(self, X: Array) -> Array:
        return _predict(self.estimator, self.data.task, self.data.classes, X)

    def save(self, directory: Path) -> None:
        from longhaul_training.training.artifacts import dump_skops

        if self.steps_done:
            dump_skops(self.estimator, directory / "estimator.skops")
        (directory / "fit.json").write_text(json.dumps({"steps_done": self.steps_done}))

    def export(self, directory: Path) -> list[str]:
        from longhaul_training.training.artifacts import dump_skops

        dump_skops(self.estimator, directory / "model.skops")
        files = ["model.skops"]
        if export_onnx(self.estimator, self.data.X.shape[1], directory / "model.onnx"):
            files.append("model.onnx")
        return files


def export_onnx(estimator: Any, width: int, path: Path) -> bool:
    """Writes the estimator as ONNX (input "X", float32, `width` columns); False if it cannot."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType

        options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
        model = convert_sklearn(
            estimator, initial_types=[("X", FloatTensorType([None, width]))], options=options
        )
    except Exception as exc:  # a converter gap must not fail a finished training
        log.warning("no ONNX export", extra={"reason": type(exc).__name__})
        return False
    path.write_bytes(model.SerializeToString())
    return True


def _family(name: str) -> Family:
    def start(data: FitData) -> Fit:
        return OneShotFit(name, data, _estimator(name, data), 0)

    def resume(data: FitData, directory: Path) -> Fit:
        from longhaul_training.training.artifacts import load_skops

        done = int(json.loads((directory / "fit.json").read_text())["steps_done"])
        if not done:
            return start(data)
        return OneShotFit(name, data, load_skops(directory / "estimator.skops"), done)

    return Family(name, scale_target=False, start=start, resume=resume, load=load_sklearn)


def families() -> dict[str, Family]:
    """This module's families."""
    return {name: _family(name) for name in ("random_forest", "logistic", "ridge")}
