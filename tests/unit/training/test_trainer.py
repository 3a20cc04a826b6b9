"""The trainer: its JSON lines, folds, the stop callable, user errors, the card; and a CLI
run ending with exactly the model of an in-process run (which test_resume relies on)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from longhaul_training.training.artifacts import load_model
from longhaul_training.training.checkpoint import find_checkpoint
from longhaul_training.training.datasets import load_table
from longhaul_training.training.spec import TrainSpec
from longhaul_training.training.trainer import EXIT_USER_ERROR, TrainingRejected, run
from tests.unit.training.conftest import Trainer, run_in_process, start_trainer


def _spec(**changes: Any) -> dict[str, Any]:
    return {
        "target": "label",
        "task": "classification",
        "family": "lightgbm",
        "params": {"n_rounds": 12, "num_leaves": 7},
        "validation": {"holdout": 0.25},
        "seed": 5,
        "checkpoint_every": 5,
        **changes,
    }


def _run(spec: dict[str, Any], data: Path, workdir: Path, stop_after: int | None = None) -> Any:
    lines: list[dict[str, Any]] = []

    def stop() -> bool:
        metrics = [line for line in lines if line["kind"] == "metrics"]
        return stop_after is not None and len(metrics) >= stop_after

    result = run(TrainSpec.model_validate(spec), data, "csv", workdir, lines.append, stop)
    return result, lines


def test_lines_report_every_round_each_checkpoint_and_the_end(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    result, lines = _run(_spec(), datasets["classification"], tmp_path)
    metrics = [line for line in lines if line["kind"] == "metrics"]
    assert [m["step"] for m in metrics] == list(range(1, 13))
    assert all(m["of"] == 12 for m in metrics)
    assert set(metrics[0]["train"]) == {"logloss", "accuracy"} == set(metrics[0]["valid"])
    assert metrics[-1]["train"]["logloss"] < metrics[0]["train"]["logloss"]
    assert [line["step"] for line in lines if line["kind"] == "checkpoint"] == [5, 10, 12]
    assert lines[-1] == result
    assert result["kind"] == "done"
    assert result["metric"] == "logloss"
    for value in result["metrics"].values():
        low, high = value["ci95"]
        assert low <= value["value"] <= high
    files = {p.name for p in (tmp_path / "model").iterdir()}
    assert files == {"model.skops", "features.json", "card.json", "card.md"}


def test_the_card_says_what_was_trained_on_what(datasets: dict[str, Path], tmp_path: Path) -> None:
    data = datasets["classification"]
    _run(_spec(), data, tmp_path)
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["dataset_id"] is None, "the service fills it in"
    assert card["dataset_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert [c["name"] for c in card["schema"]][-1] == "label"
    assert (card["target"], card["task"], card["family"], card["seed"]) == (
        "label",
        "classification",
        "lightgbm",
        5,
    )
    assert card["params"]["n_rounds"] == 12
    assert card["params"]["learning_rate"] == 0.1, "defaults are filled in"
    assert {"lightgbm", "numpy", "pyarrow"} <= set(card["library_versions"])
    assert card["training_time_s"] >= 0
    assert card["labels"] == ["ant", "bee", "cat"]
    markdown = (tmp_path / "model" / "card.md").read_text()
    assert "| logloss (optimized) |" in markdown
    assert card["dataset_sha256"] in markdown


def test_folds_train_each_fold_then_all_rows(datasets: dict[str, Path], tmp_path: Path) -> None:
    spec = _spec(
        family="sgd",
        task="regression",
        target="value",
        params={"epochs": 2},
        validation={"folds": 3},
        checkpoint_every=None,
    )
    result, lines = _run(spec, datasets["regression"], tmp_path)
    metrics = [line for line in lines if line["kind"] == "metrics"]
    assert [(m["fold"], m["step"]) for m in metrics] == [
        (0, 1),
        (0, 2),
        (1, 3),
        (1, 4),
        (2, 5),
        (2, 6),
        (3, 7),
        (3, 8),
    ]
    assert all(m["valid"] for m in metrics[:6])
    assert metrics[6]["valid"] == {}, "the final fit on all rows has no validation rows"
    assert set(result["metrics"]) == {"rmse", "mae", "r2"}


def test_stop_checkpoints_and_a_rerun_finishes_the_same_model(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    spec = _spec(family="mlp", params={"epochs": 5, "hidden_units": 8}, checkpoint_every=None)
    data = datasets["classification"]
    stopped, lines = _run(spec, data, tmp_path / "stopped", stop_after=2)
    assert stopped == {"kind": "stopped", "step": 2}
    assert lines[-1] == {"kind": "checkpoint", "step": 2}
    assert not (tmp_path / "stopped" / "model").exists()
    resumed, lines = _run(spec, data, tmp_path / "stopped")
    assert lines[0]["step"] == 3
    _run(spec, data, tmp_path / "whole")
    a, b = load_model(tmp_path / "stopped" / "model"), load_model(tmp_path / "whole" / "model")
    for name, value in b.weights().items():
        assert np.array_equal(a.weights()[name], value), name
    assert (
        resumed["metrics"]
        == json.loads((tmp_path / "whole" / "model" / "card.json").read_text())["metrics"]
    )


def test_a_checkpoint_of_another_spec_is_refused(datasets: dict[str, Path], tmp_path: Path) -> None:
    data = datasets["classification"]
    _run(_spec(), data, tmp_path, stop_after=6)
    assert find_checkpoint(tmp_path) is not None
    with pytest.raises(TrainingRejected, match="another spec or dataset"):
        _run(_spec(seed=6), data, tmp_path)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"params": {"n_rounds": 5, "colour": 1}}, "unknown params for lightgbm: ['colour']"),
        ({"target": "missing"}, "the dataset has no column named 'missing'"),
        ({"task": "regression"}, "regression needs a numeric target"),
    ],
)
def test_user_errors_exit_2_with_a_reason(
    changes: dict[str, Any],
    reason: str,
    datasets: dict[str, Path],
    tmp_path: Path,
    trainers: list[Trainer],
) -> None:
    trainer = start_trainer(_spec(**changes), datasets["classification"], tmp_path / "w")
    trainers.append(trainer)
    assert trainer.finish() == EXIT_USER_ERROR
    assert trainer.lines[-1]["kind"] == "error"
    assert reason in trainer.lines[-1]["reason"]
    assert str(tmp_path) not in trainer.lines[-1]["reason"]


def test_a_cli_run_ends_with_the_model_of_an_in_process_run(
    datasets: dict[str, Path], tmp_path: Path, trainers: list[Trainer]
) -> None:
    spec = _spec()
    data = datasets["classification"]
    trainer = start_trainer(spec, data, tmp_path / "cli")
    trainers.append(trainer)
    run_in_process(spec, data, tmp_path / "here")
    assert trainer.finish() == 0, trainer.errors()
    cli, here = load_model(tmp_path / "cli" / "model"), load_model(tmp_path / "here" / "model")
    table = load_table(data, "csv")
    assert cli.predict(table).equals(here.predict(table))
    for name, value in here.weights().items():
        assert np.array_equal(cli.weights()[name], value), name
