"""The training service's job types (docs/training.md):

- `register-dataset` (internal; a dataset's upload starts it): read, validate, profile;
- `train`: a model from a registered dataset, resumed exactly from its last checkpoint;
- `sweep` and its `sweep-trial` children: a hyperparameter search that promotes its best;
- `predict`: a model's predictions on a dataset, as Parquet;
- `import-model`: a model file a caller uploaded, checked (never unpickled) and registered.
"""

from __future__ import annotations

from longhaul.jobs import JobTypes
from longhaul_training.models import (
    ImportModelPayload,
    PredictPayload,
    RegisterDatasetPayload,
    SweepPayload,
    TrainPayload,
    TrialPayload,
)
from longhaul_training.storage import owned_by
from longhaul_training.worker.datasets import register_dataset
from longhaul_training.worker.predict import admit_predict, import_model, predict
from longhaul_training.worker.sweep import (
    admit_sweep,
    sweep,
    sweep_ended,
    sweep_trial,
    trial_ended,
)
from longhaul_training.worker.train import admit_train, train, train_ended

__all__ = ["jobs"]

jobs = JobTypes()

jobs.handler("register-dataset", payload=RegisterDatasetPayload, max_attempts=3, internal=True)(
    register_dataset
)
jobs.handler("train", payload=TrainPayload, max_attempts=3, on_end=train_ended, admit=admit_train)(
    train
)
jobs.handler("sweep", payload=SweepPayload, max_attempts=3, on_end=sweep_ended, admit=admit_sweep)(
    sweep
)
jobs.handler(
    "sweep-trial", payload=TrialPayload, max_attempts=3, internal=True, on_end=trial_ended
)(sweep_trial)
jobs.handler("predict", payload=PredictPayload, max_attempts=3, admit=admit_predict)(predict)
jobs.handler(
    "import-model",
    payload=ImportModelPayload,
    max_attempts=3,
    admit=lambda payload, owner: owned_by(payload.model, owner),
)(import_model)
