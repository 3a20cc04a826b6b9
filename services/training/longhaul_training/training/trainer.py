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
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from longhaul_training.training.card import ModelCard, library_versions
from longhaul_training.training.checkpoint import find_checkpoint, write_checkpoint
from longhaul_training.training.datasets import DatasetLimits, DatasetRejected, read_dataset
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
    from longhaul_training.training.families import family

    started = time.monotonic()
    if fmt not in ("csv", "parquet"):
        raise TrainingRejected(f"the format {fmt!r} is not csv or parquet")
    table, info = read_dataset(data, fmt, limits or DatasetLimits())  # type: ignore[arg-type]
    spec.check_against(info)
    table = _with_target(table, spec.target)
    impl = family(spec.family)
    fits = splits(spec, table.num_rows)
    steps = spec.steps_per_fit()
    total = steps * len(fits)
    params = spec.resolved_params()
    fingerprint = _fingerprint(spec, info.sha256)
    workdir.mkdir(parents=True, exist_ok=True)

    phase, elapsed_before, oof, fit_dir = 0, 0.0, None, None
    found = find_checkpoint(workdir)
    if found is not None:
        state = json.loads((found / "state.json").read_text())
        if state.get("fingerprint") != fingerprint:
            raise TrainingRejected(
                "the work directory holds a checkpoint of another spec or dataset"
            )
        phase, elapsed_before = int(state["fit"]), float(state["elapsed_s"])
        if (found / "oof.npy").exists():
            oof = np.load(found / "oof.npy", allow_pickle=False)
        if (found / "fit").is_dir():
            fit_dir = found / "fit"

    classification = spec.task == "classification"
    y_true: Array = None
    final_valid: tuple[Array, Array] | None = None

    def checkpoint(index: int, fit: Any, step: int) -> None:
        def fill(tmp: Path) -> None:
            state = {
                "fingerprint": fingerprint,
                "fit": index,
                "step": step,
                "elapsed_s": elapsed_before + time.monotonic() - started,
            }
            (tmp / "state.json").write_text(json.dumps(state))
            if oof is not None:
                np.save(tmp / "oof.npy", oof, allow_pickle=False)
            if fit is not None:
                (tmp / "fit").mkdir()
                fit.save(tmp / "fit")

        write_checkpoint(workdir, fill)
        emit({"kind": "checkpoint", "step": step})

    for index in range(phase, len(fits)):
        train_rows, valid_rows = fits[index]
        fmap = FeatureMap.fit(table, spec.target, spec.task, train_rows, impl.scale_target)
        X_all = fmap.matrix(table)
        y_all = fmap.target_codes(table)
        if y_true is None:
            y_true = y_all if classification else fmap.unscale(y_all)
        if oof is None and len(fits) > 1:
            width = len(fmap.labels)
            oof = np.zeros((table.num_rows, width)) if classification else np.zeros(table.num_rows)

        def out(pred: Array, fmap: FeatureMap = fmap) -> Array:
            return pred if classification else fmap.unscale(pred)

        fit_data = _fit_data(spec, fmap, X_all, y_all, train_rows, valid_rows, params, steps)
        fit = impl.resume(fit_data, fit_dir) if fit_dir is not None else impl.start(fit_data)
        fit_dir = None
        stopped: list[int] = []
        base = index * steps

        def on_step(done: int, train_pred: Array, valid_pred: Array | None,
                    index: int = index, fit: Any = fit, base: int = base,
                    train_rows: Array = train_rows, valid_rows: Array | None = valid_rows,
                    out: Callable[[Array], Array] = out) -> bool:
            line: dict[str, Any] = {"kind": "metrics", "step": base + done, "of": total,
                                    "fold": index,
                                    "train": _finite(score(spec.task, y_true[train_rows],
                                                           out(train_pred))),
                                    "valid": {}}
            if valid_pred is not None and valid_rows is not None:
                line["valid"] = _finite(score(spec.task, y_true[valid_rows], out(valid_pred)))
            emit(line)
            if pause_s:
                time.sleep(pause_s)
            if done >= steps:
                return False
            halt = stop()
            if halt or done % spec.checkpoint_every == 0:
                checkpoint(index, fit, base + done)
            if halt:
                stopped.append(base + done)
            return halt

        fit.run(on_step)
        if stopped:
            return {"kind": "stopped", "step": stopped[0]}
        last = index == len(fits) - 1
        if valid_rows is not None:
            predicted = out(fit.predict(fit_data.X_valid))
            if oof is not None:
                oof[valid_rows] = predicted
            else:
                final_valid = (y_true[valid_rows], predicted)
        if last:
            checkpoint(index, fit, total)
        else:
            checkpoint(index + 1, None, base + steps)
            if stop():
                return {"kind": "stopped", "step": base + steps}

    if final_valid is None:
        final_valid = (y_true, oof)
    metrics = with_intervals(spec.task, final_valid[0], final_valid[1], spec.seed)
    files = _export(workdir, fit, fmap, spec, info, metrics, table.num_rows,
                                     elapsed_before + time.monotonic() - started)
    done = {"kind": "done", "metric": spec.primary_metric, "metrics": metrics, "step": total,
            "files": files}
    emit(done)
    return done


def _fit_data(spec: TrainSpec, fmap: FeatureMap, X_all: Array, y_all: Array, train_rows: Array,
              valid_rows: Array | None, params: dict[str, Any], steps: int) -> Any:
    from longhaul_training.training.families import FitData

    return FitData(
        task=spec.task,
        classes=len(fmap.labels) if spec.task == "classification" else 0,
        X=X_all[train_rows],
        y=y_all[train_rows],
        X_valid=None if valid_rows is None else X_all[valid_rows],
        y_valid=None if valid_rows is None else y_all[valid_rows],
        params=params,
        seed=spec.seed,
        steps=steps,
    )


def _export(workdir: Path, fit: Any, fmap: FeatureMap, spec: TrainSpec, info: Any,
            metrics: dict[str, Any], rows: int, elapsed: float) -> list[str]:
    tmp = workdir / ".model-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    files = list(fit.export(tmp))
    (tmp / "features.json").write_text(json.dumps(fmap.to_json(), indent=2))
    files += ["features.json", "card.json", "card.md"]
    card = ModelCard(
        dataset_sha256=info.sha256,
        schema=info.schema_,
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
        result = run(spec, args.data, args.format, args.workdir, emit, terminated.is_set,
                     pause_s=float(os.environ.get(PAUSE_ENV) or 0))
    except ValidationError as exc:
        emit({"kind": "error", "reason": _reason(exc)})
        return EXIT_USER_ERROR
    except (DatasetRejected, FeatureRejected, TrainingRejected) as exc:
        emit({"kind": "error", "reason": exc.reason})
        return EXIT_USER_ERROR
    return EXIT_STOPPED if result["kind"] == "stopped" else 0


if __name__ == "__main__":
    sys.exit(main())
