"""The trainer: one train job, run as a child process, resumable exactly from its checkpoint.

    python -m longhaul_training.training.trainer --spec spec.json --data FILE \
        --format csv|parquet --workdir DIR

prints one JSON object per line on stdout and exits 0 (done), 75 (stopped by SIGTERM after a
checkpoint) or 2 (a user error: `{"kind":"error","reason":...}`); anything else is a crash.

- `{"kind":"metrics","step":n,"of":N,"fold":f,"train":{...},"valid":{...}}` after each round,
  epoch or one-shot fit (`valid` is {} for the final all-rows fit of k folds). Steps count
  over the whole job: k folds + 1 final fit, or one holdout fit, of `spec.steps_per_fit()`
  steps each. A resumed run repeats the steps after its checkpoint: consumers keep the last
  line per step.
- `{"kind":"checkpoint","step":n}` after each complete checkpoint: every
  `spec.checkpoint_every` steps, at the end of each fold, and on SIGTERM.
- `{"kind":"done","metrics":{...},"metric":name,"step":N}` at the end, after `<workdir>/model/`
  (see artifacts.py) is in place; metrics carry 95% bootstrap intervals (card.py).

Exactness: the splits come from the spec's seed; each fit's features are learned from its own
training rows; each family saves everything its next step depends on (see families/). A run
started on a workdir with a complete checkpoint continues from it, so a run killed at any
moment and restarted on the same or a copied workdir ends with exactly the model of an
uninterrupted run. A checkpoint from another spec or dataset is refused (exit 2).

In-process: `run(spec, data, fmt, workdir, emit, stop)` does the same and answers the done
line, or {"kind":"stopped","step":n} when `stop()` answered True (checked after each step).
`LONGHAUL_TRAINING_STEP_PAUSE_S` (tests only) sleeps that long after each step so a test can
signal the process mid-run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from longhaul_training.training.card import ModelCard, library_versions
from longhaul_training.training.checkpoint import find_checkpoint, write_checkpoint
from longhaul_training.training.datasets import (
    DatasetInfo,
    DatasetLimits,
    DatasetRejected,
    read_dataset,
)
from longhaul_training.training.families.base import Fit, FitData
from longhaul_training.training.features import FeatureMap, FeatureRejected
from longhaul_training.training.metrics import score, with_intervals
from longhaul_training.training.spec import TrainSpec

__all__ = ["EXIT_STOPPED", "EXIT_USER_ERROR", "TrainingRejected", "main", "run", "splits"]

EXIT_STOPPED = 75
EXIT_USER_ERROR = 2
PAUSE_ENV = "LONGHAUL_TRAINING_STEP_PAUSE_S"

Emit = Callable[[dict[str, Any]], None]
Array = Any


class TrainingRejected(ValueError):
    """The job cannot run as asked; `.reason` says why (a user error, exit 2)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def splits(spec: TrainSpec, rows: int) -> list[tuple[Array, Array | None]]:
    """(train rows, validation rows) of each fit: one holdout fit, or k folds and all rows."""
    order = np.random.default_rng(spec.seed).permutation(rows)
    if spec.validation.holdout is not None:
        n_valid = round(rows * spec.validation.holdout)
        return [(np.sort(order[n_valid:]), np.sort(order[:n_valid]))]
    parts = np.array_split(order, spec.validation.folds or 2)
    fits: list[tuple[Array, Array | None]] = []
    for index, part in enumerate(parts):
        rest = np.concatenate([p for i, p in enumerate(parts) if i != index])
        fits.append((np.sort(rest), np.sort(part)))
    fits.append((np.arange(rows), None))
    return fits


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def _fingerprint(spec: TrainSpec, sha256: str) -> str:
    return hashlib.sha256(f"{spec.model_dump_json()}|{sha256}".encode()).hexdigest()


def _with_target(table: pa.Table, target: str) -> pa.Table:
    column = table.column(target)
    keep = pc.is_valid(column)
    if pa.types.is_floating(column.type):
        keep = pc.and_(keep, pc.invert(pc.is_nan(column)))
    return table.filter(keep)


def run(
    spec: TrainSpec,
    data: Path,
    fmt: str,
    workdir: Path,
    emit: Emit,
    stop: Callable[[], bool],
    *,
    limits: DatasetLimits | None = None,
    pause_s: float = 0.0,
) -> dict[str, Any]:
    """Trains (or resumes) the job; answers the done line or {"kind":"stopped","step":n}."""
    started = time.monotonic()
    if fmt not in ("csv", "parquet"):
        raise TrainingRejected(f"the format {fmt!r} is not csv or parquet")
    table, info = read_dataset(data, fmt, limits or DatasetLimits())  # type: ignore[arg-type]
    spec.check_against(info)
    job = _Job(spec, _with_target(table, spec.target), info, workdir, emit, stop, pause_s, started)
    return job.run()


@dataclass
class _Job:
    """One run of a train job: its splits, its checkpoint state, the fits in turn."""

    spec: TrainSpec
    table: pa.Table
    info: DatasetInfo
    workdir: Path
    emit: Emit
    stop: Callable[[], bool]
    pause_s: float
    started: float
    elapsed_before: float = 0.0
    y_true: Array = None
    oof: Array = None
    final_valid: tuple[Array, Array] | None = None
    stopped_at: int | None = None

    def __post_init__(self) -> None:
        from longhaul_training.training.families import family

        self.impl = family(self.spec.family)
        self.fits = splits(self.spec, self.table.num_rows)
        self.steps = self.spec.steps_per_fit()
        self.total = self.steps * len(self.fits)
        self.fingerprint = _fingerprint(self.spec, self.info.sha256)
        self.classification = self.spec.task == "classification"

    def run(self) -> dict[str, Any]:
        """Every fit from the checkpoint on, then the model; or the stop."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        first, fit_dir = self._restore()
        fit: Fit | None = None
        fmap: FeatureMap | None = None
        for index in range(first, len(self.fits)):
            fit, fmap = self._train(index, fit_dir)
            fit_dir = None
            if self.stopped_at is not None:
                return {"kind": "stopped", "step": self.stopped_at}
            if index < len(self.fits) - 1 and self.stop():
                return {"kind": "stopped", "step": (index + 1) * self.steps}
        if fit is None or fmap is None:
            raise RuntimeError("no fit ran")
        y, predicted = self.final_valid or (self.y_true, self.oof)
        metrics = with_intervals(self.spec.task, y, predicted, self.spec.seed)
        elapsed = self.elapsed_before + time.monotonic() - self.started
        files = _export(
            self.workdir, fit, fmap, self.spec, self.info, metrics, self.table.num_rows, elapsed
        )
        done = {
            "kind": "done",
            "metric": self.spec.primary_metric,
            "metrics": metrics,
            "step": self.total,
            "files": files,
        }
        self.emit(done)
        return done

    def _restore(self) -> tuple[int, Path | None]:
        found = find_checkpoint(self.workdir)
        if found is None:
            return 0, None
        state = json.loads((found / "state.json").read_text())
        if state.get("fingerprint") != self.fingerprint:
            raise TrainingRejected(
                "the work directory holds a checkpoint of another spec or dataset"
            )
        self.elapsed_before = float(state["elapsed_s"])
        if (found / "oof.npy").exists():
            self.oof = np.load(found / "oof.npy", allow_pickle=False)
        return int(state["fit"]), (found / "fit") if (found / "fit").is_dir() else None

    def _checkpoint(self, index: int, fit: Fit | None, step: int) -> None:
        def fill(tmp: Path) -> None:
            state = {
                "fingerprint": self.fingerprint,
                "fit": index,
                "step": step,
                "elapsed_s": self.elapsed_before + time.monotonic() - self.started,
            }
            (tmp / "state.json").write_text(json.dumps(state))
            if self.oof is not None:
                np.save(tmp / "oof.npy", self.oof, allow_pickle=False)
            if fit is not None:
                (tmp / "fit").mkdir()
                fit.save(tmp / "fit")

        write_checkpoint(self.workdir, fill)
        self.emit({"kind": "checkpoint", "step": step})

    def _train(self, index: int, fit_dir: Path | None) -> tuple[Fit, FeatureMap]:
        spec, table = self.spec, self.table
        train_rows, valid_rows = self.fits[index]
        fmap = FeatureMap.fit(table, spec.target, spec.task, train_rows, self.impl.scale_target)
        X_all, y_all = fmap.matrix(table), fmap.target_codes(table)
        if self.y_true is None:
            self.y_true = y_all if self.classification else fmap.unscale(y_all)
        if self.oof is None and len(self.fits) > 1:
            shape = (table.num_rows, len(fmap.labels)) if self.classification else table.num_rows
            self.oof = np.zeros(shape)
        data = FitData(
            task=spec.task,
            classes=len(fmap.labels) if self.classification else 0,
            X=X_all[train_rows],
            y=y_all[train_rows],
            X_valid=None if valid_rows is None else X_all[valid_rows],
            y_valid=None if valid_rows is None else y_all[valid_rows],
            params=spec.resolved_params(),
            seed=spec.seed,
            steps=self.steps,
        )
        fit = self.impl.resume(data, fit_dir) if fit_dir is not None else self.impl.start(data)
        base = index * self.steps

        def out(pred: Array) -> Array:
            return pred if self.classification else fmap.unscale(pred)

        def on_step(done: int, train_pred: Array, valid_pred: Array | None) -> bool:
            line: dict[str, Any] = {
                "kind": "metrics",
                "step": base + done,
                "of": self.total,
                "fold": index,
                "valid": {},
                "train": self._score(train_rows, out(train_pred)),
            }
            if valid_pred is not None and valid_rows is not None:
                line["valid"] = self._score(valid_rows, out(valid_pred))
            self.emit(line)
            if self.pause_s:
                time.sleep(self.pause_s)
            if done >= self.steps:
                return False
            halt = self.stop()
            if halt or done % spec.checkpoint_every == 0:
                self._checkpoint(index, fit, base + done)
            if halt:
                self.stopped_at = base + done
            return halt

        fit.run(on_step)
        if self.stopped_at is not None:
            return fit, fmap
        if valid_rows is not None and data.X_valid is not None:
            predicted = out(fit.predict(data.X_valid))
            if self.oof is not None:
                self.oof[valid_rows] = predicted
            else:
                self.final_valid = (self.y_true[valid_rows], predicted)
        if index == len(self.fits) - 1:
            self._checkpoint(index, fit, self.total)
        else:
            self._checkpoint(index + 1, None, base + self.steps)
        return fit, fmap

    def _score(self, rows: Array, predicted: Array) -> dict[str, float | None]:
        return _finite(score(self.spec.task, self.y_true[rows], predicted))


def _export(
    workdir: Path,
    fit: Any,
    fmap: FeatureMap,
    spec: TrainSpec,
    info: DatasetInfo,
    metrics: dict[str, Any],
    rows: int,
    elapsed: float,
) -> list[str]:
    tmp = workdir / ".model-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files = list(fit.export(tmp))
    (tmp / "features.json").write_text(json.dumps(fmap.to_json(), indent=2))
    files += ["features.json", "card.json", "card.md"]
    card = ModelCard(
        dataset_sha256=info.sha256,
        schema_=info.schema_,
        target=spec.target,
        task=spec.task,
        family=spec.family,
        params=spec.resolved_params(),
        validation=spec.validation.model_dump(),
        metric=spec.primary_metric,
        metrics=metrics,
        rows=rows,
        training_time_s=round(elapsed, 3),
        library_versions=library_versions(),
        seed=spec.seed,
        files=files,
        labels=fmap.labels,
    )
    (tmp / "card.json").write_text(card.model_dump_json(indent=2))
    (tmp / "card.md").write_text(card.to_markdown())
    target = workdir / "model"
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return files


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def main(argv: list[str] | None = None) -> int:
    """The CLI: runs `run` with stdout lines and SIGTERM as the stop; answers the exit code."""
    parser = argparse.ArgumentParser(prog="python -m longhaul_training.training.trainer")
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--format", choices=("csv", "parquet"), required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    terminated = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())

    def emit(line: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    try:
        spec = TrainSpec.model_validate_json(args.spec.read_text())
        result = run(
            spec,
            args.data,
            args.format,
            args.workdir,
            emit,
            terminated.is_set,
            pause_s=float(os.environ.get(PAUSE_ENV) or 0),
        )
    except ValidationError as exc:
        emit({"kind": "error", "reason": _reason(exc)})
        return EXIT_USER_ERROR
    except (DatasetRejected, FeatureRejected, TrainingRejected) as exc:
        emit({"kind": "error", "reason": exc.reason})
        return EXIT_USER_ERROR
    return EXIT_STOPPED if result["kind"] == "stopped" else 0


if __name__ == "__main__":
    sys.exit(main())
