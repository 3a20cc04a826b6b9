"""scikit-learn incremental families, trained through `partial_fit`, checkpointed per epoch.

sgd: SGDClassifier (log loss) / SGDRegressor (squared error); mlp: MLPClassifier /
MLPRegressor (adam). Each epoch is one `partial_fit` over the training rows in an order drawn
from a `numpy.random.Generator(PCG64)` seeded by the spec (the estimators' own shuffling is
off, `shuffle=False`). The checkpoint holds the estimator (`estimator.skops`, loaded back
only with the service's allowlist: it includes MLP's AdamOptimizer), the generator's state
(`rng.json`) and the epochs done (`fit.json`). The finished model is `model.skops`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from longhaul_training.training.families.base import (
    Array,
    Family,
    Fit,
    FitData,
    OnStep,
    Predictor,
    full_proba,
)

__all__ = ["families"]


def _estimator(name: str, data: FitData) -> Any:
    p = data.params
    if name == "sgd":
        from sklearn.linear_model import SGDClassifier, SGDRegressor

        common = {
            "penalty": p["penalty"],
            "alpha": p["alpha"],
            "l1_ratio": p["l1_ratio"],
            "learning_rate": p["learning_rate"],
            "eta0": p["eta0"],
            "shuffle": False,
            "random_state": data.seed,
            "tol": None,
        }
        if data.task == "classification":
            return SGDClassifier(loss="log_loss", **common)
        return SGDRegressor(loss="squared_error", **common)
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    common = {
        "hidden_layer_sizes": (p["hidden_units"],) * p["layers"],
        "activation": p["activation"],
        "alpha": p["alpha"],
        "learning_rate_init": p["learning_rate"],
        "batch_size": min(p["batch_size"], len(data.y)),
        "shuffle": False,
        "random_state": data.seed,
        "solver": "adam",
    }
    if data.task == "classification":
        return MLPClassifier(**common)
    return MLPRegressor(**common)


def _predict(estimator: Any, task: str, classes: int, X: Array) -> Array:
    if task == "classification":
        return full_proba(estimator.classes_, estimator.predict_proba(X), classes)
    return np.asarray(estimator.predict(X), dtype=np.float64)


class IncrementalFit(Fit):
    """An SGD or MLP fit: the estimator, the epoch order generator, the epochs done."""

    def __init__(
        self, name: str, data: FitData, estimator: Any, rng: np.random.Generator, steps_done: int
    ) -> None:
        self.name, self.data, self.estimator, self.rng = name, data, estimator, rng
        self.steps_done = steps_done

    def run(self, on_step: OnStep) -> None:
        data = self.data
        while self.steps_done < data.steps:
            order = self.rng.permutation(len(data.y))
            from sklearn.exceptions import ConvergenceWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if self.steps_done == 0 and data.task == "classification":
                    self.estimator.partial_fit(
                        data.X[order], data.y[order], classes=np.arange(data.classes)
                    )
                else:
                    self.estimator.partial_fit(data.X[order], data.y[order])
            self.steps_done += 1
            valid = None if data.X_valid is None else self.predict(data.X_valid)
            if on_step(self.steps_done, self.predict(data.X), valid):
                return

    def predict(self, X: Array) -> Array:
        return _predict(self.estimator, self.data.task, self.data.classes, X)

    def save(self, directory: Path) -> None:
        from longhaul_training.training.artifacts import dump_skops

        dump_skops(self.estimator, directory / "estimator.skops")
        (directory / "rng.json").write_text(json.dumps(self.rng.bit_generator.state))
        (directory / "fit.json").write_text(json.dumps({"steps_done": self.steps_done}))

    def export(self, directory: Path) -> list[str]:
        from longhaul_training.training.artifacts import dump_skops

        dump_skops(self.estimator, directory / "model.skops")
        return ["model.skops"]


class SklearnPredictor(Predictor):
    """A finished scikit-learn model from model.skops (allowlisted types only)."""

    def __init__(self, estimator: Any, task: str, classes: int) -> None:
        self.estimator, self.task, self.classes = estimator, task, classes

    def predict(self, X: Array) -> Array:
        return _predict(self.estimator, self.task, self.classes, X)

    def weights(self) -> dict[str, Array]:
        e = self.estimator
        out: dict[str, Array] = {}
        for attr in ("coef_", "intercept_"):
            if hasattr(e, attr):
                out[attr] = np.asarray(getattr(e, attr))
        for attr in ("coefs_", "intercepts_"):
            for i, value in enumerate(getattr(e, attr, [])):
                out[f"{attr}{i}"] = np.asarray(value)
        for i, tree in enumerate(getattr(e, "estimators_", [])):
            out[f"tree{i}.threshold"] = np.asarray(tree.tree_.threshold)
            out[f"tree{i}.value"] = np.asarray(tree.tree_.value)
        return out


def load_sklearn(model_dir: Path) -> Predictor:
    """The scikit-learn predictor of a model directory, task and classes from its card."""
    from longhaul_training.training.artifacts import load_skops

    card = json.loads((model_dir / "card.json").read_text())
    features = json.loads((model_dir / "features.json").read_text())
    classes = len(features["labels"]) if card["task"] == "classification" else 0
    return SklearnPredictor(load_skops(model_dir / "model.skops"), card["task"], classes)


def _family(name: str) -> Family:
    def start(data: FitData) -> Fit:
        return IncrementalFit(
            name, data, _estimator(name, data), np.random.default_rng(data.seed), 0
        )

    def resume(data: FitData, directory: Path) -> Fit:
        from longhaul_training.training.artifacts import load_skops

        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads((directory / "rng.json").read_text())
        done = int(json.loads((directory / "fit.json").read_text())["steps_done"])
        return IncrementalFit(name, data, load_skops(directory / "estimator.skops"), rng, done)

    return Family(name, scale_target=True, start=start, resume=resume, load=load_sklearn)


def families() -> dict[str, Family]:
    """This module's families."""
    return {"sgd": _family("sgd"), "mlp": _family("mlp")}
