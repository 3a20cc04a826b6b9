"""The model families, one module each, loaded lazily so a trainer imports only its own.

`family(name)` answers the module object's `FAMILY` (a `base.Family`): it starts a fit
(`start(data)`), resumes one from a checkpoint directory (`resume(data, dir)`), and loads a
finished model for prediction (`load(model_dir)`). What each checkpoints is in its module's
docstring; `base` holds the shared types.
"""

from __future__ import annotations

import importlib

from longhaul_training.training.families.base import Family, Fit, FitData, Predictor

__all__ = ["MODULES", "Family", "Fit", "FitData", "Predictor", "family"]

MODULES = {
    "lightgbm": "gbm",
    "sgd": "incremental",
    "mlp": "incremental",
    "random_forest": "oneshot",
    "logistic": "oneshot",
    "ridge": "oneshot",
    "torch_mlp": "torch_mlp",
}


def family(name: str) -> Family:
    """The family named (one of spec.FAMILIES); imports its module on first use."""
    module = importlib.import_module(f"{__name__}.{MODULES[name]}")
    found: Family = module.families()[name]
    return found
