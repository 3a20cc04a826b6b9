"""The training core: plain functions the service runs, most of them in a child process.

- `datasets`: read, validate and profile a CSV or Parquet file (`inspect_dataset`,
  `load_table`, `DatasetRejected.reason`).
- `spec`: `TrainSpec`, each family's params and bounds, `check_against(info)`.
- `trainer`: `python -m longhaul_training.training.trainer` and `run(...)`: JSON lines,
  checkpoints, exit 0 / 75 (SIGTERM) / 2 (user error). One trainer per workdir at a time.
- `families/`: lightgbm, sgd and mlp, random_forest / logistic / ridge, torch_mlp; what each
  checkpoints is in its module's docstring.
- `checkpoint`: atomic checkpoint directories; `artifacts`: the model directory, the skops
  allowlist, `load_model`, `check_upload`; `card`: the model card; `features`: columns to
  the matrix; `metrics`: metrics and bootstrap intervals.

Nothing here imports the service, and heavy libraries are imported by the family that needs
them, so a trainer for one family loads only its own.
"""
