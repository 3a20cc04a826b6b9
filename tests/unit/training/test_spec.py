"""TrainSpec: bad params get a clear reason; a spec checked against a dataset's profile."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from longhaul_training.training.datasets import ColumnProfile, DatasetInfo, DatasetRejected
from longhaul_training.training.spec import TrainSpec


def _spec(**changes: Any) -> TrainSpec:
    fields: dict[str, Any] = {
        "target": "y",
        "task": "regression",
        "family": "lightgbm",
        "validation": {"holdout": 0.2},
        **changes,
    }
    return TrainSpec.model_validate(fields)


def _refused(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        _spec(**changes)
    return str(caught.value)


def test_unknown_params_are_refused_by_name() -> None:
    reason = _refused(params={"n_rounds": 10, "bagging_fraction": 0.5})
    assert "unknown params for lightgbm: ['bagging_fraction']" in reason


def test_params_are_bounded_and_typed() -> None:
    assert "must be at least 1" in _refused(params={"n_rounds": 0})
    assert "must be at most 1.0" in _refused(params={"learning_rate": 2.0})
    assert "must be int" in _refused(params={"num_leaves": "many"})
    assert "must be one of" in _refused(family="sgd", params={"penalty": "l3"})
    assert _spec(params={"learning_rate": 1}).params["learning_rate"] == 1.0


def test_family_task_metric_and_validation_must_agree() -> None:
    assert "does not do regression" in _refused(family="logistic")
    assert "does not do classification" in _refused(family="ridge", task="classification")
    assert "metric 'auc' is not one of" in _refused(metric="auc")
    assert "exactly one of holdout" in _refused(validation={"holdout": 0.2, "folds": 3})
    assert "exactly one of holdout" in _refused(validation={})


def test_defaults_fill_in_by_family() -> None:
    assert _spec().checkpoint_every == 10
    assert _spec(family="sgd").checkpoint_every == 1
    assert _spec().primary_metric == "rmse"
    assert _spec(family="sgd").resolved_params()["epochs"] == 20
    assert _spec(family="sgd").steps_per_fit() == 20
    assert _spec(family="ridge").steps_per_fit() == 1


def _info(target: ColumnProfile, rows: int = 100) -> DatasetInfo:
    feature = ColumnProfile(name="x", type="float", missing=0, distinct=90)
    return DatasetInfo(
        format="csv",
        rows=rows,
        columns=2,
        schema_=[feature, target],
        target_candidates=[],
        sha256="0" * 64,
        bytes=1000,
    )


def _check(spec: TrainSpec, info: DatasetInfo) -> str:
    with pytest.raises(DatasetRejected) as caught:
        spec.check_against(info)
    return caught.value.reason


def test_check_against_refuses_what_cannot_train() -> None:
    numeric = ColumnProfile(name="y", type="float", missing=0, distinct=50)
    text = ColumnProfile(name="y", type="string", missing=0, distinct=3)
    constant = ColumnProfile(name="y", type="integer", missing=0, distinct=1)
    assert _check(_spec(target="z"), _info(numeric)) == "the dataset has no column named 'z'"
    assert "regression needs a numeric target" in _check(_spec(), _info(text))
    assert "holds a single value" in _check(_spec(), _info(constant))
    assert "too few for this validation" in _check(_spec(), _info(numeric, rows=20))
    classify = _spec(task="classification")
    assert "classification takes at most" in _check(classify, _info(numeric))
    auc = _spec(task="classification", metric="auc")
    assert "exactly two classes" in _check(auc, _info(text))
    _spec().check_against(_info(numeric))
    classify.check_against(_info(text))
