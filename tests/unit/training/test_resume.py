"""Exact resume, proved with real trainer processes for every family.

For each family a reference run goes uninterrupted (the trainer's `run`, in this process:
the CLI calls the same function, and test_trainer proves a CLI run equal to it); a trainer
process on another workdir is SIGKILLed at a random moment after its first checkpoint line,
restarted on the same workdir and sent SIGTERM at a random moment after its first checkpoint
line (it must checkpoint, print the line and exit 75); its checkpoint directory is then
copied to a fresh workdir (another worker) and a third process finishes the job there. The
finished model must predict exactly what the reference predicts on the holdout
(np.array_equal, not allclose), with identical weights where the family exposes them and
identical metrics on its card. `LONGHAUL_TRAINING_STEP_PAUSE_S` slows steps just enough that
each signal lands mid-run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from longhaul_training.training.artifacts import load_model
from longhaul_training.training.checkpoint import find_checkpoint
from longhaul_training.training.datasets import load_table
from longhaul_training.training.features import FeatureMap
from longhaul_training.training.spec import TrainSpec
from longhaul_training.training.trainer import EXIT_STOPPED, splits
from tests.unit.training.conftest import Trainer, run_in_process, start_trainer

PAUSE_S = float(os.environ.get("LONGHAUL_TEST_TRAINING_PAUSE_S", "0.2"))

CASES: dict[str, dict[str, Any]] = {
    "lightgbm": {
        "task": "classification",
        "params": {"n_rounds": 20, "num_leaves": 7, "min_data_in_leaf": 5},
        "validation": {"holdout": 0.25},
        "checkpoint_every": 4,
    },
    "sgd": {"task": "regression", "params": {"epochs": 8}, "validation": {"holdout": 0.25}},
    "mlp": {
        "task": "classification",
        "params": {"epochs": 8, "hidden_units": 16, "batch_size": 32},
        "validation": {"holdout": 0.25},
    },
    "random_forest": {
        "task": "regression",
        "params": {"n_estimators": 8, "max_depth": 6},
        "validation": {"folds": 4},
    },
    "logistic": {"task": "classification", "params": {}, "validation": {"folds": 4}},
    "ridge": {"task": "regression", "params": {"alpha": 0.5}, "validation": {"folds": 4}},
    "torch_mlp": {
        "task": "classification",
        "params": {"epochs": 8, "hidden_units": 16, "dropout": 0.2, "batch_size": 32},
        "validation": {"holdout": 0.25},
    },
}


def _spec(family: str) -> dict[str, Any]:
    case = CASES[family]
    target = "label" if case["task"] == "classification" else "value"
    return {"target": target, "family": family, "seed": 7, **case}


def _signal_after_checkpoint(
    trainer: Trainer, signum: int, rng: random.Random, within_s: float
) -> None:
    trainer.until("checkpoint")
    delay = rng.uniform(0, within_s)
    with contextlib.suppress(subprocess.TimeoutExpired):  # still running: the normal case
        trainer.process.wait(timeout=delay)
    assert trainer.process.poll() is None, "the trainer finished before the signal; slow it"
    trainer.process.send_signal(signum)


def start_chains(
    families: list[str], datasets: dict[str, Path], root: Path, pool: ThreadPoolExecutor
) -> dict[str, Future[Chain]]:
    """Starts the interrupted runs of these families (conftest's `resume_chains` calls it)."""
    return {
        family: pool.submit(
            _interrupted_chain, family, datasets[CASES[family]["task"]], root / family
        )
        for family in families
    }


@dataclass
class Chain:
    """What one family's interrupted runs left: the finished workdir and the stop step."""

    workdir: Path
    stopped_at: int
    continued_from: int
    seed: int


def _interrupted_chain(family: str, data: Path, root: Path) -> Chain:
    """SIGKILL, resume, SIGTERM, then finish on a copied workdir: three trainer processes."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    spec = _spec(family)
    started: list[Trainer] = []
    try:
        first = start_trainer(spec, data, root / "worker-a", PAUSE_S)
        started.append(first)
        _signal_after_checkpoint(first, signal.SIGKILL, rng, 1.5 * PAUSE_S)
        assert first.finish() == -signal.SIGKILL
        assert find_checkpoint(root / "worker-a") is not None

        second = start_trainer(spec, data, root / "worker-a", PAUSE_S)
        started.append(second)
        # Within one step of the checkpoint line: a step and its stop check are still ahead
        # even where that line was the one before the last fold's (the final all-rows fit
        # and the export check no stop: a SIGTERM there lets the run finish, exit 0).
        _signal_after_checkpoint(second, signal.SIGTERM, rng, PAUSE_S)
        assert second.finish() == EXIT_STOPPED, second.errors()
        last = second.lines[-1]
        assert last["kind"] == "checkpoint", "SIGTERM must end with a checkpoint line"

        moved = root / "worker-b"
        moved.mkdir()
        shutil.copytree(root / "worker-a" / "checkpoint", moved / "checkpoint")
        third = start_trainer(spec, data, moved)
        started.append(third)
        assert third.finish() == 0, third.errors()
        steps = [line["step"] for line in third.lines if line["kind"] == "metrics"]
        return Chain(moved, int(last["step"]), steps[0] - 1 if steps else -1, seed)
    finally:
        for trainer in started:
            if trainer.process.poll() is None:
                trainer.process.kill()
                trainer.process.wait()


_TEST = "test_killed_and_terminated_run_resumed_elsewhere_ends_with_the_uninterrupted_model"


@pytest.mark.parametrize("family", list(CASES))
def test_killed_and_terminated_run_resumed_elsewhere_ends_with_the_uninterrupted_model(
    family: str, datasets: dict[str, Path], tmp_path: Path, resume_chains: dict[str, Future[Any]]
) -> None:
    spec = _spec(family)
    data = datasets[spec["task"]]
    run_in_process(spec, data, tmp_path / "reference")
    chain: Chain = resume_chains[family].result()
    assert chain.continued_from == chain.stopped_at, "the moved run continues where TERM stopped"
    _assert_same_model(
        tmp_path / "reference" / "model", chain.workdir / "model", spec, data, chain.seed
    )


def _assert_same_model(
    expected_dir: Path, got_dir: Path, spec: dict[str, Any], data: Path, seed: int
) -> None:
    expected, got = load_model(expected_dir), load_model(got_dir)
    table = load_table(data, "csv")
    train_spec = TrainSpec.model_validate(spec)
    _, holdout = splits(train_spec, table.num_rows)[0]
    assert holdout is not None
    rows = table.take(holdout)
    note = f"(random kill seed {seed})"
    assert got.predict(rows).equals(expected.predict(rows)), f"predictions differ {note}"
    features = FeatureMap.from_json(json.loads((got_dir / "features.json").read_text()))
    matrix = features.matrix(rows)
    assert np.array_equal(got.predict_matrix(matrix), expected.predict_matrix(matrix)), note
    weights, reference_weights = got.weights(), expected.weights()
    assert weights.keys() == reference_weights.keys()
    for name, value in reference_weights.items():
        assert np.array_equal(weights[name], value), f"weights {name} differ {note}"
    assert weights, "every family exposes its learned numbers"
    card = json.loads((got_dir / "card.json").read_text())
    reference_card = json.loads((expected_dir / "card.json").read_text())
    assert card["metrics"] == reference_card["metrics"]
