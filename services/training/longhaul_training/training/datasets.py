"""Datasets: a CSV or Parquet file read with pyarrow, checked against limits, and profiled.

`inspect_dataset(path, fmt, limits)` reads the whole file once and answers a `DatasetInfo`
(format, rows, columns, a per-column profile, target candidates, the sha256 of the file's
bytes, its size). `load_table(path, fmt)` answers the same file as a flat `pyarrow.Table`
whose every column is int64, float64, bool or string. Both raise `DatasetRejected` with a
`.reason` a user understands (never a path) for: an empty or unreadable file, ragged CSV
rows, zero data rows, a duplicate or empty column name, Parquet with nested types (struct,
list, map, union) or binary columns, and anything over a `DatasetLimits` bound (bytes, rows,
columns, characters in one cell). The byte limit is checked before anything is parsed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ColumnProfile",
    "ColumnType",
    "DatasetInfo",
    "DatasetLimits",
    "DatasetRejected",
    "inspect_dataset",
    "load_table",
    "read_dataset",
]

ColumnType = Literal["integer", "float", "boolean", "string"]
Format = Literal["csv", "parquet"]

DISTINCT_CAP = 10_000
"""`ColumnProfile.distinct` is exact up to this many values and this number beyond."""
MAX_CLASSES = 100
"""A string, boolean or integer column with 2..MAX_CLASSES values is a classification target."""


class DatasetRejected(ValueError):
    """The file cannot be used; `.reason` says why in a sentence without paths."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DatasetLimits(BaseModel):
    """Bounds a dataset must fit in."""

    max_bytes: int = Field(default=1 << 30, gt=0)
    max_rows: int = Field(default=10_000_000, gt=0)
    max_columns: int = Field(default=1_000, gt=0)
    max_cell_chars: int = Field(default=10_000, gt=0)


class ColumnProfile(BaseModel):
    """One column: its type, missing values (nulls, and NaN for floats), distinct values."""

    name: str
    type: ColumnType
    missing: int
    distinct: int | None = None
    min: float | None = None
    max: float | None = None


class DatasetInfo(BaseModel):
    """What registering a dataset records about it.

    The schema is the attribute `schema_` (pydantic's BaseModel owns `.schema`); it is read
    and written as "schema" in JSON and dicts (`DatasetInfo(schema=[...])`, `model_dump()`).
    """

    format: Format
    rows: int
    columns: int
    schema_: list[ColumnProfile] = Field(alias="schema")
    target_candidates: list[str]
    sha256: str
    bytes: int

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    @property
    def columns_by_name(self) -> dict[str, ColumnProfile]:
        """The profile of each column by its name."""
        return {c.name: c for c in self.schema_}


def inspect_dataset(path: Path, fmt: Format, limits: DatasetLimits) -> DatasetInfo:
    """Reads, validates and profiles the file; raises DatasetRejected with the reason."""
    return read_dataset(path, fmt, limits)[1]


def load_table(path: Path, fmt: Format, limits: DatasetLimits | None = None) -> pa.Table:
    """The file as a flat table (int64, float64, bool, string columns), validated as above."""
    return read_dataset(path, fmt, limits or DatasetLimits())[0]


def read_dataset(path: Path, fmt: Format, limits: DatasetLimits) -> tuple[pa.Table, DatasetInfo]:
    """Both the normalized table and its info, from one read of the file."""
    if fmt not in ("csv", "parquet"):
        raise DatasetRejected(f"the format {fmt!r} is not csv or parquet")
    try:
        size = path.stat().st_size
    except OSError:
        raise DatasetRejected("the file could not be read") from None
    if size > limits.max_bytes:
        raise DatasetRejected(f"the file has {size} bytes, over the limit of {limits.max_bytes}")
    if size == 0:
        raise DatasetRejected("the file is empty")
    table = _read_csv(path, limits) if fmt == "csv" else _read_parquet(path, limits)
    table = _normalize(table, limits)
    info = DatasetInfo(
        format=fmt,
        rows=table.num_rows,
        columns=table.num_columns,
        schema_=[_profile(name, table.column(name)) for name in table.column_names],
        target_candidates=[],
        sha256=_sha256(path),
        bytes=size,
    )
    info.target_candidates = [c.name for c in info.schema_ if _is_target_candidate(c)]
    return table, info


def _read_csv(path: Path, limits: DatasetLimits) -> pa.Table:
    from pyarrow import csv

    bad: list[Any] = []

    def on_invalid(row: Any) -> str:
        bad.append(row)
        return "error"

    try:
        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(block_size=1 << 22),
            parse_options=csv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=csv.ConvertOptions(strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, OSError) as exc:
        if bad:
            row = bad[0]
            where = f"row {row.number}" if row.number is not None else "a row"
            raise DatasetRejected(
                f"{where} has {row.actual_columns} fields where the header has "
                f"{row.expected_columns}; every row needs the same number of fields"
            ) from None
        if "Empty CSV file" in str(exc):
            raise DatasetRejected("the file is empty") from None
        if "exceeds" in str(exc) and "block" in str(exc):
            raise DatasetRejected("a row is longer than the longest row accepted (4 MiB)") from None
        raise DatasetRejected(
            "the file is not a readable CSV file (UTF-8, comma-separated)"
        ) from None
    return table


def _read_parquet(path: Path, limits: DatasetLimits) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
        rows = meta.metadata.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
        raise DatasetRejected("the file is not a readable Parquet file") from None
    for field in schema:
        if pa.types.is_nested(field.type):
            raise DatasetRejected(
                f"column {field.name!r} has the nested type {field.type}; "
                "only flat columns (numbers, booleans, strings, dates) are accepted"
            )
    if len(schema) > limits.max_columns:
        raise DatasetRejected(
            f"the file has {len(schema)} columns, over the limit of {limits.max_columns}"
        )
    if rows > limits.max_rows:
        raise DatasetRejected(f"the file has {rows} rows, over the limit of {limits.max_rows}")
    try:
        return meta.read()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError):
        raise DatasetRejected("the file is not a readable Parquet file") from None


def _normalize(table: pa.Table, limits: DatasetLimits) -> pa.Table:
    names = table.column_names
    if len(names) > limits.max_columns:
        raise DatasetRejected(
            f"the file has {len(names)} columns, over the limit of {limits.max_columns}"
        )
    if table.num_rows == 0:
        raise DatasetRejected("the file has no data rows")
    if table.num_rows > limits.max_rows:
        raise DatasetRejected(
            f"the file has {table.num_rows} rows, over the limit of {limits.max_rows}"
        )
    seen: set[str] = set()
    for index, name in enumerate(names):
        if not name.strip():
            raise DatasetRejected(f"column {index + 1} has no name")
        if name in seen:
            raise DatasetRejected(f"the column name {name!r} appears more than once")
        seen.add(name)
    columns = [_flat_column(name, table.column(name), limits) for name in names]
    return pa.table(columns, names=names)


def _flat_column(name: str, column: pa.ChunkedArray, limits: DatasetLimits) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_nested(kind):
        raise DatasetRejected(f"column {name!r} has the nested type {kind}; only flat columns")
    if pa.types.is_boolean(kind):
        return column
    if pa.types.is_integer(kind):
        if pa.types.is_uint64(kind):
            return column.cast(pa.float64())
        return column.cast(pa.int64())
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return column.cast(pa.float64())
    if pa.types.is_null(kind):
        return column.cast(pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_temporal(kind):
        column = column.cast(pa.string())
    else:
        raise DatasetRejected(
            f"column {name!r} has the type {kind}; "
            "numbers, booleans, strings and dates are accepted"
        )
    longest = pc.max(pc.utf8_length(column)).as_py()
    if longest is not None and longest > limits.max_cell_chars:
        raise DatasetRejected(
            f"column {name!r} has a cell of {longest} characters, "
            f"over the limit of {limits.max_cell_chars}"
        )
    return column


def _column_type(kind: pa.DataType) -> ColumnType:
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind):
        return "float"
    return "string"


def _profile(name: str, column: pa.ChunkedArray) -> ColumnProfile:
    kind = _column_type(column.type)
    missing = column.null_count
    if kind == "float":
        missing += int(pc.sum(pc.is_nan(column)).as_py() or 0)
    distinct = int(pc.count_distinct(column, mode="only_valid").as_py())
    profile = ColumnProfile(
        name=name, type=kind, missing=missing, distinct=min(distinct, DISTINCT_CAP)
    )
    if kind in ("integer", "float"):
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        profile.min = None if low is None else float(low)
        profile.max = None if high is None else float(high)
    return profile


def _is_target_candidate(column: ColumnProfile) -> bool:
    if column.missing > 0 or column.distinct is None or column.distinct < 2:
        return False
    if column.type == "float":
        return True
    return column.type == "integer" or column.distinct <= MAX_CLASSES


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
