"""LightGBM: gradient-boosted trees, checkpointed every N rounds by continuing the booster.

Determinism: `deterministic=True`, `force_row_wise=True`, `num_threads` fixed by the
`threads` param, `seed` from the spec, no bagging or feature subsampling (their samplers'
state is not in a saved booster). The checkpoint is the booster's model text
(`booster.txt`, all rounds so far); a resumed fit passes it as `init_model`, so LightGBM
starts from the saved trees' raw scores; the leaf values in the text round-trip exactly, and
the continued run adds the same trees as the uninterrupted one. The finished model is
`model.skops` holding {"format": "lightgbm", "model": <model text>} (plain str and dict).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from longhaul_training.training.families.base import Array, Family, Fit, FitData, OnStep, Predictor

__all__ = ["families"]

_STATE = "booster.txt"


def _params(data: FitData) -> dict[str, Any]:
    p = data.params
    params: dict[str, Any] = {
        "learning_rate": p["learning_rate"],
        "num_leaves": p["num_leaves"],
        "max_depth": p["max_depth"],
        "min_data_in_leaf": p["min_data_in_leaf"],
        "lambda_l1": p["lambda_l1"],
        "lambda_l2": p["lambda_l2"],
        "min_gain_to_split": p["min_gain_to_split"],
        "max_bin": p["max_bin"],
        "num_threads": p["threads"],
        "deterministic": True,
        "force_row_wise": True,
        "seed": data.seed,
        "bagging_fraction": 1.0,
        "feature_fraction": 1.0,
        "metric": "None",
        "verbose": -1,
    }
    if data.task == "regression":
        params["objective"] = "regression"
    elif data.classes == 2:
        params["objective"] = "binary"
    else:
        params.update(objective="multiclass", num_class=data.classes)
    return params


def _proba(raw: Array, classes: int) -> Array:
    if classes == 2:
        return np.column_stack([1.0 - raw, raw])
    return raw


class GbmFit(Fit):
    """A LightGBM fit; its state is the model text of the rounds done."""

    def __init__(self, data: FitData, model_text: str | None) -> None:
        self.data = data
        self.model_text = model_text
        self.booster: lgb.Booster | None = None
        self.steps_done = (
            0 if model_text is None else lgb.Booster(model_str=model_text).current_iteration()
        )

    def _out(self, raw: Array) -> Array:
        raw = np.array(raw, dtype=np.float64, copy=True)
        return _proba(raw, self.data.classes) if self.data.task == "classification" else raw

    def run(self, on_step: OnStep) -> None:
        data = self.data
        remaining = data.steps - self.steps_done
        if remaining <= 0:
            return
        params = _params(data)
        train = lgb.Dataset(
            data.X,
            data.y,
            params={"max_bin": params["max_bin"], "verbose": -1},
            free_raw_data=False,
        )
        valid_sets = []
        if data.X_valid is not None:
            valid_sets.append(
                lgb.Dataset(data.X_valid, data.y_valid, reference=train, free_raw_data=False)
            )
        init = None if self.model_text is None else lgb.Booster(model_str=self.model_text)

        def after_round(env: Any) -> None:
            self.booster = env.model
            self.steps_done = env.iteration + 1
            inner = env.model._Booster__inner_predict
            train_pred = self._out(inner(data_idx=0))
            valid_pred = self._out(inner(data_idx=1)) if valid_sets else None
            if on_step(self.steps_done, train_pred, valid_pred):
                raise lgb.callback.EarlyStopException(env.iteration, [])

        booster = lgb.train(
            params,
            train,
            num_boost_round=remaining,
            valid_sets=valid_sets,
            init_model=init,
            callbacks=[after_round],
            keep_training_booster=True,
        )
        self.model_text = booster.model_to_string(num_iteration=-1)
        self.booster = None

    def _text(self) -> str:
        if self.booster is not None:
            return str(self.booster.model_to_string(num_iteration=-1))
        if self.model_text is None:
            raise RuntimeError("no round has run")
        return self.model_text

    def predict(self, X: Array) -> Array:
        raw = lgb.Booster(model_str=self._text()).predict(X, num_iteration=-1)
        return self._out(np.asarray(raw))

    def save(self, directory: Path) -> None:
        (directory / _STATE).write_text(self._text())

    def export(self, directory: Path) -> list[str]:
        from longhaul_training.training.artifacts import dump_skops

        dump_skops(
            {
                "format": "lightgbm",
                "model": self._text(),
                "task": self.data.task,
                "classes": self.data.classes,
            },
            directory / "model.skops",
        )
        return ["model.skops"]


class GbmPredictor(Predictor):
    """A finished LightGBM model from model.skops."""

    def __init__(self, text: str, task: str, classes: int) -> None:
        self.text, self.task, self.classes = text, task, classes
        self.booster = lgb.Booster(model_str=text)

    def predict(self, X: Array) -> Array:
        raw = np.asarray(self.booster.predict(X, num_iteration=-1), dtype=np.float64)
        return _proba(raw, self.classes) if self.task == "classification" else raw

    def weights(self) -> dict[str, Array]:
        trees = self.text.split("end of trees")[0]
        return {"trees": np.frombuffer(trees.encode(), dtype=np.uint8)}


def _load(model_dir: Path) -> Predictor:
    from longhaul_training.training.artifacts import ModelRejected, load_skops

    stored = load_skops(model_dir / "model.skops")
    if not isinstance(stored, dict) or stored.get("format") != "lightgbm":
        raise ModelRejected("the model file is not a LightGBM model")
    return GbmPredictor(str(stored["model"]), str(stored["task"]), int(stored["classes"]))


def _resume(data: FitData, directory: Path) -> Fit:
    return GbmFit(data, (directory / _STATE).read_text())


def families() -> dict[str, Family]:
    """This module's family."""
    return {
        "lightgbm": Family(
            "lightgbm",
            scale_target=False,
            start=lambda d: GbmFit(d, None),
            resume=_resume,
            load=_load,
        )
    }
