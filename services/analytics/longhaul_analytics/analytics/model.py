"""What the engine counts: client events as the edge takes them, the record every event
(client or platform) becomes, and the metrics an owner declares."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "BUILTIN",
    "MAX_BATCH_EVENTS",
    "ClientEvent",
    "EventBatch",
    "Metric",
    "MetricSpec",
    "Record",
    "digest",
    "dimension_values",
    "group_hash",
    "group_key",
    "numeric",
    "to_ms",
]

MAX_BATCH_EVENTS = 500
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"
MAX_NAME = 128
MAX_VALUE = 256  # a property's (and so a dimension's) string value, in characters

EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
EventName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)
]
PropertyName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
PropertyValue = Annotated[str, StringConstraints(max_length=MAX_VALUE)] | int | float | bool | None


class ClientEvent(BaseModel):
    """One event a client sends: `properties` hold flat scalars (a string at most 256
    characters), so any of them can be a dimension, a value or a distinct key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: EventId
    name: EventName
    time: AwareDatetime
    properties: dict[PropertyName, PropertyValue] = Field(default_factory=dict, max_length=64)


class EventBatch(BaseModel):
    """`POST /events`: up to 500 events (checked by the route, which answers 413 past it)."""

    model_config = ConfigDict(extra="forbid")

    events: list[ClientEvent] = Field(min_length=1)


MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class MetricSpec(BaseModel):
    """`PUT /metrics/{name}`: what to aggregate. Every event named `event` is counted per
    group (its values of `dimensions`); `value` names the numeric property summed, min'd,
    max'd and ranked (p50, p95, p99); `distinct` the property whose distinct values are
    counted exactly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: EventName
    dimensions: list[PropertyName] = Field(default_factory=list, max_length=5)
    value: PropertyName | None = None
    distinct: PropertyName | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    """A declared metric of one owner (or the built-in one every owner has)."""

    name: str
    event: str  # "*": every event
    dimensions: tuple[str, ...]
    value: str | None = None
    distinct: str | None = None

    @classmethod
    def of(cls, name: str, spec: MetricSpec) -> Metric:
        return cls(name, spec.event, tuple(spec.dimensions), spec.value, spec.distinct)

    def spec(self) -> MetricSpec:
        return MetricSpec(
            event=self.event,
            dimensions=list(self.dimensions),
            value=self.value,
            distinct=self.distinct,
        )

    def takes(self, name: str) -> bool:
        return self.event == "*" or self.event == name


# Every owner's built-in metric: every event, counted by its name.
BUILTIN = Metric("events", "*", ("name",))


@dataclass(frozen=True, slots=True)
class Record:
    """One event as the engine counts it, whichever way it came."""

    owner: str
    id: str
    name: str
    time_ms: int  # event time, ms since the epoch (UTC)
    properties: dict[str, Any]
    source: str  # "client" or the platform event's source ("longhaul.media")
    received_ms: int
    digest: str  # of (name, time, properties): the same id with another digest is refused


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return round(moment.astimezone(UTC).timestamp() * 1000)


def digest(name: str, time_ms: int, properties: dict[str, Any]) -> str:
    """What makes two deliveries of one id the same event."""
    body = json.dumps([name, time_ms, properties], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def dimension_values(metric: Metric, record: Record) -> list[str | None]:
    """The record's group in `metric`: its dimensions' values as strings (None if absent)."""
    if metric.event == "*":  # the built-in metric: by event name
        return [record.name]
    values: list[str | None] = []
    for dimension in metric.dimensions:
        value = record.properties.get(dimension)
        values.append(None if value is None else _text(value))
    return values


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def group_key(values: list[str | None]) -> str:
    """The canonical text of a group (a JSON array)."""
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


def group_hash(key: str) -> str:
    """A short fixed-size name of a group, used in table keys."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def numeric(value: Any) -> float | None:
    """A property's value as a number, or None when it is not one (booleans are not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)
