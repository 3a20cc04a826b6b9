"""The model card: what a model is, what it was trained on, how well it did; JSON and Markdown.

The trainer writes `card.json` (`ModelCard.model_dump_json()`, the schema under "schema")
without `dataset_id`, which the service fills in when it registers the model, and
`card.md` (`to_markdown()`), which the service rewrites after filling it. Metrics are
{"<name>": {"value": v, "ci95": [low, high]}}: a seeded percentile bootstrap over the
validation rows (the holdout, or every row's out-of-fold prediction for k folds).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from longhaul_training.training.datasets import ColumnProfile

__all__ = ["LIBRARIES", "MetricValue", "ModelCard", "library_versions"]

LIBRARIES = (
    "numpy",
    "pyarrow",
    "scikit-learn",
    "lightgbm",
    "torch",
    "skops",
    "safetensors",
    "skl2onnx",
)


class MetricValue(BaseModel):
    """A metric and its 95% bootstrap confidence interval (None where undefined)."""

    value: float | None
    ci95: tuple[float | None, float | None]


class ModelCard(BaseModel):
    """A trained model's card."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    dataset_id: str | None = None
    dataset_sha256: str
    schema_: list[ColumnProfile] = Field(alias="schema")
    target: str
    task: str
    family: str
    params: dict[str, Any]
    validation: dict[str, Any]
    metric: str
    metrics: dict[str, MetricValue]
    rows: int
    training_time_s: float
    library_versions: dict[str, str]
    seed: int
    files: list[str] = Field(default_factory=list)
    labels: list[Any] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def to_markdown(self) -> str:
        """The card as Markdown for people."""
        how = (
            f"holdout of {self.validation['holdout']:.0%}"
            if self.validation.get("holdout") is not None
            else f"{self.validation.get('folds')}-fold cross-validation"
        )
        lines = [
            f"# Model card: {self.family} {self.task} of `{self.target}`",
            "",
            f"- Dataset: {self.dataset_id or '(not yet registered)'}",
            f"- Dataset sha256: `{self.dataset_sha256}`",
            f"- Rows used: {self.rows}; validation: {how}",
            f"- Seed: {self.seed}; training time: {self.training_time_s:.1f} s",
            f"- Created: {self.created_at.isoformat()}",
            "",
            "## Metrics (95% bootstrap confidence intervals)",
            "",
            "| metric | value | 95% CI |",
            "|---|---|---|",
        ]
        for name, m in self.metrics.items():
            mark = " (optimized)" if name == self.metric else ""
            lines.append(
                f"| {name}{mark} | {_num(m.value)} | {_num(m.ci95[0])} .. {_num(m.ci95[1])} |"
            )
        lines += ["", "## Parameters", "", "| param | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(self.params.items())]
        lines += [
            "",
            "## Schema",
            "",
            "| column | type | missing | distinct |",
            "|---|---|---|---|",
        ]
        for c in self.schema_:
            role = " (target)" if c.name == self.target else ""
            lines.append(f"| {c.name}{role} | {c.type} | {c.missing} | {c.distinct} |")
        lines += ["", "## Libraries", ""]
        lines += [f"- {k} {v}" for k, v in sorted(self.library_versions.items())]
        lines += ["", f"Files: {', '.join(self.files)}", ""]
        return "\n".join(lines)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model depends on, where installed."""
    out: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
