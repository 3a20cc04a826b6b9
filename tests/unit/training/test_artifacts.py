"""Artifacts: models load without unpickling, through the service's own skops allowlist;
uploads that are pickles or name forbidden types are refused; ONNX predicts as the model."""

from __future__ import annotations

import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from longhaul_training.training.artifacts import (
    ALLOWED_TYPES,
    ModelRejected,
    check_upload,
    load_model,
    skops_types,
)
from longhaul_training.training.datasets import load_table
from tests.unit.training.conftest import run_in_process

SMALL: dict[str, dict[str, Any]] = {
    "lightgbm": {"n_rounds": 5},
    "sgd": {"epochs": 2},
    "mlp": {"epochs": 2, "hidden_units": 8},
    "random_forest": {"n_estimators": 5, "max_depth": 4},
    "logistic": {},
    "ridge": {},
    "torch_mlp": {"epochs": 2, "hidden_units": 8},
}


def _train(family: str, task: str, data: Path, root: Path) -> Path:
    target = "label" if task == "classification" else "value"
    spec = {
        "target": target,
        "task": task,
        "family": family,
        "params": SMALL[family],
        "validation": {"holdout": 0.25},
        "seed": 3,
    }
    workdir = root / f"{family}-{task}"
    run_in_process(spec, data, workdir)
    return workdir / "model"


@pytest.fixture(scope="module")
def models(
    datasets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], Path]:
    """A small trained model of each family: classification, and regression for the ONNX
    families and torch (test_resume loads sgd's and random forest's regressors too)."""
    root = tmp_path_factory.mktemp("models")
    wanted = [(family, "classification") for family in SMALL if family != "ridge"]
    wanted += [("ridge", "regression"), ("random_forest", "regression")]
    wanted += [("torch_mlp", "regression"), ("lightgbm", "regression")]
    return {(f, task): _train(f, task, datasets[task], root) for f, task in wanted}


def test_every_family_loads_through_the_allowlist_and_predicts_a_table(
    models: dict[tuple[str, str], Path], datasets: dict[str, Path]
) -> None:
    for (family, task), model_dir in models.items():
        for name in ("model.skops",):
            if (model_dir / name).exists():
                named = {n for n in skops_types(model_dir / name) if not n.startswith("loader:")}
                assert named <= ALLOWED_TYPES, (family, named - ALLOWED_TYPES)
        model = load_model(model_dir)
        table = load_table(datasets[task], "csv").slice(0, 20)
        predicted = model.predict(table)
        assert predicted.num_rows == 20, family
        if task == "classification":
            labels = set(table.column("label").to_pylist())
            assert set(predicted.column("prediction").to_pylist()) <= labels, family
            probabilities = np.column_stack(
                [predicted.column(f"proba_{label}").to_numpy() for label in sorted(labels)]
            )
            assert np.allclose(probabilities.sum(axis=1), 1.0), family
        else:
            assert predicted.column_names == ["prediction"], family


def test_a_table_without_a_feature_column_is_refused(
    models: dict[tuple[str, str], Path], datasets: dict[str, Path]
) -> None:
    model = load_model(models["ridge", "regression"])
    table = load_table(datasets["regression"], "csv").drop_columns(["f3"])
    with pytest.raises(ModelRejected, match="no column 'f3'"):
        model.predict(table)


@pytest.mark.parametrize(
    ("family", "task"),
    [
        ("random_forest", "classification"),
        ("logistic", "classification"),
        ("ridge", "regression"),
        ("random_forest", "regression"),
    ],
)
def test_onnx_export_predicts_what_the_model_predicts(
    family: str, task: str, models: dict[tuple[str, str], Path], datasets: dict[str, Path]
) -> None:
    import onnxruntime

    model_dir = models[family, task]
    assert check_upload(model_dir / "model.onnx") == "onnx"
    model = load_model(model_dir)
    table = load_table(datasets[task], "csv")
    X = model.features.matrix(table)
    session = onnxruntime.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    outputs = session.run(None, {"X": X.astype(np.float32)})
    expected = model.predictor.predict(X)
    got = outputs[1] if task == "classification" else outputs[0][:, 0]
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_uploads_in_safe_formats_are_recognized(models: dict[tuple[str, str], Path]) -> None:
    assert check_upload(models["sgd", "classification"] / "model.skops") == "skops"
    assert check_upload(models["torch_mlp", "regression"] / "model.safetensors") == "safetensors"


class Gadget:
    """A class of this test module: not in the allowlist."""

    def __init__(self) -> None:
        self.size = 3


class Trap:
    """Unpickling this touches a file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickle_is_refused_and_never_unpickled(
    tmp_path: Path, models: dict[tuple[str, str], Path]
) -> None:
    marker = tmp_path / "unpickled"
    upload = tmp_path / "model.pkl"
    upload.write_bytes(pickle.dumps(Trap(marker)))
    with pytest.raises(ModelRejected, match="pickle"):
        check_upload(upload)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("card.json", "features.json"):
        (model_dir / name).write_bytes((models["ridge", "regression"] / name).read_bytes())
    (model_dir / "model.skops").write_bytes(upload.read_bytes())
    with pytest.raises(ModelRejected, match="pickle"):
        load_model(model_dir)
    assert not marker.exists(), "the pickle must never be loaded"


def test_a_torch_save_file_is_refused_as_a_pickle(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(ModelRejected, match="pickle"):
        check_upload(path)


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"launcher": subprocess.Popen}, "subprocess.Popen"),
        ({"gadget": Gadget()}, f"{__name__}.Gadget"),
    ],
)
def test_a_skops_file_naming_a_forbidden_type_is_refused(
    payload: dict[str, Any], named: str, tmp_path: Path, models: dict[tuple[str, str], Path]
) -> None:
    import skops.io as sio

    path = tmp_path / "model.skops"
    sio.dump(payload, path)
    assert named in skops_types(path), "the file really names the type"
    with pytest.raises(ModelRejected, match="not allowed") as caught:
        check_upload(path)
    assert named in caught.value.reason
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("card.json", "features.json"):
        (model_dir / name).write_bytes((models["lightgbm", "regression"] / name).read_bytes())
    (model_dir / "model.skops").write_bytes(path.read_bytes())
    with pytest.raises(ModelRejected, match="not allowed"):
        load_model(model_dir)


def test_damaged_and_unknown_files_are_refused(
    tmp_path: Path, models: dict[tuple[str, str], Path]
) -> None:
    good = (models["torch_mlp", "classification"] / "model.safetensors").read_bytes()
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelRejected, match="damaged"):
        check_upload(damaged)
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"\x00\x01 not a model \x02" * 10)
    with pytest.raises(ModelRejected, match="not a skops, safetensors or ONNX"):
        check_upload(unknown)
    not_skops = tmp_path / "archive.zip"
    with zipfile.ZipFile(not_skops, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ModelRejected, match="not a skops file"):
        check_upload(not_skops)


def test_loaded_model_answers_labels_of_the_target(
    models: dict[tuple[str, str], Path],
) -> None:
    model = load_model(models["logistic", "classification"])
    table = pa.table({f"f{i}": [0.0, 1.0] for i in range(8)} | {"color": ["red", None]})
    predicted = model.predict(table)
    assert predicted.column_names == [
        "prediction",
        "proba_ant",
        "proba_bee",
        "proba_cat",
    ]
    assert set(predicted.column("prediction").to_pylist()) <= {"ant", "bee", "cat"}
