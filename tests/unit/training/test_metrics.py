"""Metrics agree with scikit-learn's; bootstrap intervals are seeded and hold the value."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss, mean_absolute_error, r2_score, roc_auc_score

from longhaul_training.training.metrics import score, with_intervals


def test_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    positive = np.clip(y * 0.6 + rng.random(200) * 0.4, 0.01, 0.99)
    proba = np.column_stack([1 - positive, positive])
    got = score("classification", y, proba)
    assert np.isclose(got["logloss"], log_loss(y, proba))
    assert np.isclose(got["auc"], roc_auc_score(y, positive))
    values = rng.normal(size=200)
    predicted = values + rng.normal(scale=0.3, size=200)
    got = score("regression", values, predicted)
    assert np.isclose(got["mae"], mean_absolute_error(values, predicted))
    assert np.isclose(got["r2"], r2_score(values, predicted))


def test_bootstrap_intervals_are_seeded_and_hold_the_value() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=150)
    predicted = values + rng.normal(scale=0.5, size=150)
    first = with_intervals("regression", values, predicted, seed=4)
    assert first == with_intervals("regression", values, predicted, seed=4)
    assert first != with_intervals("regression", values, predicted, seed=5)
    for metric in first.values():
        low, high = metric["ci95"]
        assert low <= metric["value"] <= high
