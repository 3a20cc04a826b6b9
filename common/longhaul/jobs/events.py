"""The facts a service's jobs publish: `<service>.job.<fact>` for each fact in FACTS."""

from __future__ import annotations

from pydantic import create_model

from longhaul.events.exceptions import EventError
from longhaul.events.registry import Event, event, lookup

__all__ = ["FACTS", "JobFact", "job_fact", "register_job_facts"]

FACTS = ("submitted", "started", "succeeded", "failed", "cancelled")


class JobFact(Event):
    """What every job fact carries."""

    job_id: str
    job_type: str
    owner: str
    state: str
    attempts: int = 0
    error: str | None = None


def register_job_facts(service: str) -> dict[str, type[JobFact]]:
    """Register `<service>.job.<fact>` v1 for every fact; return fact -> model."""
    models: dict[str, type[JobFact]] = {}
    for fact in FACTS:
        type_ = f"{service}.job.{fact}"
        try:
            existing = lookup(type_, 1)
        except EventError:
            existing = None
        if existing is not None:
            assert issubclass(existing, JobFact)
            models[fact] = existing
            continue
        name = "".join(part.title() for part in (service, "job", fact))
        model = create_model(name, __base__=JobFact, __module__=__name__)
        model.__doc__ = f"A {service} job was {fact}."
        models[fact] = event(type_, 1)(model)
    return models


def job_fact(service: str, fact: str) -> type[JobFact]:
    """The model of `<service>.job.<fact>` (registered on first use)."""
    return register_job_facts(service)[fact]
