"""Small generated datasets and a way to run the trainer as a real child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from tests.support.training import with_bytecode_cache

ROWS = int(os.environ.get("LONGHAUL_TEST_TRAINING_ROWS", "400"))
FEATURES = 8


def classification_table(rows: int = ROWS, classes: int = 3, seed: int = 0) -> pa.Table:
    """Numeric features (a few missing), a string feature, and a string label."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        rows, FEATURES, n_informative=5, n_classes=classes, random_state=seed
    )
    columns: dict[str, Any] = {f"f{i}": X[:, i].copy() for i in range(FEATURES)}
    columns["f0"][::17] = np.nan
    colors = np.array(["red", "green", "blue", None], dtype=object)
    columns["color"] = pa.array(colors[(np.arange(rows) * 7) % 4].tolist(), pa.string())
    names = np.array(["ant", "bee", "cat", "dog", "eel"])
    columns["label"] = pa.array(names[y].tolist())
    return pa.table(columns)


def regression_table(rows: int = ROWS, seed: int = 0) -> pa.Table:
    """Numeric features and a float target."""
    from sklearn.datasets import make_regression

    X, y = make_regression(rows, FEATURES, n_informative=6, noise=5.0, random_state=seed)
    columns: dict[str, Any] = {f"f{i}": X[:, i] for i in range(FEATURES)}
    columns["value"] = y
    return pa.table(columns)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """CSV files: "classification" (label, 3 classes) and "regression" (value)."""
    root = tmp_path_factory.mktemp("datasets")
    paths = {"classification": root / "classes.csv", "regression": root / "values.csv"}
    pcsv.write_csv(classification_table(), paths["classification"])
    pcsv.write_csv(regression_table(), paths["regression"])
    return paths


CONCURRENT_FAMILIES = int(os.environ.get("LONGHAUL_TEST_TRAINING_CONCURRENCY", "2"))
RESUME_TEST = "test_killed_and_terminated_run_resumed_elsewhere_ends_with_the_uninterrupted_model"


@pytest.fixture(scope="session", autouse=True)
def resume_chains(
    request: pytest.FixtureRequest,
    datasets: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Future[Any]]]:
    """test_resume's trainer processes for the selected families, started with the first test
    of this folder and run in the background, two families at a time, in test order: their
    processes use the second core while this process runs the other tests."""
    from tests.unit.training.test_resume import start_chains

    selected = [
        item.callspec.params["family"]
        for item in request.session.items
        if getattr(item, "originalname", "") == RESUME_TEST and hasattr(item, "callspec")
    ]
    root = tmp_path_factory.mktemp("resume")
    with ThreadPoolExecutor(max_workers=CONCURRENT_FAMILIES) as pool:
        yield start_chains(selected, datasets, root, pool)


@dataclass
class Trainer:
    """A trainer child process and the JSON lines it printed so far."""

    process: subprocess.Popen[str]
    stderr: Path
    lines: list[dict[str, Any]] = field(default_factory=list)

    def errors(self) -> str:
        """The end of what the process wrote on stderr."""
        return self.stderr.read_text()[-2000:] if self.stderr.exists() else ""

    def until(self, kind: str) -> dict[str, Any]:
        """Reads lines until one of `kind`; fails if the process ends first."""
        stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        for raw in stdout:
            line: dict[str, Any] = json.loads(raw)
            self.lines.append(line)
            if line["kind"] == kind:
                return line
        raise AssertionError(
            f"the trainer ended before a {kind} line: {self.lines[-3:]} {self.errors()}"
        )

    def finish(self, timeout: float = 100) -> int:
        """Reads the rest of the output and answers the exit code."""
        out, _ = self.process.communicate(timeout=timeout)
        self.lines += [json.loads(raw) for raw in out.splitlines() if raw.strip()]
        return self.process.returncode


def start_trainer(spec: dict[str, Any], data: Path, workdir: Path, pause_s: float = 0.0) -> Trainer:
    """Starts `python -m longhaul_training.training.trainer` on the spec, data and workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = workdir.parent / f"{workdir.name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    # The trainers share the bytecode the first of them compiled (see with_bytecode_cache).
    env = with_bytecode_cache({**os.environ, "LONGHAUL_TRAINING_STEP_PAUSE_S": str(pause_s)})
    stderr = workdir.parent / f"{workdir.name}.{len(list(workdir.parent.glob('*.stderr')))}.stderr"
    with stderr.open("w") as errors:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "longhaul_training.training.trainer",
                "--spec",
                str(spec_path),
                "--data",
                str(data),
                "--format",
                "csv",
                "--workdir",
                str(workdir),
            ],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
    return Trainer(process, stderr)


@pytest.fixture
def trainers() -> Iterator[list[Trainer]]:
    """Trainers a test starts; any still running at its end are killed."""
    started: list[Trainer] = []
    yield started
    for trainer in started:
        if trainer.process.poll() is None:
            trainer.process.kill()
            trainer.process.wait()
        if trainer.process.stdout:
            trainer.process.stdout.close()


def run_in_process(spec: dict[str, Any], data: Path, workdir: Path) -> dict[str, Any]:
    """The trainer's `run` in this process, uninterrupted; torch's global settings restored."""
    import torch

    from longhaul_training.training.spec import TrainSpec
    from longhaul_training.training.trainer import run

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        return run(
            TrainSpec.model_validate(spec), data, "csv", workdir, lambda _: None, lambda: False
        )
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
