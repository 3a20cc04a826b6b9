"""Every (type, version) of event is a registered pydantic model."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from longhaul.events.envelope import EVENT_TYPE_PATTERN
from longhaul.events.exceptions import UnknownEventType, UnknownEventVersion

__all__ = ["Event", "event", "lookup", "registered"]


class Event(BaseModel):
    """Base of every event's data model; `@event(type, version)` names it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    event_version: ClassVar[int]


E = TypeVar("E", bound=type[Event])

_REGISTRY: dict[tuple[str, int], type[Event]] = {}


def event(type_: str, version: int) -> Callable[[E], E]:
    """Register the decorated model as the data of event (`type_`, `version`)."""
    if not re.match(EVENT_TYPE_PATTERN, type_):
        raise ValueError(f"event type {type_!r} is not <domain>.<entity>.<fact>")
    if version < 1:
        raise ValueError("event versions start at 1")

    def register(model: E) -> E:
        key = (type_, version)
        existing = _REGISTRY.get(key)
        if existing is not None and existing.__qualname__ != model.__qualname__:
            raise ValueError(f"{type_} v{version} is already registered to {existing.__name__}")
        model.event_type = type_
        model.event_version = version
        _REGISTRY[key] = model
        return model

    return register


def lookup(type_: str, version: int) -> type[Event]:
    """The model of (`type_`, `version`)."""
    model = _REGISTRY.get((type_, version))
    if model is not None:
        return model
    if any(known == type_ for known, _ in _REGISTRY):
        raise UnknownEventVersion(f"{type_} v{version}")
    raise UnknownEventType(type_)


def registered() -> Iterator[tuple[str, int, type[Event]]]:
    """Every registered (type, version, model), sorted."""
    for (type_, version), model in sorted(_REGISTRY.items()):
        yield type_, version, model
