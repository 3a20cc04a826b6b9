"""Model artifacts: what a finished model directory holds, and loading it without pickle.

A model directory (`<workdir>/model/`) holds `card.json` and `card.md` (see card.py),
`features.json` (the column encoding, see features.py) and the family's files:
`model.skops` (scikit-learn families; LightGBM as a skops dict of its model text),
`model.safetensors` + `model.json` (the architecture) for torch_mlp, and `model.onnx`
for random_forest, logistic and ridge (its input "X" is the float32 matrix features.json
describes).

Skops files are only ever loaded against `ALLOWED_TYPES`, the service's own list: every type,
function and loader the file names is read from its schema and checked against the list
before skops builds anything (skops is then also told to trust only that list); the list a
file carries is never trusted. `load_model(dir)` answers a `LoadedModel` whose
`predict(pyarrow.Table)` answers a table with `prediction` (in the target's own values) and,
for classification, `proba_<label>` per class. `check_upload(path)` identifies a model a user
uploads as "skops", "safetensors" or "onnx", or raises `ModelRejected` (`.reason`): a pickle
(also inside a zip, as PyTorch's .pt), a skops file naming a type outside the allowlist, a
damaged safetensors or ONNX file, anything else.
"""

from __future__ import annotations

import json
import struct
import sys
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from longhaul_training.training.families.base import Array, Predictor
from longhaul_training.training.features import FeatureMap, FeatureRejected

__all__ = [
    "ALLOWED_TYPES",
    "LoadedModel",
    "ModelRejected",
    "check_upload",
    "dump_skops",
    "load_model",
    "load_skops",
    "skops_types",
]

_SKLEARN_ESTIMATORS = (
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._stochastic_gradient.SGDRegressor",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn.linear_model._sgd_fast.Hinge",
    "sklearn.linear_model._sgd_fast.SquaredLoss",
    "sklearn.linear_model._sgd_fast.Huber",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.Interval",
)
_BASICS = (
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.str",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.NoneType",
    "builtins.set",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.float32",
    "numpy.int64",
    "numpy.int32",
    "numpy.uint8",
    "numpy.intp",
    "numpy.bool_",
    "numpy.bool",
    "numpy.dtype",
    "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",
    "numpy.random._pcg64.PCG64",
)
ALLOWED_TYPES: frozenset[str] = frozenset(_SKLEARN_ESTIMATORS + _BASICS)
"""Every type a skops file may name to be loaded: the families' estimators and their parts,
plain containers, numpy arrays and scalars, numpy random states. Owned here, never read from
the file."""

_LOADERS = frozenset(
    {
        "ObjectNode",
        "DictNode",
        "ListNode",
        "TupleNode",
        "SetNode",
        "JsonNode",
        "NdArrayNode",
        "TypeNode",
        "RandomStateNode",
        "RandomGeneratorNode",
        "TreeNode",
        "LossNode",
        "SGDNode",
    }
)
"""Skops loaders that build data; function, method, partial and operator loaders are not."""


class ModelRejected(ValueError):
    """A model file cannot be used; `.reason` says why in a sentence without paths."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 1 <= head[1] <= 5


def _is_safetensors(head: bytes) -> bool:
    """A little-endian header length, then the JSON header's opening brace."""
    return len(head) >= 9 and head[8:9] == b"{"


def skops_types(path: Path) -> set[str]:
    """Every type and loader name a skops file's schema mentions (loaders as 'loader:X')."""
    with path.open("rb") as f:
        head = f.read(16)
    if _is_pickle(head) and not _is_safetensors(head):
        raise ModelRejected("the file is a pickle; pickle files are never loaded")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            schema_text = archive.read("schema.json") if "schema.json" in names else None
    except (zipfile.BadZipFile, OSError):
        raise ModelRejected("the file is not a skops file") from None
    if any(n.endswith((".pkl", ".pickle")) for n in names):
        raise ModelRejected("the file is a zip holding a pickle; pickle files are never loaded")
    try:
        schema = json.loads(schema_text or b"")
    except ValueError:
        raise ModelRejected("the file is not a skops file") from None
    found: set[str] = set()
    _walk(schema, found)
    return found


def _walk(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        if "__module__" in node and "__class__" in node:
            found.add(f"{node['__module__']}.{node['__class__']}")
        loader = node.get("__loader__")
        if isinstance(loader, str):
            found.add(f"loader:{loader}")
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def _skops_io() -> Any:
    """skops.io, imported without importing PyTorch when nothing else has.

    Importing skops lists scikit-learn's estimators, and that walk imports every package
    under sklearn, among them array_api_compat's torch adapter, which imports torch (3 s of
    CPU a process). A placeholder stands in for that one adapter during the import only.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    name = "sklearn.externals.array_api_compat.torch"
    stub: types.ModuleType | None = None
    if "torch" not in sys.modules and name not in sys.modules:
        stub = types.ModuleType(name)
        stub.__path__ = []
        sys.modules[name] = stub
    try:
        import skops.io as sio
    finally:
        if stub is not None and sys.modules.get(name) is stub:
            del sys.modules[name]
    return sio


def load_skops(path: Path) -> Any:
    """The object in a skops file, when every type it names is in ALLOWED_TYPES."""
    sio = _skops_io()

    names = skops_types(path)
    loaders = {n.removeprefix("loader:") for n in names if n.startswith("loader:")}
    types = {n for n in names if not n.startswith("loader:")}
    forbidden = sorted((types - ALLOWED_TYPES) | {f"loader {x}" for x in loaders - _LOADERS})
    if forbidden:
        raise ModelRejected(f"the skops file names types that are not allowed: {forbidden}")
    try:
        return sio.load(path, trusted=sorted(ALLOWED_TYPES))
    except Exception as exc:  # skops raises many kinds on damaged or hostile files
        raise ModelRejected(f"the skops file could not be loaded ({type(exc).__name__})") from None


def dump_skops(obj: Any, path: Path) -> None:
    """Writes obj as skops; refuses (ModelRejected) if it names a type outside the allowlist."""
    sio = _skops_io()

    sio.dump(obj, path)
    forbidden = {n for n in skops_types(path) if not n.startswith("loader:")} - ALLOWED_TYPES
    if forbidden:
        path.unlink()
        raise ModelRejected(f"the model holds types that are not allowed: {sorted(forbidden)}")


def check_upload(path: Path) -> str:
    """The format of a model a user uploads ("skops", "safetensors", "onnx"), or ModelRejected."""
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError:
        raise ModelRejected("the file could not be read") from None
    if _is_safetensors(head):
        _check_safetensors(path)
        return "safetensors"
    if _is_pickle(head):
        raise ModelRejected(
            "the file is a pickle; pickle files are never loaded (export with skops, "
            "safetensors or ONNX)"
        )
    if head.startswith(b"PK"):
        names = skops_types(path)
        types = {n for n in names if not n.startswith("loader:")}
        loaders = {n.removeprefix("loader:") for n in names if n.startswith("loader:")}
        forbidden = sorted((types - ALLOWED_TYPES) | {f"loader {x}" for x in loaders - _LOADERS})
        if forbidden:
            raise ModelRejected(f"the skops file names types that are not allowed: {forbidden}")
        return "skops"
    try:
        import onnx

        onnx.checker.check_model(onnx.load_model(str(path)))
    except Exception:
        raise ModelRejected("the file is not a skops, safetensors or ONNX model") from None
    return "onnx"


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        (length,) = struct.unpack("<Q", path.read_bytes()[:8])
        if length > 100 * 1024 * 1024:
            raise ValueError("header too long")
        with safe_open(str(path), framework="numpy") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                f.get_tensor(key)
    except Exception:
        raise ModelRejected("the safetensors file is damaged") from None


@dataclass
class LoadedModel:
    """A finished model: its card, its feature encoding and its family's predictor."""

    card: dict[str, Any]
    features: FeatureMap
    predictor: Predictor

    @property
    def family(self) -> str:
        """The family that trained it."""
        return str(self.card["family"])

    def predict(self, table: pa.Table) -> pa.Table:
        """Predictions for every row: `prediction`, and `proba_<label>` per class."""
        try:
            X = self.features.matrix(table)
        except FeatureRejected as exc:
            raise ModelRejected(exc.reason) from None
        raw = self.predictor.predict(X)
        return self._table(raw)

    def predict_matrix(self, X: Array) -> Array:
        """Raw predictions for an already encoded matrix (probabilities or target values)."""
        raw = self.predictor.predict(X)
        return raw if self.features.task == "classification" else self.features.unscale(raw)

    def weights(self) -> dict[str, Array]:
        """The model's learned numbers by name, where the family exposes them."""
        return self.predictor.weights()

    def _table(self, raw: Array) -> pa.Table:
        if self.features.task == "regression":
            return pa.table({"prediction": pa.array(self.features.unscale(raw))})
        labels = self.features.labels
        label_array = pa.array(labels)
        columns: dict[str, pa.Array] = {
            "prediction": label_array.take(pa.array(np.argmax(raw, axis=1)))
        }
        for code, label in enumerate(labels):
            columns[f"proba_{label}"] = pa.array(raw[:, code].astype(np.float64))
        return pa.table(columns)


def load_model(model_dir: Path) -> LoadedModel:
    """The model in a directory the trainer wrote; never unpickles (ModelRejected if bad)."""
    from longhaul_training.training.families import family

    try:
        card = json.loads((model_dir / "card.json").read_text())
        features = FeatureMap.from_json(json.loads((model_dir / "features.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        raise ModelRejected("the model directory has no readable card or feature map") from None
    name = card.get("family")
    from longhaul_training.training.spec import FAMILIES

    if name not in FAMILIES:
        raise ModelRejected(f"the model's family {name!r} is unknown")
    predictor = family(name).load(model_dir)
    return LoadedModel(card=card, features=features, predictor=predictor)
