"""Metrics of a model's predictions, and their 95% bootstrap confidence intervals.

Predictions are what families answer: class probabilities of shape (rows, classes) for
classification against integer class codes, values of shape (rows,) for regression.
`score(task, y, pred)` answers every metric of the task (auc only with two classes);
`with_intervals(task, y, pred, seed)` adds a seeded percentile bootstrap over the rows.
Plain numpy, so the trainer does not import scikit-learn for this.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BOOTSTRAP_SAMPLES", "score", "with_intervals"]

BOOTSTRAP_SAMPLES = 200
_EPS = 1e-15

Array = npt.NDArray[Any]


def score(task: str, y: Array, pred: Array) -> dict[str, float]:
    """Every metric of the task for these predictions."""
    if task == "classification":
        return _classification(y, pred)
    return _regression(y, pred)


def _classification(y: Array, proba: Array) -> dict[str, float]:
    rows = np.arange(len(y))
    picked = np.clip(proba[rows, y], _EPS, 1.0)
    out = {
        "logloss": float(-np.mean(np.log(picked))),
        "accuracy": float(np.mean(np.argmax(proba, axis=1) == y)),
    }
    if proba.shape[1] == 2:
        out["auc"] = _auc(y, proba[:, 1])
    return out


def _auc(y: Array, positive: Array) -> float:
    """Area under the ROC curve from ranks (ties share their average rank)."""
    n_pos = int(np.sum(y == 1))
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(positive, kind="mergesort")
    ranked = positive[order]
    ranks = np.empty(len(y), dtype=np.float64)
    _, starts, counts = np.unique(ranked, return_index=True, return_counts=True)
    average = starts + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((np.sum(ranks[y == 1]) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _regression(y: Array, pred: Array) -> dict[str, float]:
    error = pred - y
    total = float(np.sum((y - np.mean(y)) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(1.0 - np.sum(error**2) / total) if total > 0 else float("nan"),
    }


def with_intervals(
    task: str, y: Array, pred: Array, seed: int, samples: int = BOOTSTRAP_SAMPLES
) -> dict[str, dict[str, Any]]:
    """Each metric as {"value", "ci95": [low, high]}: a percentile bootstrap over the rows."""
    point = score(task, y, pred)
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[float]] = {name: [] for name in point}
    for _ in range(samples):
        pick = rng.integers(0, len(y), len(y))
        for name, value in score(task, y[pick], pred[pick]).items():
            if name in drawn and np.isfinite(value):
                drawn[name].append(value)
    out: dict[str, dict[str, Any]] = {}
    for name, value in point.items():
        values = drawn[name]
        low, high = np.percentile(values, [2.5, 97.5]) if values else (np.nan, np.nan)
        out[name] = {"value": _finite(value), "ci95": [_finite(low), _finite(high)]}
    return out


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
