"""The JSON Schemas in docs/events/ are those of the registered events."""

from __future__ import annotations

from pathlib import Path

from longhaul.events import Event, event
from longhaul.events.schemas import drift, schema_documents, write_schemas
from longhaul.local.cli import SCHEMA_DIR, platform_events
from longhaul.local.discovery import discover

ROOT = Path(__file__).resolve().parents[3]


def test_committed_schemas_match_the_code() -> None:
    stale = drift(ROOT / SCHEMA_DIR, schema_documents(platform_events(discover())))
    assert stale == [], f"run `make schemas` and commit: {stale}"


def test_drift_names_a_changed_a_missing_and_an_extra_schema(tmp_path: Path) -> None:
    @event("drift.thing.happened", 1)
    class Happened(Event):
        size: int

    documents = schema_documents([("drift.thing.happened", 1, Happened)])
    assert write_schemas(tmp_path, documents) == sorted(documents)
    assert drift(tmp_path, documents) == []

    @event("drift.thing.happened", 2)
    class HappenedV2(Event):
        size: int
        unit: str

    changed = schema_documents([("drift.thing.happened", 1, HappenedV2)])
    assert drift(tmp_path, changed) == ["drift.thing.happened.v1.schema.json"]
    (tmp_path / "old.v1.schema.json").write_text("{}")
    assert "old.v1.schema.json" in drift(tmp_path, documents)
    more = schema_documents(
        [("drift.thing.happened", 1, Happened), ("drift.thing.happened", 2, HappenedV2)]
    )
    assert "drift.thing.happened.v2.schema.json" in drift(tmp_path, more)


def test_job_facts_of_a_service_are_part_of_its_schemas() -> None:
    from tests.support.echo.spec import SPEC as ECHO

    names = {f"{t}.v{v}" for t, v, _ in platform_events([ECHO])}
    assert {"echo.message.sent.v1", "echo.job.submitted.v1", "echo.job.failed.v1"} <= names
