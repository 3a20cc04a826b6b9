"""JSON Schemas of the registered events, kept in the repository beside the code."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from longhaul.events.envelope import Envelope
from longhaul.events.registry import Event

__all__ = ["drift", "schema_documents", "write_schemas"]


def _filename(type_: str, version: int) -> str:
    return f"{type_}.v{version}.schema.json"


def schema_documents(events: Iterable[tuple[str, int, type[Event]]]) -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema of the envelope whose data is the event's model."""
    documents: dict[str, dict[str, Any]] = {"envelope.schema.json": Envelope.model_json_schema()}
    for type_, version, model in events:
        schema = model.model_json_schema()
        schema["title"] = f"{type_} v{version}"
        schema["x-longhaul-event"] = {"type": type_, "version": version}
        documents[_filename(type_, version)] = schema
    return documents


def _render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path, documents: dict[str, dict[str, Any]]) -> list[str]:
    """Make `directory` hold exactly `documents`; return the names written or removed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, document in documents.items():
        path = directory / name
        text = _render(document)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(name)
    for path in directory.glob("*.schema.json"):
        if path.name not in documents:
            path.unlink()
            changed.append(path.name)
    return sorted(changed)


def drift(directory: Path, documents: dict[str, dict[str, Any]]) -> list[str]:
    """Names of the schema files that are missing, stale or extra in `directory`."""
    on_disk = {p.name: p.read_text() for p in directory.glob("*.schema.json")}
    stale = [n for n, d in documents.items() if on_disk.get(n) != _render(d)]
    extra = [n for n in on_disk if n not in documents]
    return sorted(stale + extra)
