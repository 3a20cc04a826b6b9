"""PyTorch MLP (torch_mlp), checkpointed per epoch with the optimizer's and every RNG's state.

Determinism: `torch.use_deterministic_algorithms(True)`, `torch.set_num_threads(threads)`,
`torch.manual_seed`, `random.seed` and `numpy.random.seed` from the spec seed at the start;
each epoch's batch order is `torch.randperm` from a `torch.Generator` of its own (the data
loader's order). The checkpoint holds, in `state.safetensors`, the model's parameters
(`model.*`), Adam's state (`opt.<param>.<name>`), torch's global RNG state (`rng.torch`,
which dropout draws from) and the loader generator's (`rng.loader`); in `state.json`, the
epochs done and numpy's and Python's global RNG states. Nothing is pickled. The finished
model is `model.safetensors` (the `nn.Sequential` state dict) and `model.json` (the
architecture it is rebuilt from).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from longhaul_training.training.families.base import Array, Family, Fit, FitData, OnStep, Predictor

__all__ = ["build", "families"]


def build(arch: dict[str, Any]) -> nn.Sequential:
    """The network an architecture (model.json) describes."""
    layers: list[nn.Module] = []
    width = int(arch["input"])
    for _ in range(int(arch["layers"])):
        layers += [nn.Linear(width, int(arch["hidden_units"])), nn.ReLU()]
        if float(arch["dropout"]) > 0:
            layers.append(nn.Dropout(float(arch["dropout"])))
        width = int(arch["hidden_units"])
    layers.append(nn.Linear(width, int(arch["outputs"])))
    return nn.Sequential(*layers)


def _predict(model: nn.Module, task: str, X: Array) -> Array:
    model.eval()
    with torch.no_grad():
        out = model(torch.as_tensor(X, dtype=torch.float32))
        out = torch.softmax(out, dim=1) if task == "classification" else out[:, 0]
    model.train()
    return out.numpy().astype(np.float64)


def _settings(threads: int) -> None:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


class TorchFit(Fit):
    """A torch MLP fit with Adam."""

    def __init__(self, data: FitData) -> None:
        p = data.params
        _settings(int(p["threads"]))
        torch.manual_seed(data.seed)
        random.seed(data.seed)
        np.random.seed(data.seed)
        self.data = data
        self.arch = {
            "input": data.X.shape[1],
            "hidden_units": p["hidden_units"],
            "layers": p["layers"],
            "dropout": p["dropout"],
            "outputs": data.classes if data.task == "classification" else 1,
            "activation": "relu",
            "task": data.task,
        }
        self.model = build(self.arch)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=p["learning_rate"], weight_decay=p["weight_decay"]
        )
        self.loader = torch.Generator().manual_seed(data.seed)
        self.steps_done = 0
        self.X = torch.as_tensor(data.X, dtype=torch.float32)
        if data.task == "classification":
            self.y = torch.as_tensor(data.y, dtype=torch.long)
            self.loss: nn.Module = nn.CrossEntropyLoss()
        else:
            self.y = torch.as_tensor(data.y, dtype=torch.float32)[:, None]
            self.loss = nn.MSELoss()

    def run(self, on_step: OnStep) -> None:
        data = self.data
        size = int(data.params["batch_size"])
        self.model.train()
        while self.steps_done < data.steps:
            order = torch.randperm(len(self.y), generator=self.loader)
            for start in range(0, len(order), size):
                batch = order[start : start + size]
                self.optimizer.zero_grad()
                loss = self.loss(self.model(self.X[batch]), self.y[batch])
                loss.backward()
                self.optimizer.step()
            self.steps_done += 1
            valid = None if data.X_valid is None else self.predict(data.X_valid)
            if on_step(self.steps_done, self.predict(data.X), valid):
                return

    def predict(self, X: Array) -> Array:
        return _predict(self.model, self.data.task, X)

    def save(self, directory: Path) -> None:
        tensors = {f"model.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        for index, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                tensors[f"opt.{index}.{name}"] = torch.as_tensor(value).clone()
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.loader"] = self.loader.get_state()
        save_file(tensors, str(directory / "state.safetensors"))
        legacy: tuple[Any, ...] = tuple(np.random.get_state(legacy=True))
        state = {
            "steps_done": self.steps_done,
            "numpy": [legacy[0], legacy[1].tolist(), *(x for x in legacy[2:])],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        }
        (directory / "state.json").write_text(json.dumps(state))

    def restore(self, directory: Path) -> None:
        """Loads what `save` wrote."""
        tensors = load_file(str(directory / "state.safetensors"))
        self.model.load_state_dict(
            {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        )
        opt: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, index, name = key.split(".", 2)
                opt.setdefault(int(index), {})[name] = value
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": opt, "param_groups": groups})
        torch.set_rng_state(tensors["rng.torch"])
        self.loader.set_state(tensors["rng.loader"])
        state = json.loads((directory / "state.json").read_text())
        self.steps_done = int(state["steps_done"])
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))

    def export(self, directory: Path) -> list[str]:
        weights = {k: v.detach().clone().contiguous() for k, v in self.model.state_dict().items()}
        save_file(weights, str(directory / "model.safetensors"))
        (directory / "model.json").write_text(json.dumps(self.arch, indent=2))
        return ["model.safetensors", "model.json"]


class TorchPredictor(Predictor):
    """A finished torch MLP from model.safetensors and model.json."""

    def __init__(self, model_dir: Path) -> None:
        from longhaul_training.training.artifacts import ModelRejected

        try:
            self.arch = json.loads((model_dir / "model.json").read_text())
            self.model = build(self.arch)
            self.model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
        except Exception:
            raise ModelRejected("the torch model's architecture or weights are damaged") from None

    def predict(self, X: Array) -> Array:
        return _predict(self.model, str(self.arch["task"]), X)

    def weights(self) -> dict[str, Array]:
        return {k: v.detach().numpy() for k, v in self.model.state_dict().items()}


def _resume(data: FitData, directory: Path) -> Fit:
    fit = TorchFit(data)
    fit.restore(directory)
    return fit


def families() -> dict[str, Family]:
    """This module's family."""
    return {
        "torch_mlp": Family(
            "torch_mlp", scale_target=True, start=TorchFit, resume=_resume, load=TorchPredictor
        )
    }
