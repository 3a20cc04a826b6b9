"""Datasets: profiles of CSV and Parquet files, and every refusal with a reason a user reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from longhaul_training.training.datasets import (
    DatasetLimits,
    DatasetRejected,
    inspect_dataset,
    load_table,
)

LIMITS = DatasetLimits()


def _table() -> pa.Table:
    return pa.table(
        {
            "age": pa.array([31, 45, None, 22, 60, 38], pa.int32()),
            "score": [0.5, float("nan"), 1.5, 2.5, None, 3.0],
            "member": [True, False, True, True, False, None],
            "city": pa.array(["Oslo", "Lima", "Oslo", None, "Pune", "Lima"]).dictionary_encode(),
            "label": ["yes", "no", "yes", "no", "no", "yes"],
        }
    )


def test_csv_is_counted_profiled_and_hashed(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    pcsv.write_csv(_table().cast(_table().schema.set(3, pa.field("city", pa.string()))), path)
    info = inspect_dataset(path, "csv", LIMITS)
    assert (info.format, info.rows, info.columns) == ("csv", 6, 5)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.bytes == path.stat().st_size
    by_name = info.columns_by_name
    assert [by_name[c].type for c in ("age", "score", "member", "city", "label")] == [
        "integer",
        "float",
        "boolean",
        "string",
        "string",
    ]
    assert (by_name["age"].missing, by_name["age"].min, by_name["age"].max) == (1, 22, 60)
    assert by_name["score"].missing == 2, "null and NaN both count as missing"
    assert by_name["city"].distinct == 3
    assert "label" in info.target_candidates
    assert "age" not in info.target_candidates, "a column with missing values is no target"
    assert info.model_dump()["schema"][0]["name"] == "age", "the schema is 'schema' in JSON"


def test_parquet_gives_the_same_profile_with_flat_types(tmp_path: Path) -> None:
    path = tmp_path / "people.parquet"
    pq.write_table(_table(), path)
    info = inspect_dataset(path, "parquet", LIMITS)
    assert (info.format, info.rows) == ("parquet", 6)
    assert info.columns_by_name["city"].type == "string", "dictionary columns are strings"
    table = load_table(path, "parquet")
    assert [str(t) for t in table.schema.types] == ["int64", "double", "bool", "string", "string"]


def _rejected(path: Path, fmt: str = "csv", limits: DatasetLimits = LIMITS) -> str:
    with pytest.raises(DatasetRejected) as caught:
        inspect_dataset(path, fmt, limits)  # type: ignore[arg-type]
    reason = caught.value.reason
    assert str(path.parent) not in reason, "no paths in reasons"
    assert path.name not in reason, "no file names in reasons"
    return reason


def test_ragged_csv_row_is_refused_with_its_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n6,7,8\n")
    reason = _rejected(path)
    assert "2 fields where the header has 3" in reason


def test_header_only_csv_has_zero_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty-rows.csv"
    path.write_text("a,b\n")
    assert _rejected(path) == "the file has no data rows"


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nothing.csv"
    path.write_bytes(b"")
    assert _rejected(path) == "the file is empty"


def test_each_limit_is_enforced(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("a,b,c\n1,2,xxxxxxxxxx\n3,4,y\n5,6,z\n")
    assert "over the limit of 10" in _rejected(path, limits=DatasetLimits(max_bytes=10))
    assert "3 rows, over the limit of 2" in _rejected(path, limits=DatasetLimits(max_rows=2))
    assert "3 columns" in _rejected(path, limits=DatasetLimits(max_columns=2))
    reason = _rejected(path, limits=DatasetLimits(max_cell_chars=5))
    assert "column 'c' has a cell of 10 characters" in reason


def test_parquet_with_nested_types_is_refused(tmp_path: Path) -> None:
    for name, column in {
        "tags": pa.array([["a"], ["b", "c"]]),
        "point": pa.array([{"x": 1}, {"x": 2}]),
    }.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"id": [1, 2], name: column}), path)
        assert f"column {name!r} has the nested type" in _rejected(path, "parquet")


def test_unreadable_parquet_and_duplicate_columns_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1 this is not parquet at all")
    assert _rejected(garbage, "parquet") == "the file is not a readable Parquet file"
    twice = tmp_path / "twice.csv"
    twice.write_text("a,a\n1,2\n")
    assert "appears more than once" in _rejected(twice)
