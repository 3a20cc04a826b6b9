"""What the jobs run in a child process (`ctx.run_in_child`): reading a dataset, checking a
model file, predicting. Plain functions that take and return plain values; this module
imports nothing of the service, so a child starts without loading the worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["check_file", "inspect_file", "predict_file"]


def inspect_file(path: str, fmt: str, limits: dict[str, int]) -> dict[str, Any]:
    """Read and profile a dataset: {"info": ...} or {"rejected": reason}."""
    from longhaul_training.training.datasets import (
        DatasetLimits,
        DatasetRejected,
        inspect_dataset,
    )

    try:
        info = inspect_dataset(Path(path), fmt, DatasetLimits(**limits))  # type: ignore[arg-type]
    except DatasetRejected as exc:
        return {"rejected": exc.reason}
    return {"info": info.model_dump(mode="json")}


def predict_file(model_dir: str, data: str, fmt: str, out: str) -> dict[str, Any]:
    """Predict every row of a dataset with a model and write Parquet to `out`:
    {"rows": n} or {"rejected": reason}."""
    import pyarrow.parquet as pq

    from longhaul_training.training.artifacts import ModelRejected, load_model
    from longhaul_training.training.datasets import DatasetRejected, load_table

    try:
        model = load_model(Path(model_dir))
        table = load_table(Path(data), fmt)  # type: ignore[arg-type]
        predictions = model.predict(table)
    except (ModelRejected, DatasetRejected) as exc:
        return {"rejected": exc.reason}
    except (ValueError, KeyError) as exc:
        return {"rejected": str(exc)}
    pq.write_table(predictions, out)
    return {"rows": predictions.num_rows}


def check_file(path: str) -> dict[str, Any]:
    """Check a model file a caller uploaded: {"format": ...} or {"rejected": reason}."""
    from longhaul_training.training.artifacts import ModelRejected, check_upload

    try:
        return {"format": check_upload(Path(path))}
    except ModelRejected as exc:
        return {"rejected": exc.reason}
