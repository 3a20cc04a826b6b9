"""From a table's columns to the float matrix every family trains on, and back for targets.

`FeatureMap.fit(table, target, rows, scale_target)` learns, from the given rows only:
numeric and boolean columns standardized (missing values become the mean, so 0), string
columns one-hot over their `TOP_CATEGORIES` most frequent values (ties by value; other values
and missing ones are all zeros). Classification labels are coded 0..K-1 in sorted order of
their values (`labels`); a regression target is standardized when the family asks for it
(`target_mean`, `target_scale`). The map is plain JSON (`to_json`/`from_json`), kept in the
model directory as `features.json`, so a model predicts without anything unpickled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["TOP_CATEGORIES", "FeatureMap", "FeatureRejected"]

TOP_CATEGORIES = 20

Array = npt.NDArray[Any]


class FeatureRejected(ValueError):
    """A table does not fit the model's features; `.reason` says which column and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Column:
    """How one input column becomes matrix columns."""

    name: str
    type: str  # integer | float | boolean | string
    mean: float = 0.0
    scale: float = 1.0
    categories: list[str] = field(default_factory=list)


@dataclass
class FeatureMap:
    """The learned encoding of features and target (see the module docstring)."""

    task: str
    target: str
    columns: list[Column]
    labels: list[Any] = field(default_factory=list)
    target_type: str = "float"
    target_mean: float = 0.0
    target_scale: float = 1.0

    @classmethod
    def fit(
        cls, table: pa.Table, target: str, task: str, rows: Array, scale_target: bool
    ) -> FeatureMap:
        """Learns the encoding from `rows` of the table (the training rows of one fit)."""
        part = table.take(pa.array(rows))
        columns = [
            _fit_column(name, part.column(name)) for name in table.column_names if name != target
        ]
        target_type = _type_of(table.column(target).type)
        out = cls(task=task, target=target, columns=columns, target_type=target_type)
        y = table.column(target)
        if task == "classification":
            out.labels = sorted(pc.unique(y.drop_null()).to_pylist())
        elif scale_target:
            values = part.column(target).to_numpy().astype(np.float64)
            out.target_mean = float(np.mean(values))
            std = float(np.std(values))
            out.target_scale = std if std > 0 else 1.0
        return out

    @property
    def width(self) -> int:
        """Columns of the matrix."""
        return sum(len(c.categories) if c.type == "string" else 1 for c in self.columns)

    def matrix(self, table: pa.Table) -> Array:
        """The float64 feature matrix of every row of the table."""
        parts: list[Array] = []
        for column in self.columns:
            if column.name not in table.column_names:
                raise FeatureRejected(f"the table has no column {column.name!r}")
            values = table.column(column.name)
            parts.append(_encode(column, values))
        if not parts:
            return np.zeros((table.num_rows, 0))
        return np.ascontiguousarray(np.column_stack(parts), dtype=np.float64)

    def target_codes(self, table: pa.Table) -> Array:
        """The target as the models see it: class codes (int64) or scaled floats."""
        y = table.column(self.target)
        if self.task == "classification":
            index = {value: code for code, value in enumerate(self.labels)}
            return np.array([index[v] for v in y.to_pylist()], dtype=np.int64)
        values = np.asarray(y.to_numpy(), dtype=np.float64)
        return np.asarray((values - self.target_mean) / self.target_scale)

    def unscale(self, values: Array) -> Array:
        """Regression predictions back in the target's units."""
        return np.asarray(values, dtype=np.float64) * self.target_scale + self.target_mean

    def to_json(self) -> dict[str, Any]:
        """Plain JSON of the map."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureMap:
        """The map back from `to_json`."""
        data = dict(data)
        data["columns"] = [Column(**c) for c in data["columns"]]
        return cls(**data)


def _type_of(kind: pa.DataType) -> str:
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind):
        return "float"
    return "string"


def _numbers(values: pa.ChunkedArray) -> Array:
    as_float = values.cast(pa.float64()) if not pa.types.is_floating(values.type) else values
    return np.asarray(as_float.to_numpy(zero_copy_only=False), dtype=np.float64)


def _fit_column(name: str, values: pa.ChunkedArray) -> Column:
    kind = _type_of(values.type)
    if kind == "string":
        counts = pc.value_counts(values.drop_null()).to_pylist()
        ranked = sorted(counts, key=lambda c: (-c["counts"], c["values"]))
        return Column(name, kind, categories=[c["values"] for c in ranked[:TOP_CATEGORIES]])
    numbers = _numbers(values)
    present = numbers[np.isfinite(numbers)]
    mean = float(np.mean(present)) if present.size else 0.0
    std = float(np.std(present)) if present.size else 0.0
    return Column(name, kind, mean=mean, scale=std if std > 0 else 1.0)


def _encode(column: Column, values: pa.ChunkedArray) -> Array:
    if column.type == "string":
        text = values.cast(pa.string()) if not pa.types.is_string(values.type) else values
        codes = pc.index_in(text, value_set=pa.array(column.categories, pa.string()))
        index = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.float64)
        out = np.zeros((len(index), len(column.categories)))
        hit = np.isfinite(index)
        out[np.nonzero(hit)[0], index[hit].astype(np.int64)] = 1.0
        return out
    if pa.types.is_string(values.type):
        raise FeatureRejected(f"column {column.name!r} holds strings; the model needs numbers")
    numbers = _numbers(values)
    numbers = np.where(np.isfinite(numbers), numbers, column.mean)
    return ((numbers - column.mean) / column.scale)[:, None]
